"""Learned instances: a tiny network trained on instance maps of touching discs separates the pairs that its
own class map merges; predict, evaluate and quantify use those objects."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image
from skimage.draw import disk

import segfit
from segfit.data.formats import read_mask
from segfit.data.layouts import discover
from segfit.data.preprocess import read_pair
from segfit.instances import SEED_LEVELS, InstanceMatch, match_instances
from segfit.objects import true_objects


def _touching_pairs(root, n=24, size=64, seed=0):
    """Images of two touching bright discs (radius 8-11) on a dark, noisy background; 16-bit instance maps."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "segmaps").mkdir(parents=True)
    for i in range(n):
        labels = np.zeros((size, size), np.uint16)
        r = rng.uniform(8, 11)
        cy, cx = rng.uniform(r + 2, size - r - 2), rng.uniform(r + 2, size - 3 * r - 2)
        labels[disk((cy, cx), r, shape=labels.shape)] = 1
        labels[disk((cy, cx + 1.8 * r), r, shape=labels.shape)] = 2  # overlapping: the pair touches
        image = 0.25 + 0.5 * (labels > 0) + rng.normal(0, 0.05, labels.shape)
        Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8)).save(root / "images" / f"p{i:02d}.png")
        Image.fromarray(labels).save(root / "segmaps" / f"p{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    root = _touching_pairs(tmp_path_factory.mktemp("pairs") / "data")
    run = tmp_path_factory.mktemp("pairs-run") / "run"
    segfit.train(root, run, instances=True, model="unet", encoder="resnet18", encoder_depth=3, decoder_channels=[32, 16, 8],
                 channels=1, epochs=25, batch_size=4, lr=3e-3, optimizer="adamw", scheduler="onecycle", augment="light",
                 val=4, test=0.25, seed=0, preload=True, plan=False, verbose=False, report=False)
    return root, run


def test_a_tiny_model_separates_touching_pairs_that_its_class_map_merges(pairs):
    root, run = pairs
    predictor = segfit.Predictor.from_checkpoint(run)
    assert predictor.learns_instances and predictor.config.model.out_channels == 2
    names = json.loads((run / "split.json").read_text())["test"]
    images = [np.asarray(Image.open(root / "images" / f"{n}.png")) for n in names]
    results = predictor.predict_objects(images)
    merged = [len(np.unique(true_objects(c, c, binary=False))) - 1 for c, _ in results]
    assert max(merged) == 1  # the class map alone: every pair is one blob
    separated = sum(len(np.unique(found[found > 0])) == 2 for _, found in results)
    assert separated >= 0.8 * len(names)
    truth = [read_mask(root / "segmaps" / f"{n}.png") for n in names]
    total = sum((match_instances(t, found) for t, (_, found) in zip(truth, results)), InstanceMatch())
    assert total.scores()["f1"] >= 0.8


def test_instances_png_round_trips_and_quantify_and_evaluate_use_the_models_objects(pairs, tmp_path, capsys):
    root, run = pairs
    run = shutil.copytree(run, tmp_path / "run")
    out = tmp_path / "pred"
    segfit.predict(run, [root / "images" / "p00.png"], out, verbose=False)
    predictor = segfit.Predictor.from_checkpoint(run)
    image = np.asarray(Image.open(root / "images" / "p00.png"))
    classes, objects = predictor.predict_objects([image])[0]
    written = read_mask(out / "p00_instances.png")
    assert written.dtype == np.uint16 and np.array_equal(written, objects)
    assert np.array_equal(read_mask(out / "p00.png"), classes)
    overlay = np.asarray(Image.open(out / "p00_overlay.png"))
    from segfit.viz import CONTOUR
    assert (overlay == CONTOUR).all(-1).sum() > 0  # object outlines are drawn

    summary = segfit.quantify(out, tmp_path / "q", verbose=False)
    assert summary["objects"] == "the model's instances"
    assert summary["classes"]["foreground"]["objects"] == len(np.unique(objects[objects > 0]))

    metrics = segfit.evaluate(run, split="test", instances=True, overlays=False, verbose=False, pixel_size=2.0, unit="nm")
    inst = metrics["instances"]
    assert inst["predicted_objects"] == "the model's instances" and inst["f1"] >= 0.8
    assert 0 <= inst["map"] <= inst["ap50"] <= 1
    assert inst["diameter_wasserstein_unit"] == pytest.approx(2 * inst["diameter_wasserstein"])
    assert (run / "eval_test" / "sizes.png").is_file()
    posthoc = segfit.evaluate(run, split="test", instances=True, overlays=False, verbose=False, report=False,
                              model_instances=False, out=tmp_path / "posthoc")
    assert posthoc["instances"]["predicted_objects"] == "components"
    assert posthoc["instances"]["count_pred"] < inst["count_pred"]  # components merge the pairs
    watershed = segfit.evaluate(run, split="test", instances=True, overlays=False, verbose=False, report=False,
                                split_touching=True, out=tmp_path / "watershed")  # asked for: not ignored
    assert watershed["instances"]["predicted_objects"] != "the model's instances"
    page = (run / "report.html").read_text()
    assert "AP50" in page and "true vs predicted" in page

    segfit.report(run, refresh=True, verbose=False)  # calibrates the seed level on the validation images
    calibrated = json.loads((run / "summary.json").read_text())["instances"]
    assert calibrated["seed_level"] in SEED_LEVELS and calibrated["f1"] == max([*calibrated["f1_by_level"].values(), *calibrated["f1_by_merge"].values()])
    assert segfit.Predictor.from_checkpoint(run).seed_level == calibrated["seed_level"]
    planned = segfit.Predictor.from_checkpoint(run).config.model.min_object_area
    assert calibrated["min_object_area"] in {planned, 2 * planned} and len(calibrated["f1_by_area"]) == (2 if planned > 1 else 1)
    summary = json.loads((run / "summary.json").read_text())
    summary["instances"]["min_object_area"] = 10**6  # the calibrated fragment floor is the one predictions use ...
    (run / "summary.json").write_text(json.dumps(summary))
    assert segfit.Predictor.from_checkpoint(run).predict_objects([image])[0][1].max() == 0
    capsys.readouterr()
    floored = segfit.evaluate(run, split="test", instances=True, overlays=False, verbose=True, report=False, out=tmp_path / "floor")
    assert floored["instances"]["min_object_area"] == 10**6 and floored["instances"]["count_pred"] == 0
    assert "(the model's instances; under 1000000 px: fragments): 0 predicted" in capsys.readouterr().out
    mine = segfit.evaluate(run, split="test", instances=True, overlays=False, verbose=False, report=False, out=tmp_path / "mine",
                           min_area=1)  # ... unless the user gives their own
    assert mine["instances"]["min_object_area"] == 1 and mine["instances"]["count_pred"] > 0
    summary["instances"]["min_object_area"] = calibrated["min_object_area"]
    summary["instances"]["seed_level"] = 0.999  # no core reaches it: each touching pair stays one object
    (run / "summary.json").write_text(json.dumps(summary))
    unseeded = segfit.Predictor.from_checkpoint(run)
    assert unseeded.seed_level == 0.999
    assert len(np.unique(unseeded.predict_objects([image])[0][1])) == 2  # background + the merged pair


def test_averaged_predictions_seed_at_their_own_calibrated_level(pairs, monkeypatch):
    """--tta averages the distance maps, lowering their peaks where the variants disagree: the predictor is calibrated
    again on the run's validation images as it will predict; one model alone keeps its run's levels."""
    from segfit.seeding import calibrate_averaged, _validation_names

    root, run = pairs
    single = segfit.Predictor.from_checkpoint(run)
    assert calibrate_averaged(single, say=lambda *a: None) is None
    averaged = segfit.Predictor.from_checkpoint(run, tta=True)
    assert len(averaged.variants) == 8
    names = json.loads((run / "split.json").read_text())["val"]
    assert _validation_names(averaged.checkpoint) == names
    seen = []
    from segfit.instances import SeedSweep

    add = SeedSweep.add
    monkeypatch.setattr(SeedSweep, "add", lambda self, *a: (seen.append(a[3]), add(self, *a)))
    said = []
    best = calibrate_averaged(averaged, say=said.append)
    assert len(seen) == len(names) and best["seed_level"] == averaged.seed_level and "validation images" in said[0]
    assert averaged.merge_level == best["merge_level"] and best["f1"] >= 0.8
    # the sweep saw the averaged distance maps, the ones prediction seeds from
    image, _, _ = read_pair(next(s for s in discover(root).samples if s.name == names[0]), averaged.config.data, raw=True)
    assert np.allclose(seen[0], averaged.predict_full([image], distance=True)[0].distance, atol=1e-5)


def test_a_calibration_made_with_the_planned_variants_is_used_as_it_is_and_one_pass_calibrates_its_own(pairs):
    """A run whose plan predicts with test-time variants calibrated its objects on averaged outputs (summary.json
    records ``members`` and ``variants``): predicting so reuses it; one pass (--no-tta) calibrates its own levels."""
    from segfit.ensemble import VARIANTS
    from segfit.seeding import calibrate_averaged

    root, run = pairs
    kept = (run / "summary.json").read_text()
    summary = json.loads(kept)
    summary["instances"] = {**(summary.get("instances") or {}), "members": 1, "variants": list(VARIANTS), "seed_level": 0.999}
    (run / "summary.json").write_text(json.dumps(summary))
    try:
        averaged = segfit.Predictor.from_checkpoint(run, tta=True)
        assert calibrate_averaged(averaged, say=lambda *a: None) is None and averaged.seed_level == 0.999
        single = segfit.Predictor.from_checkpoint(run, tta=False)
        best = calibrate_averaged(single, say=lambda *a: None)
        assert best is not None and best["variants"] == ["identity"] and single.seed_level == best["seed_level"] < 0.999
    finally:
        (run / "summary.json").write_text(kept)  # the module's run, as the other tests expect it


def test_an_exported_averaged_network_carries_its_own_seed_levels(pairs, tmp_path):
    root, run = pairs
    out = segfit.export(run, tmp_path / "tta.onnx", "onnx", tta=True, verbose=False)
    meta = json.loads(out.with_name("tta.onnx.json").read_text())
    assert "averaged" in meta["calibration"]["instances"]["how"] and meta["tta"] and len(meta["tta"]) == 8
    assert segfit.Predictor.from_checkpoint(out).seed_level == meta["calibration"]["instances"]["seed_level"]
