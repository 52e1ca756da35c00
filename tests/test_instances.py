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

from segfit.instances import SEED_LEVELS, InstanceMatch, SeedSweep, equivalent_diameter, match_instances
from segfit.objects import distance_target, instances_from_distance, merge_without_valley, true_objects


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
    # Summed in place (a seed sweep's running totals): the same figures, and the added match is left as it was.
    running, added = InstanceMatch(), match_instances(one, one)
    for m in (match_instances(empty, empty), added, match_instances(one, empty)):
        running += m
    assert running == total and added == match_instances(one, one) and running is not added


def test_diameter_error_is_predicted_minus_true():
    truth = _discs((50, 50), [(25, 25, 10)])
    pred = _discs((50, 50), [(25, 25, 12)])
    s = match_instances(truth, pred).scores()
    a_t, a_p = (truth > 0).sum(), (pred > 0).sum()
    assert s["diameter_error"] == pytest.approx(float(equivalent_diameter(a_p) - equivalent_diameter(a_t)))
    assert s["diameter_error"] == pytest.approx(4.0, abs=1.0)


def test_true_objects_uses_instance_ids_or_components():
    raw = np.zeros((20, 20), np.uint16)
    raw[2:8, 2:8] = 300
    raw[2:8, 8:14] = 301  # touching, but distinct instances
    ids = (raw > 0).astype(np.uint8)
    inst = true_objects(raw, ids, binary=True)
    assert len(np.unique(inst[inst > 0])) == 2
    binary_raw = (raw > 0).astype(np.uint8) * 255
    comp = true_objects(binary_raw, ids, binary=True)
    assert len(np.unique(comp[comp > 0])) == 1
    classes = np.zeros((20, 20), np.uint8)
    classes[1:4, 1:4], classes[10:12, 10:12], classes[15:18, 1:4] = 1, 2, 1  # two of class 1, one of class 2
    per_class = true_objects(classes, classes, binary=False)
    assert sorted(np.unique(per_class).tolist()) == [0, 1, 2, 3]
    assert len(np.unique(per_class[classes == 1])) == 2 and len(np.unique(per_class[classes == 2])) == 1


def test_average_precision_matches_hand_computed_values():
    # Two true squares of 100 px; the prediction covers one exactly (IoU 1), the other shifted by 3 columns
    # (IoU 70 / 130 = 0.538), and adds a false object.
    truth = np.zeros((40, 60), np.int32)
    truth[0:10, 0:10], truth[20:30, 20:30] = 1, 2
    pred = np.zeros_like(truth)
    pred[0:10, 0:10], pred[20:30, 23:33], pred[0:5, 50:55] = 1, 2, 3
    m = match_instances(truth, pred)
    assert (m.tp, m.fp, m.fn) == (2, 1, 0)
    s = m.scores()
    assert s["ap50"] == pytest.approx(2 / 3)  # 2 TP, 1 FP, 0 FN
    # at 0.55 and above only the exact match counts: 1 / (1 + 2 + 1)
    expected = (2 / 3 + 9 * (1 / 4)) / 10
    assert s["map"] == pytest.approx(expected)
    assert m.average_precision(0.95) == pytest.approx(0.25)
    # Wasserstein-1 of the diameters: true {d100, d100}, predicted {d100, d100, d25}
    d100, d25 = equivalent_diameter(100.0), equivalent_diameter(25.0)
    from scipy.stats import wasserstein_distance
    assert s["diameter_wasserstein"] == pytest.approx(wasserstein_distance([d100, d100], [d100, d100, d25]))
    assert s["diameter_wasserstein"] == pytest.approx((d100 - d25) / 3)
    assert m.scores(pixel_size=2.0)["diameter_wasserstein_unit"] == pytest.approx(2 * s["diameter_wasserstein"])


