"""Losses by name (torch and smp), and inverse-frequency class weights."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from segfit.errors import SegfitError

LOSSES = ("auto", "bce", "ce", "dice", "focal", "ce+dice", "bce+dice")


class _Loss(nn.Module):
    """Adapts ``(logits B x K x H x W, class ids B x H x W)`` to binary (K = 1) or multi-class losses."""

    def __init__(self, name: str, num_classes: int, weights: list[float] | None):
        super().__init__()
        import segmentation_models_pytorch as smp

        self.binary = num_classes == 2
        self.parts = nn.ModuleList()
        w = torch.tensor(weights, dtype=torch.float32) if weights else None
        for part in name.split("+"):
            if part in ("bce", "ce"):
                if self.binary:
                    # The positive class weight relative to background, as CE weights would do.
                    pos = None if w is None else (w[1] / w[0]).reshape(1)
                    self.parts.append(nn.BCEWithLogitsLoss(pos_weight=pos))
                else:
                    self.parts.append(nn.CrossEntropyLoss(weight=w))
            elif part == "dice":
                self.parts.append(smp.losses.DiceLoss("binary" if self.binary else "multiclass", from_logits=True))
            elif part == "focal":
                self.parts.append(smp.losses.FocalLoss("binary" if self.binary else "multiclass"))
            else:
                raise SegfitError(f"unknown loss {name!r}", fix=f"use one of {', '.join(LOSSES)}")
        self.kinds = name.split("+")

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = logits.new_zeros(())
        for kind, fn in zip(self.kinds, self.parts):
            if self.binary:
                total = total + fn(logits, target.unsqueeze(1).to(logits.dtype))
            elif kind == "dice":
                total = total + fn(logits, target)
            else:
                total = total + fn(logits, target.long())
        return total


def create_loss(name: str, num_classes: int, class_weights: list[float] | None = None) -> nn.Module:
    """Loss by name; ``auto`` is binary cross-entropy for 2 classes and cross-entropy otherwise."""
    if name == "auto":
        name = "bce" if num_classes == 2 else "ce"
    if name == "bce+dice" or (name == "ce+dice" and num_classes == 2):
        name = "ce+dice"
    if name not in LOSSES:
        raise SegfitError(f"unknown loss {name!r}", fix=f"use one of {', '.join(LOSSES)}")
    if class_weights is not None and len(class_weights) != num_classes:
        raise SegfitError(f"{len(class_weights)} class weights for {num_classes} classes", fix="give one weight per class")
    return _Loss(name, num_classes, class_weights)


def inverse_frequency_weights(counts: np.ndarray) -> list[float]:
    """The seed's class weights: ``total / (classes * pixels of the class)``; absent classes get 0."""
    counts = np.asarray(counts, dtype=np.float64)
    total, k = counts.sum(), len(counts)
    with np.errstate(divide="ignore"):
        w = np.where(counts > 0, total / (k * np.maximum(counts, 1)), 0.0)
    return [round(float(x), 6) for x in w]
