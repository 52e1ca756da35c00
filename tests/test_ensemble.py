"""Ensembles, test-time augmentation and uncertainty: folds, averaging, entropy, review flags, and
`segfit train --folds` / `predict --tta --uncertainty` end to end on a tiny data set."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from segfit.config import RunConfig
from segfit.ensemble import VARIANTS, AveragedBackend, entropy, tta_variants
from segfit.folds import fold_splits
from segfit.options import resolve_data
from segfit.predictor import Predictor, image_uncertainty


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
    assert len(predictions["images"]) == 12
    assert predictions["uncertainty"]["input_range"] == record["inputs"] and set(record["inputs"]["range"]) == {
        "brightness", "contrast", "noise", "colour"}
    for row in predictions["images"]:
        assert set(row) == {"image", "mean_uncertainty", "uncertain_fraction", "unusual_input", "review"}
        assert row["unusual_input"] is None  # the training images themselves
        assert row["review"] == (row["mean_uncertainty"] > record["uncertainty"]["threshold"])
        from PIL import Image
        with Image.open(out / row["image"].replace(".png", "_uncertainty.png")) as im:
            u = np.asarray(im)
        assert u.dtype == np.uint8 and abs(u.mean() / 255 - row["mean_uncertainty"]) < 0.01

    import segfit

    metrics = segfit.evaluate(run, split="test", overlays=False, verbose=False)
    assert metrics["members"] == 3 and metrics["images"] == 3
    assert "spearman_with_error" in metrics["uncertainty"]
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