def test_distance_target_is_exact_on_crafted_objects():
    labels = np.zeros((9, 13), np.int32)
    labels[1:8, 1:8] = 1  # a 7x7 square: distance to its outline 1..4, centre 4
    labels[1:8, 8:11] = 2  # a 7x3 bar touching it: its own outline is the shared edge
    d = distance_target(labels)
    assert d.dtype == np.float32 and d[labels == 0].max() == 0
    assert d[4, 4] == 1.0 and d[1, 1] == pytest.approx(0.25) and d[4, 2] == pytest.approx(0.5)
    assert d[4, 7] == pytest.approx(0.25)  # beside the other object: the outline, not the middle of the merged blob
    assert d[4, 9] == 1.0 and d[4, 8] == pytest.approx(0.5) and d[1, 9] == pytest.approx(0.5)
    # With a radius, deeper pixels of an object form a plateau; smaller objects keep their own peak.
    clipped = distance_target(labels, radius=2)
    assert clipped[4, 4] == 1.0 and clipped[4, 3] == 1.0 and clipped[1, 1] == pytest.approx(0.5)
    assert clipped[4, 9] == 1.0 and clipped[4, 8] == pytest.approx(0.5)  # the bar is 2 deep: its own peak
    # An object cut by the image border ends there.
    edge = np.zeros((5, 5), np.int32)
    edge[:, :3] = 1
    assert distance_target(edge)[2, 0] == pytest.approx(1 / 2)


def test_instances_from_distance_separates_touching_discs():
    truth = _discs((48, 80), [(24, 22, 12), (24, 42, 12)])  # overlapping discs: the second wins the overlap
    merged = (truth > 0).astype(np.uint8)
    assert len(np.unique(true_objects(merged, merged, binary=True))) == 2  # one component: background + 1
    objects = instances_from_distance(merged, distance_target(truth))
    m = match_instances(truth, objects)
    assert (m.tp, m.fp, m.fn) == (2, 0, 0) and min(m.ious) > 0.95
    assert (objects > 0).sum() == (truth > 0).sum()  # no pixel lost
    # A part of the class map with no core still becomes an object; classes are kept apart.
    classes = merged.copy()
    classes[2:5, 2:5] = 2
    objects = instances_from_distance(classes, distance_target(truth))
    assert objects.max() == 3 and len(np.unique(objects[classes == 2])) == 1


def test_fragments_join_their_neighbour_and_isolated_ones_are_dropped():
    truth = _discs((48, 48), [(24, 24, 14)])
    classes = (truth > 0).astype(np.uint8)
    classes[2:5, 40:43] = 1  # an isolated speck of 9 px
    distance = distance_target(truth)
    distance[24:26, 13:15] = 0.95  # a second core near the disc's edge cuts a fragment off it
    pieces = instances_from_distance(classes, distance, 0.5)
    assert pieces.max() == 3  # disc, fragment, speck
    objects = instances_from_distance(classes, distance, 0.5, min_area=40)
    assert objects.max() == 1 and ((objects > 0) == (truth > 0)).all()  # the fragment is back in its disc; the speck is gone


def test_fragments_absorbed_box_by_box_match_one_watershed_of_the_whole_image():
    """Fragments are flooded group by group in their own boxes: the same objects as one watershed of the image,
    with neighbouring fragments, fragments between two objects and isolated specks; renumbering by counts (dense
    ids) and by sorting (sparse 32-bit ids) number the objects alike, in raster order."""
    from scipy import ndimage
    from skimage.segmentation import watershed

    from segfit.objects import _absorb, renumber

    rng = np.random.default_rng(3)
    for _ in range(5):
        truth = _discs((80, 96), [(int(rng.integers(12, 68)), int(rng.integers(12, 84)), int(rng.integers(5, 14))) for _ in range(7)])
        mask = ndimage.binary_dilation(truth > 0, iterations=2) | (rng.random(truth.shape) > 0.985)
        distance = ndimage.gaussian_filter(distance_target(truth) + 0.3 * rng.random(truth.shape), 1).astype(np.float32)
        labels = instances_from_distance(mask.astype(np.uint8), distance, 0.6)  # cores, their pieces, isolated specks
        counts = np.bincount(labels.ravel())
        fragments = (counts < 30)[labels] & (labels > 0)
        assert fragments.any()
        whole = watershed(-distance, np.where(fragments, 0, labels), mask=mask, connectivity=2)
        assert (_absorb(labels, fragments, distance, mask) == whole).all()
        assert (renumber(whole, 20) == renumber(whole.astype(np.int64) * 10**9, 20)).all()
        assert (renumber(whole, 20) == renumber(whole.astype(np.float32), 20)).all()
    assert (renumber(np.eye(3, dtype=bool)) == np.eye(3)).all() and renumber(np.zeros((0, 4), np.int32)).shape == (0, 4)
    square = np.zeros((6, 16), np.int32)
    square[:, :10], square[:3, 10:13] = 1, 2  # a square fragment: its own box holds none of its neighbour
    flat = np.ones(square.shape, np.float32)
    absorbed = _absorb(square, square == 2, flat, square > 0)
    assert (absorbed[:3, 10:13] == 1).all() and (absorbed[square == 0] == 0).all()


