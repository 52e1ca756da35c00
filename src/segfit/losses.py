"""Losses by name (torch and smp), and inverse-frequency class weights.

:data:`PARTS` is the table of losses; a loss name is one part or a sum of parts joined by ``+``
(``ce+dice``), or ``auto`` (binary cross-entropy for two classes, cross-entropy otherwise). torch and
smp load only when a loss is built, so the names are known without them.
"""

from __future__ import annotations

import numpy as np

from segfit.errors import SegfitError


def _cross_entropy(binary: bool, weights, ignore: int | None):
    from torch import nn

    if binary:  # the positive class weight relative to background, as cross-entropy weights would do
        pos_weight = None if weights is None else (weights[1] / weights[0]).reshape(1)
        if ignore is not None:
            from segfit.nets import MaskedBCEWithLogits

            return MaskedBCEWithLogits(ignore, pos_weight)
        return nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    return nn.CrossEntropyLoss(weight=weights, ignore_index=-100 if ignore is None else ignore)


def _dice(binary: bool, weights, ignore: int | None):
    import segmentation_models_pytorch as smp

    return smp.losses.DiceLoss("binary" if binary else "multiclass", from_logits=True, ignore_index=ignore)


def _focal(binary: bool, weights, ignore: int | None):
    import segmentation_models_pytorch as smp

    return smp.losses.FocalLoss("binary" if binary else "multiclass", ignore_index=ignore)


# name -> builder(binary, class-weight tensor or None, the ignored class id or None); "bce" and "ce" are
# the same loss (one logit for two classes, one per class otherwise).
PARTS = {"bce": _cross_entropy, "ce": _cross_entropy, "dice": _dice, "focal": _focal}
LOSSES = ("auto", *PARTS, "ce+dice", "bce+dice")  # the names the help lists; any sum of PARTS works
DESCRIPTION = "auto (bce for 2 classes, ce otherwise), " + ", ".join(LOSSES[1:]) + ", or any sum of " + "/".join(PARTS)


def canonical_name(name: str, num_classes: int = 2) -> str:
    """``auto`` resolved, ``bce`` inside sums spelt ``ce``; raises for unknown names."""
    if name == "auto":
        return "bce" if num_classes == 2 else "ce"
    parts = name.split("+")
    if not all(p in PARTS for p in parts):
        raise SegfitError(f"unknown loss {name!r}", fix=f"use one of {', '.join(LOSSES)} (parts join with +)")
    return "+".join("ce" if p == "bce" and len(parts) > 1 else p for p in parts)


def create_loss(name: str, num_classes: int, class_weights: list[float] | None = None, ignore: bool = False):
    """Loss module by name: ``(logits B x K x H x W, class ids B x H x W) -> scalar``; with ``ignore``
    pixels of class id :data:`~segfit.data.formats.IGNORE_ID` (unlabelled) count in no part."""
    import torch

    from segfit.data.formats import IGNORE_ID
    from segfit.nets import SumOfLosses

    name = canonical_name(name, num_classes)
    if class_weights is not None and len(class_weights) != num_classes:
        raise SegfitError(f"{len(class_weights)} class weights for {num_classes} classes", fix="give one weight per class")
    weights = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
    binary = num_classes == 2
    ignored = IGNORE_ID if ignore else None
    return SumOfLosses([(part, PARTS[part](binary, weights, ignored)) for part in name.split("+")], binary)


def inverse_frequency_weights(counts: np.ndarray) -> list[float]:
    """The seed's class weights: ``total / (classes * pixels of the class)``; absent classes get 0."""
    counts = np.asarray(counts, dtype=np.float64)
    total, k = counts.sum(), len(counts)
    with np.errstate(divide="ignore"):
        w = np.where(counts > 0, total / (k * np.maximum(counts, 1)), 0.0)
    return [round(float(x), 6) for x in w]


def distance_loss(logits, target):
    """The instance target's loss: binary cross-entropy of the distance logit (``B x H x W``) against each
    object's normalised distance map in [0, 1] (soft labels: a smooth map, 0 on the background)."""
    import torch.nn.functional as F

    return F.binary_cross_entropy_with_logits(logits.float(), target.float())
