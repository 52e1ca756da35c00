"""Instance matching (segfit.instances) on crafted label images, and `evaluate --instances`."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage.draw import disk

from segfit.instances import InstanceMatch, equivalent_diameter, match_instances, truth_instances


def _discs(shape, centres_radii, start=1):
    labels = np.zeros(shape, np.int32)
    for i, (cy, cx, r) in enumerate(centres_radii):
        labels[disk((cy, cx), r, shape=shape)] = start + i
    return labels


def test_identical_label_images_match_every_object():
    truth = _discs((64, 64), [(12, 12, 6), (40, 40, 9), (12, 48, 4)])
    pred = truth * 7  # other ids, same objects
    m = match_instances(truth, pred)
    s = m.scores()
    assert (m.tp, m.fp, m.fn) == (3, 0, 0)
    assert s["precision"] == s["recall"] == s["f1"] == 1.0
    assert s["count_error"] == 0 and s["diameter_error"] == 0.0 and s["matched_iou"] == 1.0
    areas = np.bincount(truth.ravel())[1:]
    assert s["mean_diameter_true"] == pytest.approx(np.mean(np.sqrt(4 * areas / np.pi)))


def test_missed_extra_and_shifted_objects():
    truth = _discs((80, 80), [(15, 15, 8), (50, 50, 8), (15, 60, 5)])
    # object 1 found exactly; object 2 shifted by 3 px (IoU well above 0.5); object 3 missed;
    # one predicted object where there is none.
    pred = _discs((80, 80), [(15, 15, 8), (53, 50, 8), (70, 10, 4)])
    m = match_instances(truth, pred)
    assert (m.tp, m.fp, m.fn) == (2, 1, 1)
    s = m.scores()
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3)
    assert s["count_true"] == 3 and s["count_pred"] == 3 and s["count_error"] == 0


def test_a_poor_overlap_is_not_a_match():
    truth = _discs((60, 60), [(30, 20, 10)])
    pred = _discs((60, 60), [(30, 34, 10)])  # centres 14 px apart: IoU about 0.1
    m = match_instances(truth, pred)
    assert (m.tp, m.fp, m.fn) == (0, 1, 1)
    assert m.scores()["f1"] == 0.0


def test_merged_prediction_matches_at_most_one_true_object():
    truth = np.zeros((40, 60), np.int32)
    truth[10:30, 5:25] = 1
    truth[10:30, 25:45] = 2  # two touching squares
    pred = (truth > 0).astype(np.int32)  # predicted as one object: IoU 0.5 with each
    m = match_instances(truth, pred)
    assert m.tp == 1 and m.fn == 1 and m.fp == 0  # never matched twice
    m = match_instances(truth, pred, iou_threshold=0.51)
    assert m.tp == 0


def test_empty_images_score_one_and_sum():
    empty = np.zeros((10, 10), np.int32)
    assert match_instances(empty, empty).scores()["f1"] == 1.0
    one = _discs((10, 10), [(5, 5, 3)])
    total = match_instances(empty, empty) + match_instances(one, one) + match_instances(one, empty)
    assert isinstance(total, InstanceMatch)
    assert (total.tp, total.fp, total.fn) == (1, 0, 1)
    assert total.scores()["recall"] == 0.5


def test_diameter_error_is_predicted_minus_true():
    truth = _discs((50, 50), [(25, 25, 10)])
    pred = _discs((50, 50), [(25, 25, 12)])
    s = match_instances(truth, pred).scores()
    a_t, a_p = (truth > 0).sum(), (pred > 0).sum()
    assert s["diameter_error"] == pytest.approx(float(equivalent_diameter(a_p) - equivalent_diameter(a_t)))
    assert s["diameter_error"] == pytest.approx(4.0, abs=1.0)


def test_truth_instances_uses_instance_ids_or_components():
    raw = np.zeros((20, 20), np.uint16)
    raw[2:8, 2:8] = 300
    raw[2:8, 8:14] = 301  # touching, but distinct instances
    ids = (raw > 0).astype(np.uint8)
    inst = truth_instances(raw, ids, 1, binary=True)
    assert len(np.unique(inst[inst > 0])) == 2
    binary_raw = (raw > 0).astype(np.uint8) * 255
    comp = truth_instances(binary_raw, ids, 1, binary=True)
    assert len(np.unique(comp[comp > 0])) == 1


def test_evaluate_instances_on_instance_maps(tmp_path, trained_run):
    import segfit

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    metrics = segfit.evaluate(run, split="test", instances=True, verbose=False)
    inst = metrics["instances"]
    for key in ("precision", "recall", "f1", "count_true", "count_pred", "count_error", "mean_diameter_true",
                "mean_diameter_pred", "diameter_error", "mean_abs_count_error_per_image"):
        assert key in inst
    # The true count is the number of distinct instance ids in the test masks.
    split = json.loads((run / "split.json").read_text())
    config = json.loads((run / "config.json").read_text())
    root = config["data"]["root"]
    true_count = sum(len(np.unique(a[a > 0])) for a in
                     (np.asarray(Image.open(f"{root}/segmaps/{n}.png")) for n in split["test"]))
    assert inst["count_true"] == true_count
    assert inst["count_error"] == inst["count_pred"] - inst["count_true"]
    assert 0.0 <= inst["f1"] <= 1.0
    per_image = pd.read_csv(run / "eval_test" / "per_image.csv")
    for col in ("instance_precision", "instance_recall", "instance_f1", "count_true", "count_pred", "count_error",
                "mean_diameter_true", "mean_diameter_pred", "diameter_error"):
        assert col in per_image
    assert per_image["count_true"].sum() == true_count
    assert per_image["count_pred"].sum() == inst["count_pred"]
    tp_fp = inst["tp"] + inst["fp"]
    assert inst["precision"] == pytest.approx(inst["tp"] / tp_fp if tp_fp else 0.0) or math.isclose(tp_fp, 0)
    # The report gained the test section with the object table.
    page = (run / "report.html").read_text()
    assert "Test set" in page and "Objects (matched at IoU" in page


def test_object_scores_per_class_for_index_masks():
    from segfit.instances import ObjectScores

    truth = np.zeros((40, 40), np.uint8)
    truth[2:10, 2:10] = 1  # one "leaves" object
    truth[20:30, 20:30] = 2  # two "wood" objects
    truth[20:30, 33:38] = 2
    pred = truth.copy()
    pred[33:37, 2:6] = 1  # an extra leaf
    pred[20:30, 33:38] = 0  # a missed piece of wood
    scores = ObjectScores(["background", "leaves", "wood"], binary=False, split_touching=False, min_distance=5, min_area=0)
    row = scores.add("a", truth, truth, pred)
    assert row["count_true_leaves"] == 1 and row["count_pred_leaves"] == 2 and row["instance_precision_leaves"] == 0.5
    assert row["count_true_wood"] == 2 and row["count_pred_wood"] == 1 and row["instance_recall_wood"] == 0.5
    summary = scores.summary()
    assert summary["per_class"]["leaves"]["fp"] == 1 and summary["per_class"]["wood"]["fn"] == 1
    assert (summary["tp"], summary["fp"], summary["fn"]) == (2, 1, 1)
    assert summary["count_error"] == 0 and summary["mean_abs_count_error_per_image"] == 2.0
    assert summary["mean_f1_per_image"] == pytest.approx(2 * 2 / (3 + 3))  # one image: 2 matches, 3 true, 3 predicted
