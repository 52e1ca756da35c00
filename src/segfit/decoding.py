"""Network outputs -> what a prediction holds: class ids at the image's size, the objects, the uncertainty
map, and the IoU the model expects of its own mask; and the per-image uncertainty figures built on them.

Outputs arrive as bands of rows (:mod:`segfit.tiling`) and are decoded a block of rows at a time, so no
float copy of a whole large image is ever made.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from segfit.errors import SegfitError


class Prediction(NamedTuple):
    """One image's prediction at its original size."""

    classes: np.ndarray  # uint8 class ids
    objects: np.ndarray | None = None  # int32 object ids (0 = background)
    uncertainty: np.ndarray | None = None  # float16, 0 (certain) .. 1 (a 50/50 split between classes)
    distance: np.ndarray | None = None  # float32 predicted distance map (models that learn instances; on request)
    expected_iou: float | None = None  # the IoU the model expects of its own mask (with the uncertainty)
    scale: float | None = None  # the working scale, where it is not the model's own (small objects: a larger one)


class SelfAgreement:
    """The IoU a model expects of its own mask: the hard mask scored against the model's own probabilities
    (each pixel of class ``c`` with probability ``p_c``): per foreground class, the expected overlap
    ``sum p_c`` over the pixels predicted ``c`` over the expected union, plus one pixel on both sides (a class
    neither predicted nor probable scores 1, as in :func:`segfit.metrics.scores_from_confusion`); averaged
    over the foreground classes like the per-image IoU. Unlike the mean entropy of the image, it is relative
    to the objects' size, as the IoU is: a few uncertain outlines matter more around small objects."""

    def __init__(self, classes: int):
        self.overlap, self.predicted, self.mass = (np.zeros(classes) for _ in range(3))

    def add(self, probabilities: torch.Tensor, ids: torch.Tensor) -> None:
        """One block: ``K x h x w`` class probabilities (or the foreground's ``1 x h x w`` of a binary model)
        and the ``h x w`` class ids made from them. A class at a time: no one-hot copy of the block."""
        if probabilities.shape[0] == 1:
            mass, predicted = float(probabilities.sum(dtype=torch.float64)), int((ids == 1).sum())
            overlap = float(torch.where(ids == 1, probabilities[0], 0).sum(dtype=torch.float64))
            pixels = ids.numel()
            self.mass += (pixels - mass, mass)
            self.predicted += (pixels - predicted, predicted)
            self.overlap += (pixels - predicted - (mass - overlap), overlap)  # background: 1 - p where not predicted 1
            return
        for c, p in enumerate(probabilities):
            chosen = ids == c
            self.mass[c] += float(p.sum(dtype=torch.float64))
            self.predicted[c] += int(chosen.sum())
            self.overlap[c] += float(torch.where(chosen, p, 0).sum(dtype=torch.float64))

    def expected_iou(self) -> float:
        union = self.predicted + self.mass - self.overlap
        return float(np.mean(((self.overlap + 1) / (union + 1))[1:]))


def decode(bands, in_size: tuple[int, int], size: tuple[int, int], *, instances: bool, objects: bool,
           uncertainty: bool, keep_distance: bool = False, seed_level: float = 0.5, merge_level: float | None = None,
           min_object_area: int = 0) -> Prediction:
    """Network outputs (``(y0, K x n x w)`` bands of rows, top to bottom; a distance channel last when the
    model learns ``instances``) -> uint8 class ids of ``size`` (outputs resized bilinearly first, a block of
    rows at a time) and, on request, the objects (int32 label image), the uncertainty (float16 in [0, 1])
    with the expected IoU, and the distance map."""
    from segfit.ensemble import probability_entropy, to_probabilities
    from segfit.nets import logits_to_classes
    from segfit.objects import instances_from_distance, true_objects
    from segfit.tiling import resized_rows

    size = tuple(int(n) for n in size)
    classes = np.empty(size, np.uint8)
    unsure = np.empty(size, np.float16) if uncertainty else None  # 3 decimals: all a 0-255 map needs
    distance = np.empty(size, np.float32) if (objects or keep_distance) and instances else None
    agreement = None
    for y0, block in resized_rows(bands, tuple(in_size), size, pixels=1 << 20):  # blocks of 1 M pixels: 4 MB a map
        k = block.shape[0] - int(instances)  # the class logits; then the distance logit
        rows = slice(y0, y0 + block.shape[1])
        ids = logits_to_classes(block[None, :k])[0]
        classes[rows] = ids.to(torch.uint8).cpu().numpy()
        if distance is not None:
            distance[rows] = torch.sigmoid(block[k]).cpu().numpy()
        if unsure is not None:
            p = to_probabilities(block[None, :k].float(), k)  # once, for the entropy and the expected IoU
            unsure[rows] = probability_entropy(p, k)[0].cpu().numpy()
            agreement = agreement or SelfAgreement(max(k, 2))
            agreement.add(p[0], ids)
    found = None
    if objects and distance is not None:
        found = instances_from_distance(classes, distance, seed_level, min_object_area, merge_level)
    elif objects:
        found = true_objects(classes, classes, binary=False)
    return Prediction(classes, found, unsure, distance if keep_distance else None,
                      agreement.expected_iou() if agreement else None)


