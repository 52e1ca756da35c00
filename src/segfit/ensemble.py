"""Averaged predictions: ensembles of models and test-time augmentation, and the uncertainty of the average.

An :class:`AveragedBackend` wraps one or more backends (the members of an ensemble) and optional
test-time augmentation (flips and 90-degree rotations of the input, undone on the output). It is a
backend itself: ``logits(batch)`` returns the logits *of the averaged probabilities* (the log of the
mean softmax; the logit of the mean sigmoid; the same for a learned distance map), so tiling, resizing
and thresholding downstream are unchanged, and :func:`entropy` of those logits is the predictive
uncertainty of the ensemble.
"""

from __future__ import annotations

import math

import torch

def _rot90(x: torch.Tensor) -> torch.Tensor:  # torch.rot90(x, 1, (-2, -1)) in operations ONNX exports
    return x.transpose(-2, -1).flip(-2)


def _rot270(x: torch.Tensor) -> torch.Tensor:  # torch.rot90(x, -1, (-2, -1))
    return x.flip(-2).transpose(-2, -1)


def _rot180(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-2).flip(-1)


# Test-time variants: name -> (forward transform, inverse), on B x C x H x W tensors: the eight symmetries
# of the square, in flips and transposes only (so an ensemble with them exports to ONNX).
VARIANTS = {
    "identity": (lambda x: x, lambda y: y),
    "hflip": (lambda x: x.flip(-1), lambda y: y.flip(-1)),
    "vflip": (lambda x: x.flip(-2), lambda y: y.flip(-2)),
    "rot90": (_rot90, _rot270),
    "rot180": (_rot180, _rot180),
    "rot270": (_rot270, _rot90),
    "transpose": (lambda x: x.transpose(-2, -1), lambda y: y.transpose(-2, -1)),
    "antitranspose": (lambda x: _rot90(x).flip(-1), lambda y: _rot90(y).flip(-1)),  # its own inverse
}
# Which variants keep the labels, by the augmentation the model was trained with (the plan's judgement
# of the data): micrographs have no orientation (all eight symmetries of the square); photos keep up up.
LABEL_PRESERVING = {"light": tuple(VARIANTS), "photo": ("identity", "hflip"), "vineyard": ("identity", "hflip"),
                    "none": ("identity", "hflip")}
EPS = 1e-6
MIN_CALIBRATION_IMAGES = 5  # fewer held-out images: no review threshold (flagged good images of a small set)
MIN_QUANTILE_IMAGES = 20  # fewer held-out images: the review threshold is their highest figure, raised
REVIEW_QUANTILE = 0.95  # images more uncertain than this share of the held-out validation images get reviewed
# What a review threshold is calibrated on, preferred first (runs calibrated before the expected error used the other).
REVIEW_MEASURES = ("expected_error", "mean_uncertainty")


def review_calibration(per_image, images: str) -> dict | None:
    """The review threshold from held-out images' figures (a table with ``expected_error`` and/or
    ``mean_uncertainty`` columns, as ``per_image.csv``): ``{"threshold", "measure", "how"}`` on the expected
    error where the table has it (it follows the per-image error best: Spearman 0.89 vs 0.39 for the mean
    uncertainty on the EMPS test split), else on the mean uncertainty."""
    import numpy as np

    for measure in REVIEW_MEASURES:
        values = np.asarray([v for v in (per_image[measure] if measure in per_image else []) if v == v], float)
        what = f"the {measure.replace('_', ' ')} of {len(values)} {images}"
        if 0 < len(values) < MIN_CALIBRATION_IMAGES:  # two or three images say nothing of the spread: no threshold
            return {"threshold": None, "measure": measure,
                    "how": f"too few {images} ({len(values)}) to calibrate a threshold ({MIN_CALIBRATION_IMAGES} at "
                           "least): only images unlike the training images are flagged"}
        if len(values) >= MIN_QUANTILE_IMAGES:
            return {"threshold": float(np.quantile(values, REVIEW_QUANTILE)), "measure": measure,
                    "how": f"{100 * REVIEW_QUANTILE:.0f}th percentile of {what}"}
        if len(values):  # too few for a percentile: their highest, widened (a fifth of the images flagged otherwise)
            top = float(values.max())
            return {"threshold": top + max(top - float(values.min()), 0.25 * top), "measure": measure,
                    "how": f"the highest of {what}, raised by their range (at least a quarter of it): too few "
                           f"images for a {100 * REVIEW_QUANTILE:.0f}th percentile"}
    return None


def tta_variants(augment: str) -> tuple[str, ...]:
    """The test-time variants for a model trained with ``augment``."""
    return LABEL_PRESERVING.get(augment, ("identity", "hflip"))


def to_probabilities(logits: torch.Tensor, class_channels: int) -> torch.Tensor:
    """Class probabilities (sigmoid of one logit, or softmax), then the sigmoid of any further channel."""
    classes, rest = logits[:, :class_channels], logits[:, class_channels:]
    p = torch.sigmoid(classes) if class_channels == 1 else torch.softmax(classes, 1)
    return torch.cat([p, torch.sigmoid(rest)], 1) if rest.shape[1] else p