def test_cores_of_one_plateau_join_and_touching_objects_stay_apart():
    """A large object's plateau that noise cuts into two cores is one object at a merge level; two touching
    discs, with a valley between them, stay two."""
    big = _discs((64, 64), [(32, 32, 24)])
    classes = (big > 0).astype(np.uint8)
    distance = distance_target(big, radius=6)
    distance[:, 31:33] = np.minimum(distance[:, 31:33], 0.75)  # a dip across the plateau
    assert instances_from_distance(classes, distance, 0.8).max() == 2
    assert merge_without_valley(instances_from_distance(classes, distance, 0.8), distance, 0.5).max() == 1
    joined = instances_from_distance(classes, distance, 0.8, merge_level=0.5)
    assert joined.max() == 1 and ((joined > 0) == (big > 0)).all()
    assert instances_from_distance(classes, distance, 0.8, merge_level=0.8).max() == 2  # the dip is below 0.8
    pair = _discs((48, 80), [(24, 22, 12), (24, 42, 12)])
    merged = (pair > 0).astype(np.uint8)
    assert instances_from_distance(merged, distance_target(pair), 0.5, merge_level=0.5).max() == 2
    sweep = SeedSweep(levels=(0.8,))
    sweep.add(big, classes, classes, distance)
    sweep.add(pair, merged, merged, distance_target(pair))
    best = sweep.best("two crafted images")
    assert best["merge_level"] == 0.5 and best["f1"] == 1.0 and best["f1_by_merge"]["None"] < 1.0


def test_seed_sweep_picks_the_level_that_splits_a_bridged_pair():
    truth = _discs((48, 80), [(24, 22, 12), (24, 42, 12)])
    merged = (truth > 0).astype(np.uint8)
    distance = distance_target(truth)
    distance[22:27, 24:39] = np.maximum(distance[22:27, 24:39], 0.65)  # a ridge joins the cores above 0.5 and 0.6
    sweep = SeedSweep()
    sweep.add(truth, merged, merged, distance)
    best = sweep.best("one crafted image")
    assert set(best["f1_by_level"]) == {str(lv) for lv in SEED_LEVELS}
    assert max(best["f1_by_level"][lv] for lv in ("0.3", "0.4", "0.5", "0.6")) < 1  # the ridge merges the pair
    assert best["f1_by_level"]["0.7"] == best["f1_by_level"]["0.8"] == 1.0
    assert best["seed_level"] == 0.7 and best["f1"] == 1.0  # of the tied levels, the one nearer one half
    assert best["merge_level"] is None  # merging gains nothing here: ties go to no merging
    empty = SeedSweep()
    empty.add(np.zeros((8, 8), np.int32), np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.float32))
    assert empty.best("nothing") is None
    # Past its deadline (a run's time budget) a sweep scores the first few images only.
    import time

    from segfit.instances import MIN_SWEEP_IMAGES

    late = SeedSweep(deadline=time.perf_counter() - 1)
    for _ in range(MIN_SWEEP_IMAGES + 3):
        late.add(truth, merged, merged, distance)
    assert late.images == MIN_SWEEP_IMAGES
    assert late.total[0.7, None, 0, None].count_true == MIN_SWEEP_IMAGES * 2  # two discs an image, each image scored at each level
    on_time = SeedSweep(deadline=time.perf_counter() + 3600)
    for _ in range(MIN_SWEEP_IMAGES + 3):
        on_time.add(truth, merged, merged, distance)
    assert on_time.images == MIN_SWEEP_IMAGES + 3