UNCERTAIN_PIXEL = 0.5  # a pixel whose normalised entropy exceeds this counts as uncertain


def mean_uncertainty(unsure: np.ndarray) -> float:
    """The mean of an uncertainty map (summed in float64: a float16 map of millions of pixels; 0 when empty)."""
    return float(unsure.mean(dtype=np.float64)) if unsure.size else 0.0


def region_uncertainty(unsure: np.ndarray, classes: np.ndarray, rows: int = 1 << 20) -> float:
    """The mean uncertainty over the pixels that matter: those predicted as a class other than background, and the
    uncertain ones (0 where there are none). Unlike the mean over the whole image, it does not fall with the
    share of certain background: on EMPS (20-minute model, test split) its Spearman correlation with the
    per-image error (1 - IoU) is 0.86, against 0.42 for the whole image's mean. A block of rows at a time."""
    total, count = 0.0, 0
    step = max(1, rows // max(unsure.shape[-1], 1))
    for y in range(0, unsure.shape[0], step):
        u = unsure[y: y + step]
        region = (classes[y: y + step] > 0) | (u > UNCERTAIN_PIXEL)
        total += float(u.sum(where=region, dtype=np.float64))
        count += int(region.sum())
    return total / count if count else 0.0


def image_uncertainty(name: str, unsure: np.ndarray, calibrated: dict | None, unusual: str | None = None,
                      expected_iou: float | None = None, classes: np.ndarray | None = None) -> dict:
    """An image's ``mean_uncertainty`` (over the predicted objects and the uncertain pixels,
    :func:`region_uncertainty`, given the ``classes``; else over the image), ``uncertain_fraction``,
    ``expected_error`` (1 - the IoU the model expects of its own mask), ``unusual_input`` (why the image is unlike
    the training images, or None) and ``review`` flag: its calibrated measure (``expected_error``;
    ``mean_uncertainty`` for thresholds recorded before) above the threshold, or an unusual input (None with neither
    a threshold nor an unusual input)."""
    mean = mean_uncertainty(unsure) if classes is None else region_uncertainty(unsure, classes)
    row = {"image": name, "mean_uncertainty": round(mean, 6),
           "uncertain_fraction": round(float((unsure > UNCERTAIN_PIXEL).mean()) if unsure.size else 0.0, 6),
           "expected_error": None if expected_iou is None else round(1 - expected_iou, 6)}
    review = None
    if calibrated:
        value = row.get(calibrated.get("measure", "mean_uncertainty"))
        threshold = calibrated["threshold"]
        review = None if value is None else False if threshold is None else bool(value > threshold)
    return {**row, "unusual_input": unusual, "review": True if unusual else review}


def to_uint8(unsure: np.ndarray) -> np.ndarray:
    """An uncertainty map in [0, 1] as 0-255 (scaled in place: no second float copy of a large map)."""
    np.multiply(unsure, 255, out=unsure)
    return np.rint(unsure, out=unsure).astype(np.uint8)


def instance_png(objects: np.ndarray, path: Path) -> np.ndarray:
    """A label image as 16-bit PNG data (at most 65535 objects)."""
    if objects.max(initial=0) > np.iinfo(np.uint16).max:
        raise SegfitError(f"{int(objects.max())} objects are more than a 16-bit instance map holds", path,
                          "predict the image in parts (crop it), or use segfit.Predictor.predict_objects from Python")
    return objects.astype(np.uint16)