def to_logits(p: torch.Tensor, class_channels: int) -> torch.Tensor:
    """The inverse of :func:`to_probabilities` (log for softmax classes, logit otherwise)."""
    p = p.clamp(EPS, 1 - EPS)
    classes, rest = p[:, :class_channels], p[:, class_channels:]
    out = _logit(classes) if class_channels == 1 else classes.log()
    return torch.cat([out, _logit(rest)], 1) if rest.shape[1] else out


def _logit(p: torch.Tensor) -> torch.Tensor:
    return p.log() - (1 - p).log()  # torch.logit, in operations every ONNX runtime has


def entropy(logits: torch.Tensor, class_channels: int) -> torch.Tensor:
    """Predictive entropy of the class channels of ``B x K x H x W`` logits, divided by its maximum
    (``log K``): ``B x H x W`` in [0, 1], 0 where the prediction is certain, 1 at a 50/50 (or uniform) split."""
    return probability_entropy(to_probabilities(logits[:, :class_channels], class_channels), class_channels)


def probability_entropy(p: torch.Tensor, class_channels: int) -> torch.Tensor:
    """:func:`entropy` from the class probabilities (``B x K x H x W``, or the foreground's ``B x 1 x H x W``
    of a binary model, as :func:`to_probabilities` gives them)."""
    if class_channels == 1:
        p = p[:, 0]
        h = -(p * torch.log(p.clamp_min(EPS)) + (1 - p) * torch.log((1 - p).clamp_min(EPS)))
        return h / math.log(2)
    return -(p * torch.log(p.clamp_min(EPS))).sum(1) / math.log(class_channels)


def average(x: torch.Tensor, forwards: list, weights: list[float], variants: tuple[str, ...],
            class_channels: int) -> torch.Tensor:
    """Logits of the probabilities of ``forwards`` (weighted, weights summing to 1) averaged over the
    test-time ``variants`` of ``x`` (each undone on the output)."""
    total = None
    share = 1.0 / len(variants)
    for variant in variants:
        forward, inverse = VARIANTS[variant]
        xv = forward(x)
        for f, weight in zip(forwards, weights):
            p = to_probabilities(inverse(f(xv)).float(), class_channels) * (weight * share)
            total = p if total is None else total + p
    return to_logits(total, class_channels)


class AveragedBackend:
    """Members' probabilities averaged over the members (``weights``) and the test-time ``variants``."""

    def __init__(self, members: list, variants: tuple[str, ...] = ("identity",), weights: list[float] | None = None,
                 path=None, record: dict | None = None):
        if not members:
            raise ValueError("an ensemble needs at least one member")
        unknown = [v for v in variants if v not in VARIANTS]
        if unknown:
            raise ValueError(f"unknown test-time variant {unknown[0]!r}; known: {', '.join(VARIANTS)}")
        self.members, self.variants, self.record = list(members), tuple(variants), record or {}
        w = torch.tensor(weights if weights is not None else [1.0] * len(members), dtype=torch.float32)
        self.weights = (w / w.sum()).tolist()
        self.config = members[0].config
        self.path = path or members[0].path
        self.device = members[0].device
        self.multiple = max(int(m.multiple) for m in members)
        self.class_channels = self.config.model.class_channels

    @torch.inference_mode()
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Averaged logits of a ``B x C x h x w`` batch, padded once to the stride before the variants (as
        the exported :class:`AveragedNet` is), so every variant and member sees the same pixels."""
        from segfit.nets import run_padded

        return run_padded(self._average, batch, self.multiple)

    def _average(self, batch: torch.Tensor) -> torch.Tensor:
        return average(batch, [m.logits for m in self.members], self.weights, self.variants, self.class_channels)

    def with_variants(self, variants: tuple[str, ...]) -> AveragedBackend:
        """The same members, averaged over other test-time variants."""
        return AveragedBackend(self.members, variants, self.weights, self.path, self.record)


def averaged(backend, tta: bool) -> AveragedBackend:
    """``backend`` (a single model or an ensemble) averaged over the test-time variants its training
    augmentation makes label-preserving (``tta``), or over the identity alone."""
    variants = tta_variants(backend.config.train.augment) if tta else ("identity",)
    if isinstance(backend, AveragedBackend):
        return backend.with_variants(variants)
    return AveragedBackend([backend], variants, record=getattr(backend, "record", None))  # an export's calibrations


class AveragedNet(torch.nn.Module):
    """The average of :class:`AveragedBackend` as one network (for export): ``nets`` (inputs already padded to
    their stride) x test-time ``variants``, averaged in probability, returned as logits."""

    def __init__(self, nets: list[torch.nn.Module], variants: tuple[str, ...], class_channels: int,
                 weights: list[float] | None = None):
        super().__init__()
        self.nets, self.variants, self.class_channels = torch.nn.ModuleList(nets), tuple(variants), class_channels
        w = weights if weights is not None else [1.0] * len(nets)
        self.weights = [float(v) / sum(w) for v in w]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return average(x, list(self.nets), self.weights, self.variants, self.class_channels)