def test_seed_sweep_raises_the_fragment_floor_where_a_large_object_breaks():
    """A bump of the distance map near a large disc's edge cuts a piece off it (one false object, and the disc
    still matched): the sweep tries 1x and 2x the planned floor and keeps the one that folds the piece back,
    without losing the small true disc; objects and the fragment floor agree with instances_from_distance."""
    truth = _discs((64, 96), [(32, 30, 16), (32, 78, 7)])
    classes = (truth > 0).astype(np.uint8)
    distance = distance_target(truth)
    distance[20:22, 19:21] = 0.95  # a second core inside the large disc, near its edge
    pieces = instances_from_distance(classes, distance, 0.8)
    assert pieces.max() == 3
    fragment = int(np.bincount(pieces.ravel()).min())  # the piece the bump cut off (the smallest object)
    floor = math.ceil(fragment / 1.5)  # floor <= fragment < 2 floor; the small true disc is over 2 floors
    assert floor <= fragment < 2 * floor and (truth == 2).sum() >= 2 * floor
    sweep = SeedSweep(floor, levels=(0.8,), merges=(None,))
    assert sweep.areas == (floor, 2 * floor)
    sweep.add(truth, classes, classes, distance)
    best = sweep.best("one crafted image")
    assert best["f1_by_area"][str(floor)] == pytest.approx(0.8) and best["f1_by_area"][str(2 * floor)] == 1.0
    assert best["min_object_area"] == 2 * floor and best["f1"] == 1.0
    tied = SeedSweep(fragment + 1, levels=(0.8,), merges=(None,))  # both floors fold the piece back: the planned one
    tied.add(truth, classes, classes, distance)
    assert tied.best("one crafted image")["min_object_area"] == fragment + 1
    folded = instances_from_distance(classes, distance, 0.8, min_area=2 * floor)
    assert folded.max() == 2 and ((folded > 0) == (truth > 0)).all()  # the piece joined the disc: no pixel lost
    assert SeedSweep(0).areas == (0,)  # no planned floor: nothing to sweep


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


def test_merging_reads_a_large_map_a_block_of_rows_at_a_time():
    """Stripes 4 rows high on a 1500 x 2048 map (blocks of 512 rows: stripes 127 and 128 meet across the
    first block's edge); every third stripe is low, so its borders are valleys, and stripes 3k+1 and 3k+2
    meet high up and join: 375 stripes, 125 joined pairs. Its transpose (other blocks) merges the same."""
    stripe = np.arange(1500) // 4
    labels = np.repeat((stripe + 1)[:, None], 2048, axis=1).astype(np.int32)
    distance = np.repeat(np.where(stripe % 3 == 0, 0.2, 0.7)[:, None], 2048, axis=1).astype(np.float32)
    merged = merge_without_valley(labels, distance, 0.5)
    assert len(np.unique(merged)) == 375 - 125 and merged[511, 0] == merged[512, 0] != merged[507, 0]
    flipped = merge_without_valley(np.ascontiguousarray(labels.T), np.ascontiguousarray(distance.T), 0.5).T
    assert np.array_equal(flipped, merged)


def test_seed_sweep_takes_the_plainer_decoding_within_noise_of_the_best_f1():
    from segfit.instances import F1_TIE

    def chosen(unmerged_f1: float) -> tuple:
        sweep = SeedSweep(0, levels=(0.5, 0.7), merges=(None, 0.5), unsure=(None,))
        for key in sweep.total:  # F1 = 2 tp / (2 tp + fp + fn), 1000 true objects each
            f1 = 0.80 if key == (0.7, 0.5, 0, None) else unmerged_f1 if key == (0.5, None, 0, None) else 0.5
            tp = round(1000 * f1)
            sweep.total[key] = InstanceMatch(tp=tp, fp=1000 - tp, fn=1000 - tp)
        best = sweep.best("crafted")
        return best["seed_level"], best["merge_level"]

    assert chosen(0.80 - F1_TIE / 2) == (0.5, None)  # within noise: seeds at the middle level, nothing merged
    assert chosen(0.80 - 2 * F1_TIE) == (0.7, 0.5)  # clearly better: merging at a higher seed level
