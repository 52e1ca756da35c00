"""`segfit evaluate`: metrics checked against values computed by hand from the model's predictions."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import segfit
from segfit.errors import SegfitError
from segfit.data.synthetic import make_particles

from segfit.evaluation import evaluate


def _shift_head_bias(src: Path, dst: Path, shift: float) -> None:
    """Copy a checkpoint, adding ``shift`` to the bias of the network's 1x1 head (the last tensor)."""
    import torch

    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    key = [k for k in ckpt["state_dict"] if k.endswith(".bias")][-1]
    ckpt["state_dict"][key] = ckpt["state_dict"][key] + shift
    torch.save(ckpt, dst)


def _grey(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


@pytest.fixture(scope="module")
def run(tmp_path_factory, trained_run, particles_dir) -> Path:
    """A copy of the shared run whose best.ckpt predicts a mix of foreground and background (a
    2-epoch model predicts background only), and checkpoints/empty.ckpt that predicts background."""
    import torch

    run = tmp_path_factory.mktemp("evaluate") / "run"
    shutil.copytree(trained_run, run)
    best = run / "checkpoints" / "best.ckpt"
    shutil.copy(best, run / "checkpoints" / "original.ckpt")
    _shift_head_bias(best, run / "checkpoints" / "empty.ckpt", -1e4)
    # centre the logits of the test images on 0, so that about half the pixels become foreground
    predictor = segfit.Predictor.from_checkpoint(best)
    split = json.loads((run / "split.json").read_text())
    batch = torch.stack([predictor.prepare(_grey(particles_dir / "images" / f"{n}.png")) for n in split["test"]])
    median = float(predictor.logits(batch).median())
    _shift_head_bias(run / "checkpoints" / "original.ckpt", best, -median)
    return run


def _by_hand(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    p, t = pred.astype(bool), truth.astype(bool)
    inter, union, total = (p & t).sum(), (p | t).sum(), p.sum() + t.sum()
    return {"iou": inter / union if union else 1.0, "dice": 2 * inter / total if total else 1.0,
            "accuracy": (p == t).mean()}


def test_metrics_equal_hand_computed_values(run, particles_dir, tmp_path):
    metrics = evaluate(run, out=tmp_path / "ev", verbose=False)
    split = json.loads((run / "split.json").read_text())
    names = split["test"]
    assert metrics["images"] == len(names) == 3
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text()) == metrics

    predictor = segfit.Predictor.from_checkpoint(run / "checkpoints" / "best.ckpt")
    images = [_grey(particles_dir / "images" / f"{n}.png") for n in names]
    truths = [np.asarray(Image.open(particles_dir / "segmaps" / f"{n}.png")) > 0 for n in names]
    preds = predictor.predict_many(images)
    expected = [_by_hand(p, t) for p, t in zip(preds, truths)]

    per_image = pd.read_csv(tmp_path / "ev" / "per_image.csv")
    assert per_image["image"].tolist() == names
    for key in ("iou", "dice", "accuracy"):
        assert per_image[key].to_numpy() == pytest.approx([e[key] for e in expected], abs=1e-9), key
        assert metrics[key] == pytest.approx(np.mean([e[key] for e in expected]), abs=1e-9), key
    assert any(0 < e["iou"] < 1 for e in expected), "the biased model should give non-trivial scores"

    # the confusion matrix over all pixels (rows: truth, columns: prediction)
    cm = np.zeros((2, 2), dtype=np.int64)
    for p, t in zip(preds, truths):
        np.add.at(cm, (t.astype(int).ravel(), p.astype(int).ravel()), 1)
    confusion = pd.read_csv(tmp_path / "ev" / "confusion.csv")
    assert confusion["true"].tolist() == ["background", "foreground"]
    assert confusion[["pred_background", "pred_foreground"]].to_numpy().tolist() == cm.tolist()
    assert cm.sum() == 3 * 32 * 32

    (tn, fp), (fn, tp) = cm
    fg, bg = metrics["per_class"]["foreground"], metrics["per_class"]["background"]
    assert fg["iou"] == pytest.approx(tp / (tp + fp + fn))
    assert fg["dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert fg["precision"] == pytest.approx(tp / (tp + fp))
    assert fg["recall"] == pytest.approx(tp / (tp + fn))
    assert fg["accuracy"] == bg["accuracy"] == pytest.approx((tp + tn) / cm.sum())
    assert bg["iou"] == pytest.approx(tn / (tn + fn + fp))
    assert bg["precision"] == pytest.approx(tn / (tn + fn))
    assert bg["recall"] == pytest.approx(tn / (tn + fp))

    with Image.open(tmp_path / "ev" / "grid.png") as im:
        assert im.format == "PNG"


def test_both_empty_scores_one(run, tmp_path):
    data = make_particles(tmp_path / "data", n=3, size=32, seed=11)
    names = sorted(p.stem for p in (data / "segmaps").glob("*.png"))
    for n in names[:2]:  # two images without any particle
        Image.fromarray(np.zeros((32, 32), np.uint16)).save(data / "segmaps" / f"{n}.png")
    metrics = evaluate(run / "checkpoints" / "empty.ckpt", data, split="all", out=tmp_path / "ev", verbose=False)
    per_image = pd.read_csv(tmp_path / "ev" / "per_image.csv").set_index("image")
    for n in names[:2]:
        assert per_image.loc[n, ["iou", "dice", "accuracy"]].tolist() == [1.0, 1.0, 1.0]
    assert per_image.loc[names[2], "iou"] == 0.0 and per_image.loc[names[2], "dice"] == 0.0
    assert metrics["iou"] == pytest.approx(2 / 3) and metrics["dice"] == pytest.approx(2 / 3)
    assert metrics["per_class"]["foreground"]["iou"] == 0.0  # the third image has foreground
    assert metrics["images"] == 3


def test_size_option_compares_at_that_size(run, tmp_path):
    metrics = evaluate(run, size=16, out=tmp_path / "ev", verbose=False)
    assert metrics["resolution"] == 16
    confusion = pd.read_csv(tmp_path / "ev" / "confusion.csv").drop(columns="true")
    assert confusion.to_numpy().sum() == 3 * 16 * 16
    assert pd.read_csv(tmp_path / "ev" / "per_image.csv")["coverage_true_foreground"].between(0, 1).all()


@pytest.mark.parametrize("split,count", [("val", 3), ("train", 6), ("all", 12)])
def test_split_option_and_default_output_folder(run, split, count):
    metrics = evaluate(run, split=split, verbose=False)
    out = run / f"eval_{split}"
    assert metrics["images"] == count and metrics["split"] == split
    assert json.loads((out / "metrics.json").read_text())["images"] == count
    assert len(pd.read_csv(out / "per_image.csv")) == count
    expected = json.loads((run / "split.json").read_text())
    names = expected["train"] + expected["val"] + expected["test"] if split == "all" else expected[split]
    assert pd.read_csv(out / "per_image.csv")["image"].tolist() == names


def test_grid_shows_nine_seeded_images(run, tmp_path):
    first = set(np.random.default_rng(0).choice(12, 9, replace=False).tolist())
    other = next(s for s in range(1, 50) if set(np.random.default_rng(s).choice(12, 9, replace=False).tolist()) != first)
    grids = {}
    for tag, seed in (("a", 0), ("b", 0), ("c", other)):
        evaluate(run, split="all", out=tmp_path / tag, seed=seed, verbose=False)
        grids[tag] = (tmp_path / tag / "grid.png").read_bytes()
    assert grids["a"] == grids["b"]
    assert grids["a"] != grids["c"]
    with Image.open(tmp_path / "a" / "grid.png") as im:  # 3 x 3 panels
        assert 0.7 < im.size[0] / im.size[1] < 1.4
    evaluate(run, split="test", out=tmp_path / "d", verbose=False)  # 3 images: one row
    with Image.open(tmp_path / "d" / "grid.png") as im:
        assert im.size[0] > 2 * im.size[1]


def test_other_data_folder_uses_its_test_csv_or_all_images(run, particles_dir, tmp_path, capsys):
    data = tmp_path / "copy"
    shutil.copytree(particles_dir, data)
    metrics = evaluate(run, data, out=tmp_path / "a", verbose=False)
    assert metrics["images"] == 12  # no saved split for this folder and no test.csv
    assert "Note:" in capsys.readouterr().out
    (data / "test.csv").write_text("particles_000\nparticles_005\n")
    metrics = evaluate(run, data, out=tmp_path / "b", verbose=False)
    assert metrics["images"] == 2
    assert pd.read_csv(tmp_path / "b" / "per_image.csv")["image"].tolist() == ["particles_000", "particles_005"]


def test_cli_evaluate(run, tmp_path):
    out = tmp_path / "ev"
    proc = subprocess.run([sys.executable, "-m", "segfit", "evaluate", str(run / "checkpoints" / "best.ckpt"),
                           "--split", "val", "--out", str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    for name in ("metrics.json", "per_image.csv", "confusion.csv", "grid.png"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images"] == 3 and metrics["split"] == "val"
    assert {"iou", "dice", "accuracy", "per_class", "images"} <= set(metrics)
    fg = metrics["per_class"]["foreground"]
    assert set(fg) == {"iou", "dice", "precision", "recall", "accuracy", "coverage_pred", "coverage_true"}
    per_image = pd.read_csv(out / "per_image.csv")
    assert fg["coverage_true"] == pytest.approx(per_image["coverage_true_foreground"].mean())
    assert 0 < fg["coverage_true"] < 1 and 0 <= fg["coverage_pred"] <= 1
    assert f"val: iou {metrics['iou']:.4f}" in proc.stdout


def test_a_moved_data_folder_is_named_with_the_fix(particles_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(particles_dir, data)
    run = segfit.train(data, tmp_path / "run", model="notebook", channels=1, epochs=1, batch_size=4, report=False,
                       verbose=False).run_dir
    data.rename(tmp_path / "moved")
    with pytest.raises(SegfitError, match="not there any more") as e:
        evaluate(run, overlays=False, verbose=False)
    assert "segfit evaluate" in e.value.fix and "DATA" in e.value.fix
    assert evaluate(run, tmp_path / "moved", overlays=False, verbose=False)["images"] > 0
