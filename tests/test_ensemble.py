"""Ensembles, test-time augmentation and uncertainty: folds, averaging, entropy, review flags, and
`segfit train --folds` / `predict --tta --uncertainty` end to end on a tiny data set."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from segfit.config import RunConfig
from segfit.decoding import SelfAgreement, decode, image_uncertainty, region_uncertainty
from segfit.ensemble import VARIANTS, AveragedBackend, entropy, review_calibration, tta_variants
from segfit.errors import SegfitError
from segfit.folds import fold_splits
from segfit.options import resolve_data
from segfit.predictor import Predictor


class _Fixed:
    """A backend whose logits are ``f(batch)``."""

    def __init__(self, f, classes=2):
        self.config = RunConfig()
        self.config.data.num_classes = self.config.model.num_classes = classes
        self.config.data.channels = self.config.model.in_channels = 1
        self.config.train.augment = "light"
        resolve_data(self.config.data)
        self.f, self.path, self.device, self.multiple = f, None, torch.device("cpu"), 1

    def logits(self, batch):
        return self.f(batch)


def test_folds_partition_the_training_images_without_overlap_and_reproducibly():
    split = {"train": [f"a{i}" for i in range(17)], "val": [f"b{i}" for i in range(6)], "test": ["t0", "t1"], "source": "x"}
    folds = fold_splits(split, 5, seed=3)
    vals = [set(f["val"]) for f in folds]
    assert sum(len(v) for v in vals) == 23 and set().union(*vals) == set(split["train"] + split["val"])
    for f in folds:
        assert not set(f["train"]) & set(f["val"]) and set(f["train"]) | set(f["val"]) == set().union(*vals)
        assert f["test"] == ["t0", "t1"]
    assert {len(v) for v in vals} <= {4, 5}
    shuffled = {**split, "train": split["train"][::-1]}
    assert fold_splits(shuffled, 5, seed=3) == folds  # the order names come in does not matter
    assert fold_splits(split, 5, seed=4) != folds
    few = {**split, "train": ["a0"], "val": ["b0"]}
    with pytest.raises(SegfitError, match=r"--folds 5: 2 training images make 2 to 2 folds: use e.g. --folds 2 "):
        fold_splits(few, 5)


def test_tta_of_an_equivariant_model_and_an_ensemble_of_identical_members_return_the_model_itself():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 1, 1)  # pixel-wise: equivariant to every flip and rotation
    model = _Fixed(lambda x: conv(x))
    x = torch.randn(2, 1, 12, 20)
    with torch.no_grad():
        own = model.logits(x)
        tta = AveragedBackend([model], tta_variants("light")).logits(x)
        ensemble = AveragedBackend([model, model, model]).logits(x)
    assert len(tta_variants("light")) == 8 and tta_variants("photo") == ("identity", "hflip")
    torch.testing.assert_close(tta, own, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ensemble, own, atol=1e-4, rtol=1e-4)
    for name, (forward, inverse) in VARIANTS.items():  # each variant is undone exactly
        assert torch.equal(inverse(forward(x)), x), name
    square = torch.arange(9.0).reshape(1, 1, 3, 3)
    seen = {name: forward(square).flatten().tolist() for name, (forward, _) in VARIANTS.items()}
    assert len({tuple(v) for v in seen.values()}) == 8  # the eight symmetries of the square, each once
    assert seen["antitranspose"] == [8.0, 5.0, 2.0, 7.0, 4.0, 1.0, 6.0, 3.0, 0.0]  # mirrored in the other diagonal


def test_uncertainty_is_zero_where_members_agree_and_highest_where_they_split():
    sure = _Fixed(lambda x: torch.full((x.shape[0], 1, *x.shape[-2:]), 30.0))
    halves = torch.full((1, 1, 4, 6), 30.0)
    halves[..., 3:] = -30.0  # agrees with `sure` on the left half, says the opposite on the right half
    other = _Fixed(lambda x: halves.expand(x.shape[0], -1, -1, -1))
    averaged = AveragedBackend([sure, other]).logits(torch.zeros(1, 1, 4, 6))
    h = entropy(averaged, 1)[0]
    assert h[:, :3].max() < 1e-4 and torch.allclose(h[:, 3:], torch.ones(4, 3), atol=1e-4)
    uniform = torch.zeros(1, 3, 2, 2)  # three classes: an even split is the maximum, 1
    assert torch.allclose(entropy(uniform, 3), torch.ones(1, 2, 2))


def test_review_flag_follows_the_calibrated_threshold():
    unsure = np.array([[0.0, 0.2], [0.6, 1.0]], np.float32)
    row = image_uncertainty("a.png", unsure, {"threshold": 0.4, "how": "test"})
    assert row["mean_uncertainty"] == pytest.approx(0.45) and row["uncertain_fraction"] == 0.5 and row["review"] is True
    assert image_uncertainty("a.png", unsure, {"threshold": 0.5, "how": "test"})["review"] is False
    assert image_uncertainty("a.png", unsure, None)["review"] is None
    # Given the class map: the mean over the predicted objects and the uncertain pixels, not the certain background.
    classes = np.array([[0, 1], [0, 0]], np.uint8)  # an object at 0.2; 0.6 and 1.0 are uncertain; 0.0 is background
    assert image_uncertainty("a.png", unsure, None, classes=classes)["mean_uncertainty"] == pytest.approx(0.6)
    assert image_uncertainty("a.png", np.zeros((8, 8), np.float32), None, classes=np.zeros((8, 8), np.uint8))["mean_uncertainty"] == 0
    big = np.tile(unsure, (300, 300))  # in blocks of rows: the same mean
    assert region_uncertainty(big, np.tile(classes, (300, 300)), rows=1000) == pytest.approx(0.6)
    # Thresholds calibrated on the expected error compare that; thresholds recorded before, the mean uncertainty.
    on_error = {"threshold": 0.3, "measure": "expected_error", "how": "test"}
    assert image_uncertainty("a.png", unsure, on_error, None, expected_iou=0.6)["review"] is True
    assert image_uncertainty("a.png", unsure, on_error, None, expected_iou=0.8)["review"] is False
    assert image_uncertainty("a.png", unsure, on_error, None, expected_iou=0.8)["expected_error"] == pytest.approx(0.2)
    assert image_uncertainty("a.png", unsure, on_error, "too bright", expected_iou=0.8)["review"] is True
    rows = pd.DataFrame({"expected_error": np.linspace(0.1, 0.3, 21), "mean_uncertainty": [0.9] * 21})
    assert review_calibration(rows, "x")["measure"] == "expected_error"
    assert review_calibration(rows, "x")["threshold"] == pytest.approx(0.29)
    few = review_calibration(pd.DataFrame({"expected_error": [0.1, 0.2, 0.3, 0.2, 0.1]}), "x")  # no 95th percentile of 5
    assert few["threshold"] == pytest.approx(0.3 + 0.2) and "too few" in few["how"]
    assert review_calibration({"expected_error": [0.2] * 6}, "x")["threshold"] == pytest.approx(0.25)
    assert review_calibration({"mean_uncertainty": [0.5] * 6}, "x")["measure"] == "mean_uncertainty"
    assert review_calibration({}, "x") is None
    # Two or three held-out images say nothing of the spread: no threshold; only unusual inputs are flagged.
    none = review_calibration({"expected_error": [0.1, 0.12]}, "validation images")
    assert none["threshold"] is None and "too few validation images (2)" in none["how"]
    assert image_uncertainty("a.png", unsure, none, None, expected_iou=0.1)["review"] is False
    assert image_uncertainty("a.png", unsure, none, "too bright", expected_iou=0.9)["review"] is True


def test_expected_iou_is_the_mask_scored_against_its_own_probabilities():
    p = torch.tensor([[0.9, 0.8], [0.2, 0.0]])  # foreground probabilities; the mask is the top row
    logits = torch.logit(p.clamp(1e-7, 1 - 1e-7))[None]
    result = decode([(0, logits)], (2, 2), (2, 2), instances=False, objects=False, uncertainty=True)
    assert result.classes.tolist() == [[1, 1], [0, 0]]
    # overlap 0.9 + 0.8, union 2 + 1.9 - 1.7 = 2.2, one pixel added to both
    assert result.expected_iou == pytest.approx(2.7 / 3.2, abs=1e-5)
    sure = torch.tensor([[[30.0, -30.0], [-30.0, -30.0]]])  # certain: it expects its mask to be exact
    assert decode([(0, sure)], (2, 2), (2, 2), instances=False, objects=False, uncertainty=True).expected_iou == pytest.approx(1.0)
    three = torch.zeros(3, 2, 2)  # an even split of three classes: class 0 everywhere, the others not predicted
    agreement = SelfAgreement(3)
    agreement.add(torch.softmax(three, 0), torch.zeros(2, 2, dtype=torch.long))
    union = 0 + 4 / 3 - 0  # each foreground class: nothing predicted, a third of each of 4 pixels probable
    assert agreement.expected_iou() == pytest.approx(1 / (union + 1))
    assert decode([(0, sure)], (2, 2), (2, 2), instances=False, objects=False, uncertainty=False).expected_iou is None
    one, two = SelfAgreement(2), SelfAgreement(2)  # a binary model's one channel counts as both classes
    one.add(p[None], (p > 0.5).long())
    two.add(torch.stack([1 - p, p]), (p > 0.5).long())
    for a, b in ((one.overlap, two.overlap), (one.predicted, two.predicted), (one.mass, two.mass)):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.fixture(scope="module")
def ensemble_run(particles_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("ensemble") / "ens"
    proc = subprocess.run([sys.executable, "-m", "segfit", "train", str(particles_dir), "--out", str(run), "--folds", "3",
                           "--no-plan", "--model", "unet", "--encoder", "resnet18", "--encoder-depth", "3",
                           "--decoder-channels", "16,8,8", "--channels", "1", "--epochs", "1", "--batch-size", "4", "--augment", "light",
                           "--preload", "--test", "0.25"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Cross-validation (3 folds)" in proc.stdout
    return run


def test_folds_ensemble_predict_tta_uncertainty_and_evaluate(ensemble_run, particles_dir, tmp_path):
    run = ensemble_run
    record = json.loads((run / "ensemble.json").read_text())
    assert record["folds"] == 3 and len(record["members"]) == 3 and record["uncertainty"]["threshold"] > 0
    assert record["uncertainty"]["measure"] == "expected_error"
    cv = json.loads((run / "cv_metrics.json").read_text())
    split = json.loads((run / "split.json").read_text())
    assert cv["pooled"]["images"] == len(split["train"]) + len(split["val"]) == 9  # every training image once, out of fold
    assert [f["fold"] for f in cv["folds"]] == [0, 1, 2] and (run / "report.html").is_file()
    for i in range(3):
        fold = json.loads((run / f"fold_{i}" / "split.json").read_text())
        assert fold["test"] == split["test"] and sorted(fold["val"]) == sorted(split["folds"][i])

    out = tmp_path / "pred"
    proc = subprocess.run([sys.executable, "-m", "segfit", "predict", str(run), str(particles_dir / "images"), "--out", str(out),
                           "--tta", "--uncertainty"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "3 models, 8 test-time variants" in proc.stdout and "Review:" in proc.stdout
    predictions = json.loads((out / "predictions.json").read_text())
    assert predictions["members"] == 3 and len(predictions["tta"]) == 8
    assert predictions["uncertainty"]["review_threshold"] == pytest.approx(record["uncertainty"]["threshold"])
    assert predictions["uncertainty"]["review_measure"] == "expected_error"
    assert len(predictions["images"]) == 12
    assert predictions["uncertainty"]["input_range"] == record["inputs"] and set(record["inputs"]["range"]) == {
        "brightness", "contrast", "noise", "colour"}
    for row in predictions["images"]:
        assert set(row) == {"image", "mean_uncertainty", "uncertain_fraction", "expected_error", "unusual_input", "review"}
        assert row["unusual_input"] is None  # the training images themselves
        assert 0 <= row["expected_error"] <= 1
        assert row["review"] == (row["expected_error"] > record["uncertainty"]["threshold"])
        from PIL import Image
        with Image.open(out / row["image"].replace(".png", "_uncertainty.png")) as im:
            u = np.asarray(im)
        assert u.dtype == np.uint8 and abs(u.mean() / 255 - row["mean_uncertainty"]) < 0.01

    import segfit

    metrics = segfit.evaluate(run, split="test", overlays=False, verbose=False)
    assert metrics["members"] == 3 and metrics["images"] == 3
    assert {"spearman_with_error", "spearman_expected_error"} <= set(metrics["uncertainty"])
    page = (run / "report.html").read_text()  # the evaluation joins the ensemble's report, which segfit report rebuilds
    assert "<h2>Evaluations</h2>" in page and "eval_test/grid.png" in page
    (run / "report.html").unlink()
    assert segfit.report(run, verbose=False) == run / "report.html" and "eval_test" in (run / "report.html").read_text()
    single = Predictor.from_checkpoint(run / "fold_0")
    assert single.members == 1 and single.variants == ("identity",)


def test_exported_ensemble_with_tta_matches_the_pytorch_ensemble(ensemble_run, tmp_path):
    import segfit

    path = segfit.export(ensemble_run, tmp_path / "ens.onnx", tta=True, verbose=False)
    record = json.loads(open(f"{path}.json").read())
    assert record["members"] == 3 and len(record["tta"]) == 8
    image = (np.random.default_rng(0).random((40, 52)) * 255).astype(np.uint8)
    torch_ens = Predictor.from_checkpoint(ensemble_run, tta=True)
    onnx_ens = Predictor.from_checkpoint(path)
    x = torch_ens.prepare(image)[None]
    torch.testing.assert_close(onnx_ens.logits(x), torch_ens.logits(x), atol=2e-3, rtol=2e-3)
    assert (onnx_ens.predict(image) == torch_ens.predict(image)).mean() > 0.999
    assert (onnx_ens.members, len(onnx_ens.variants)) == (3, 8)  # what the graph averages, as predictions.json says


def test_a_fold_far_below_the_others_is_named():
    from segfit.folds import _weak_folds

    folds = [{"run": f"fold_{i}", "iou": iou, "epochs": e} for i, (iou, e) in enumerate([(0.88, 13), (0.31, 1), (0.86, 4)])]
    [warning] = _weak_folds(folds)
    assert warning.startswith("fold_1 reaches validation IoU 0.310") and "trained 1 epochs" in warning
    assert _weak_folds([{**f, "iou": 0.8} for f in folds]) == []
