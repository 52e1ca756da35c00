"""Segmentation metrics.

Two views of the same counts, as the seed notebook and the field project use them:

* **per image** — foreground IoU / Dice / pixel accuracy of each image, then the mean over images
  (the notebook's figures). With more than two classes the image's IoU is the mean over its
  foreground classes. A class empty in both truth and prediction scores 1.
* **per class** — IoU, Dice, precision, recall and accuracy of each class from the confusion
  matrix accumulated over a whole epoch or data set (not averaged per batch).

Training accumulates them with :class:`segfit.epoch_metrics.SegmentationMetrics` (torchmetrics); this
module needs only torch, so evaluation never imports Lightning's stack.
"""

from __future__ import annotations

import numpy as np
import torch

PER_CLASS = ("iou", "dice", "precision", "recall", "accuracy")


def confusion_per_image(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``B x C x C`` confusion matrices (rows: truth, columns: prediction) of class-id maps ``B x H x W``;
    pixels whose true id is not a class (unlabelled, :data:`~segfit.data.formats.IGNORE_ID`) count nowhere."""
    b, cells = pred.shape[0], num_classes * num_classes
    offset = torch.arange(b, device=pred.device).view(b, *([1] * (pred.ndim - 1))) * cells
    target = target.long()
    index = torch.where(target < num_classes, offset + target * num_classes + pred.long(), b * cells)
    counts = torch.bincount(index.reshape(-1), minlength=b * cells + 1)
    return counts[: b * cells].view(b, num_classes, num_classes)


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


def per_class_table(confusion: np.ndarray, class_names: list[str]) -> dict[str, dict[str, float]]:
    """``{class name: {iou, dice, precision, recall, accuracy}}`` from a confusion matrix."""
    scores = scores_from_confusion(torch.as_tensor(confusion))
    return {name: {m: float(scores[m][i]) for m in PER_CLASS} for i, name in enumerate(class_names)}


def _untried(config) -> list[str]:
    """The usual fixes of a model that learned little, less those the run used."""
    if config is None:
        return ["train longer", "let segfit plan (no --model notebook)", "use --loss ce+dice / --class-weights auto"]
    t = config.train
    fixes = ["train longer (a larger --time)" if t.max_time else "train longer (more --epochs)"]
    fixes += ["let segfit plan (no --model notebook)"] if config.model.name == "notebook" else []
    fixes += [] if "dice" in t.loss else ["use --loss ce+dice"]
    fixes += [] if t.class_weights not in (None, "none") else ["use --class-weights auto"]
    return fixes


def _likely_fix(config) -> str:
    return "likely cause: too little training for this data (or a rare class); fix: " + " or ".join(_untried(config))


HARDLY_LEARNED_IOU = 0.05  # a class the masks contain but the model finds (almost) nowhere
WORSE_THAN_CONSTANT = 0.05  # pixel accuracy this far below predicting the commonest class everywhere


def learning_warnings(confusion: np.ndarray, class_names: list[str], config=None) -> list[str]:
    """Warnings for a model that has learned nothing useful: it predicts one class everywhere, or never
    predicts a class that the true masks contain. Each says the likely cause and the fixes that the run
    (``config``, a :class:`~segfit.config.RunConfig`) has not tried already."""
    confusion = np.asarray(confusion)
    predicted, true = confusion.sum(0), confusion.sum(1)
    present = [i for i in range(len(class_names)) if true[i] > 0]
    fix = _likely_fix(config)
    if len(present) > 1 and int((predicted > 0).sum()) == 1:
        only = class_names[int(np.argmax(predicted))]
        return [f"the model predicts {only} everywhere, though the masks hold {len(present)} classes: {fix}"]
    missing = [class_names[i] for i in present if predicted[i] == 0]
    if missing:
        return [f"the model never predicts {', '.join(missing)}, which the masks contain: {fix}"]
    hits = np.diag(confusion)
    iou = hits / np.maximum(predicted + true - hits, 1)
    poor = [f"{class_names[i]} (IoU {iou[i]:.2f})" for i in present if iou[i] < HARDLY_LEARNED_IOU]
    if poor:
        return [f"the model hardly finds {', '.join(poor)}, which the masks contain: {fix}"]
    accuracy, common = hits.sum() / max(true.sum(), 1), int(np.argmax(true))
    if len(present) > 1 and accuracy < true[common] / true.sum() - WORSE_THAN_CONSTANT:
        return [f"pixel accuracy {accuracy:.2f} is below the {true[common] / true.sum():.2f} of predicting "
                f"{class_names[common]} everywhere: the model mixes the classes up; {fix}"]
    return []


def history_warnings(best: dict, class_names: list[str], present: list[bool], config=None) -> list[str]:
    """:func:`learning_warnings` from the best epoch's row of ``history.csv`` alone (a run without its report's
    evaluation): the classes the validation masks contain (``present``) that the model hardly finds there."""
    poor = [f"{name} (IoU {best[f'val_iou_{name}']:.2f})" for name, here in zip(class_names, present)
            if here and best.get(f"val_iou_{name}", 1.0) < HARDLY_LEARNED_IOU]
    fix = _likely_fix(config)
    return [f"the model hardly finds {', '.join(poor)} on the validation images, which contain it: {fix}"] if poor else []
