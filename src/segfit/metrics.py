"""Segmentation metrics.

Two views of the same counts, as the seed notebook and the field project use them:

* **per image** — foreground IoU / Dice / pixel accuracy of each image, then the mean over images
  (the notebook's figures). With more than two classes the image's IoU is the mean over its
  foreground classes. A class empty in both truth and prediction scores 1.
* **per class** — IoU, Dice, precision, recall and accuracy of each class from the confusion
  matrix accumulated over a whole epoch or data set (not averaged per batch).

:class:`SegmentationMetrics` is a torchmetrics ``Metric`` (so it syncs across DDP processes).
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric

PER_CLASS = ("iou", "dice", "precision", "recall", "accuracy")


def confusion_per_image(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``B x C x C`` confusion matrices (rows: truth, columns: prediction) of class-id maps ``B x H x W``."""
    b = pred.shape[0]
    offset = torch.arange(b, device=pred.device).view(b, *([1] * (pred.ndim - 1))) * num_classes * num_classes
    index = offset + target.long() * num_classes + pred.long()
    counts = torch.bincount(index.reshape(-1), minlength=b * num_classes * num_classes)
    return counts.view(b, num_classes, num_classes)


def _ratio(num: torch.Tensor, den: torch.Tensor, empty: torch.Tensor) -> torch.Tensor:
    """num / den, with 1 where the class is absent from truth and prediction and 0 where only den is 0."""
    safe = den.clamp(min=1)
    out = num.double() / safe.double()
    return torch.where(den > 0, out, empty.double())


def scores_from_confusion(cm: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-class iou/dice/precision/recall/accuracy from ``... x C x C`` confusion matrices."""
    cm = cm.double()
    tp = torch.diagonal(cm, dim1=-2, dim2=-1)
    pred_total, true_total = cm.sum(-2), cm.sum(-1)
    fp, fn = pred_total - tp, true_total - tp
    total = cm.sum((-2, -1)).unsqueeze(-1)
    absent = ((tp + fp + fn) == 0).double()
    return {
        "iou": _ratio(tp, tp + fp + fn, absent),
        "dice": _ratio(2 * tp, 2 * tp + fp + fn, absent),
        "precision": _ratio(tp, tp + fp, absent),
        "recall": _ratio(tp, tp + fn, absent),
        "accuracy": _ratio(total - fp - fn, total.expand_as(tp), absent),
    }


def image_scores(cm: torch.Tensor) -> dict[str, torch.Tensor]:
    """The notebook's per-image figures from ``B x C x C`` matrices: foreground iou, dice, accuracy."""
    per_class = scores_from_confusion(cm)
    correct = torch.diagonal(cm, dim1=-2, dim2=-1).sum(-1).double()
    return {
        "iou": per_class["iou"][:, 1:].mean(-1),
        "dice": per_class["dice"][:, 1:].mean(-1),
        "accuracy": correct / cm.sum((-2, -1)).clamp(min=1).double(),
    }


class SegmentationMetrics(Metric):
    """Accumulates a confusion matrix and per-image score sums over an epoch or a data set."""

    full_state_update = False

    def __init__(self, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.add_state("confusion", torch.zeros(num_classes, num_classes, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("score_sums", torch.zeros(3, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("images", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of predicted and true class-id maps (``B x H x W``)."""
        cm = confusion_per_image(pred, target, self.num_classes)
        self.confusion += cm.sum(0)
        s = image_scores(cm)
        self.score_sums += torch.stack([s["iou"].sum(), s["dice"].sum(), s["accuracy"].sum()])
        self.images += cm.shape[0]

    def compute(self) -> dict[str, torch.Tensor]:
        """``iou``, ``dice``, ``accuracy`` (per-image means), ``miou`` (mean class IoU) and per-class
        tensors under ``iou_per_class`` etc."""
        means = self.score_sums / self.images.clamp(min=1)
        per_class = scores_from_confusion(self.confusion)
        out = {"iou": means[0], "dice": means[1], "accuracy": means[2], "miou": per_class["iou"].mean()}
        out.update({f"{k}_per_class": v for k, v in per_class.items()})
        return out


def flatten(result: dict[str, torch.Tensor], class_names: list[str], prefix: str) -> dict[str, float]:
    """``{"val_iou": .., "val_iou_leaves": .., ...}`` from :meth:`SegmentationMetrics.compute`."""
    flat = {f"{prefix}{k}": float(result[k]) for k in ("iou", "dice", "accuracy", "miou")}
    for metric in PER_CLASS:
        values = result[f"{metric}_per_class"].tolist()
        flat.update({f"{prefix}{metric}_{name}": float(v) for name, v in zip(class_names, values)})
    return flat


def per_class_table(confusion: np.ndarray, class_names: list[str]) -> dict[str, dict[str, float]]:
    """``{class name: {iou, dice, precision, recall, accuracy}}`` from a confusion matrix."""
    scores = scores_from_confusion(torch.as_tensor(confusion))
    return {name: {m: float(scores[m][i]) for m in PER_CLASS} for i, name in enumerate(class_names)}
