"""Segmentation metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segfit.epoch_metrics import SegmentationMetrics, flatten
from segfit.metrics import (
    confusion_per_image,
    image_scores,
    per_class_table,
    scores_from_confusion,
)

# 4x4 binary case: tp = 3, fp = 1, fn = 1, tn = 11.
TRUTH = torch.tensor([[1, 1, 0, 0],
                      [1, 1, 0, 0],
                      [0, 0, 0, 0],
                      [0, 0, 0, 0]])
PRED = torch.tensor([[1, 1, 1, 0],
                     [1, 0, 0, 0],
                     [0, 0, 0, 0],
                     [0, 0, 0, 0]])


def approx(x):
    return pytest.approx(x, abs=1e-12)


def test_confusion_per_image_binary():
    cm = confusion_per_image(PRED[None], TRUTH[None], 2)
    assert cm.shape == (1, 2, 2)
    assert cm[0].tolist() == [[11, 1], [1, 3]]  # rows truth, columns prediction


def test_confusion_per_image_batch_and_multiclass():
    truth = torch.tensor([[[0, 0, 1], [1, 2, 2]], [[2, 2, 2], [2, 2, 2]]])
    pred = torch.tensor([[[0, 1, 1], [1, 2, 0]], [[0, 0, 0], [2, 2, 2]]])
    cm = confusion_per_image(pred, truth, 3)
    assert cm.shape == (2, 3, 3)
    assert cm[0].tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert cm[1].tolist() == [[0, 0, 0], [0, 0, 0], [3, 0, 3]]
    assert int(cm.sum()) == 12


def test_image_scores_binary():
    s = image_scores(confusion_per_image(PRED[None], TRUTH[None], 2))
    assert float(s["iou"][0]) == approx(3 / 5)
    assert float(s["dice"][0]) == approx(6 / 8)
    assert float(s["accuracy"][0]) == approx(14 / 16)


def test_image_scores_empty_cases():
    empty = torch.zeros(4, 4, dtype=torch.long)
    pred = torch.stack([empty, empty, TRUTH])
    truth = torch.stack([empty, TRUTH, empty])
    s = image_scores(confusion_per_image(pred, truth, 2))
    # both empty -> 1; prediction empty but truth not -> 0; prediction where nothing is -> 0
    assert s["iou"].tolist() == [1.0, 0.0, 0.0]
    assert s["dice"].tolist() == [1.0, 0.0, 0.0]
    assert s["accuracy"].tolist() == pytest.approx([1.0, 12 / 16, 12 / 16])


def test_image_scores_multiclass_mean_over_foreground():
    truth = torch.tensor([[[0, 0, 1, 1, 2, 2]]])
    pred = torch.tensor([[[0, 1, 1, 1, 2, 0]]])
    cm = confusion_per_image(pred, truth, 3)
    s = image_scores(cm)
    # class 1: tp 2, fp 1, fn 0 -> 2/3; class 2: tp 1, fp 0, fn 1 -> 1/2 (background 1/3 not counted)
    assert float(s["iou"][0]) == approx((2 / 3 + 1 / 2) / 2)
    assert float(s["dice"][0]) == approx((4 / 5 + 2 / 3) / 2)
    assert float(s["accuracy"][0]) == approx(4 / 6)


def test_image_scores_multiclass_absent_class_scores_one():
    truth = torch.tensor([[[0, 1, 1, 0]]])
    pred = torch.tensor([[[0, 1, 0, 0]]])
    s = image_scores(confusion_per_image(pred, truth, 3))
    # class 1: 1/2, class 2 absent from both -> 1
    assert float(s["iou"][0]) == approx((0.5 + 1.0) / 2)


def test_scores_from_confusion_per_class():
    cm = torch.tensor([[11, 1], [1, 3]])
    s = scores_from_confusion(cm)
    assert s["iou"].tolist() == pytest.approx([11 / 13, 3 / 5])
    assert s["dice"].tolist() == pytest.approx([22 / 24, 6 / 8])
    assert s["precision"].tolist() == pytest.approx([11 / 12, 3 / 4])
    assert s["recall"].tolist() == pytest.approx([11 / 12, 3 / 4])
    assert s["accuracy"].tolist() == pytest.approx([14 / 16, 14 / 16])


def test_scores_from_confusion_asymmetric_three_classes():
    cm = torch.tensor([[5, 2, 0],
                       [1, 3, 0],
                       [0, 4, 0]])
    s = scores_from_confusion(cm)
    # class 1: tp 3, fp 6 (column), fn 1 (row); class 2: tp 0, fp 0, fn 4
    assert s["precision"].tolist() == pytest.approx([5 / 6, 3 / 9, 0.0])
    assert s["recall"].tolist() == pytest.approx([5 / 7, 3 / 4, 0.0])
    assert s["iou"].tolist() == pytest.approx([5 / 8, 3 / 10, 0.0])
    assert s["dice"].tolist() == pytest.approx([10 / 13, 6 / 13, 0.0])
    assert s["accuracy"].tolist() == pytest.approx([(15 - 1 - 2) / 15, (15 - 6 - 1) / 15, (15 - 4) / 15])


def test_scores_from_confusion_absent_class():
    s = scores_from_confusion(torch.tensor([[4, 0, 0], [0, 2, 0], [0, 0, 0]]))
    for metric in ("iou", "dice", "precision", "recall", "accuracy"):
        assert s[metric].tolist() == [1.0, 1.0, 1.0], metric


def test_metric_accumulates_over_the_epoch():
    empty = torch.zeros(4, 4, dtype=torch.long)
    t1 = empty.clone()
    t1[0, 0] = 1
    p1 = t1.clone()  # image 1: tp 1 -> IoU 1
    t2 = empty.clone()
    t2[0, 0] = 1
    p2 = t2.clone()
    p2[3, 1:] = 1  # image 2: tp 1, fp 3 -> IoU 1/4
    split = SegmentationMetrics(2)
    split.update(p1[None], t1[None])
    split.update(p2[None], t2[None])
    a = split.compute()
    # Epoch-accumulated: tp 2, fp 3, fn 0 -> 2/5; averaging the two batches would give 5/8.
    assert float(a["iou_per_class"][1]) == approx(2 / 5)
    assert float(a["iou_per_class"][0]) == approx(27 / 30)
    assert float(a["miou"]) == approx((2 / 5 + 27 / 30) / 2)
    # The per-image figure is the mean over images.
    assert float(a["iou"]) == approx((1 + 1 / 4) / 2)
    assert float(a["accuracy"]) == approx((1 + 13 / 16) / 2)

    whole = SegmentationMetrics(2)
    whole.update(torch.stack([p1, p2]), torch.stack([t1, t2]))
    b = whole.compute()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert split.confusion.tolist() == [[27, 3], [0, 2]]

    split.reset()
    split.update(p1[None], t1[None])
    assert float(split.compute()["iou_per_class"][1]) == 1.0


def test_metric_multiclass_batches():
    truth = torch.tensor([[[0, 0, 1, 1, 2, 2]]])
    pred = torch.tensor([[[0, 1, 1, 1, 2, 0]]])
    m = SegmentationMetrics(3)
    m.update(pred, truth)
    m.update(truth, truth)  # a perfect image
    out = m.compute()
    assert m.confusion.tolist() == [[3, 1, 0], [0, 4, 0], [1, 0, 3]]
    assert out["iou_per_class"].tolist() == pytest.approx([3 / 5, 4 / 5, 3 / 4])
    assert float(out["iou"]) == approx(((2 / 3 + 1 / 2) / 2 + 1) / 2)
    assert int(m.images) == 2


def test_flatten_names_every_value():
    m = SegmentationMetrics(2)
    m.update(PRED[None], TRUTH[None])
    flat = flatten(m.compute(), ["background", "particle"], "val_")
    assert flat["val_iou"] == approx(3 / 5)
    assert flat["val_iou_particle"] == approx(3 / 5)
    assert flat["val_iou_background"] == approx(11 / 13)
    assert flat["val_precision_particle"] == approx(3 / 4)
    assert flat["val_miou"] == approx((3 / 5 + 11 / 13) / 2)
    assert len(flat) == 4 + 5 * 2


def test_per_class_table():
    table = per_class_table(np.array([[11, 1], [1, 3]]), ["background", "particle"])
    assert list(table) == ["background", "particle"]
    assert table["particle"] == pytest.approx({"iou": 3 / 5, "dice": 3 / 4, "precision": 3 / 4,
                                               "recall": 3 / 4, "accuracy": 7 / 8})
    assert table["background"]["iou"] == approx(11 / 13)
    assert all(isinstance(v, float) for row in table.values() for v in row.values())
