"""Metrics accumulated over a training epoch: a torchmetrics ``Metric`` (so it syncs across DDP processes)
built on the counts of :mod:`segfit.metrics`."""

from __future__ import annotations

import torch
from torchmetrics import Metric

from segfit.metrics import PER_CLASS, confusion_per_image, image_scores, scores_from_confusion


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
