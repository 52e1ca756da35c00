"""`segfit train` through the Python API: layouts, splits, options and the run folder it writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import segfit
from segfit.data.synthetic import make_particles
from segfit.errors import SegfitError

from segfit.runs import train as segfit_train

HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "val_iou", "val_dice", "val_accuracy", "lr", "seconds"]
VAL_METRICS = ["val_loss", "val_iou", "val_dice", "val_accuracy"]


def fit(data, out, **options):
    """A tiny in-process training (1 epoch, grayscale, batches of 4, segfit's fixed defaults, no plan)
    unless options say otherwise."""
    kw = dict(channels=1, epochs=1, batch_size=4, preload=True, verbose=False, plan=False)
    kw.update(options)
    return segfit_train(data, out, **kw)


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def names_of(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.png"))


# ---------------------------------------------------------------------------------------------
# The shared 2-epoch run (read-only)


def test_run_folder_holds_every_artefact(trained_run):
    for rel in ("config.json", "split.json", "history.csv", "curves.png", "summary.json",
                "checkpoints/best.ckpt", "checkpoints/last.ckpt"):
        assert (trained_run / rel).is_file(), rel
    with Image.open(trained_run / "curves.png") as im:
        assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100


def test_history_has_a_row_per_epoch(trained_run):
    history = pd.read_csv(trained_run / "history.csv")
    assert set(HISTORY_COLUMNS) <= set(history.columns)
    assert history["epoch"].tolist() == [1, 2]
    assert (history["seconds"] > 0).all()
    assert history["lr"].tolist() == pytest.approx([1e-3, 1e-3])
    assert np.isfinite(history[["train_loss", "val_loss"]].to_numpy()).all()
    for col in ("val_iou", "val_dice", "val_accuracy"):
        assert history[col].between(0, 1).all(), col


def test_summary_best_epoch_is_argmin_of_val_loss(trained_run):
    history = pd.read_csv(trained_run / "history.csv")
    summary = read_json(trained_run / "summary.json")
    best_row = history.loc[history["val_loss"].idxmin()]
    assert summary["best_epoch"] == int(best_row["epoch"])
    assert summary["best_epoch"] == int(history["epoch"][np.argmin(history["val_loss"].to_numpy())])
    for key in VAL_METRICS:
        assert summary["best"][key] == pytest.approx(float(best_row[key]), rel=1e-9, abs=1e-12), key
    split = read_json(trained_run / "split.json")
    assert summary["images"] == {"train": 6, "val": 3, "test": 3}
    assert summary["images"] == {k: len(split[k]) for k in ("train", "val", "test")}
    assert summary["epochs"] == 2
    assert summary["seconds"] > 0


def test_config_json_is_the_resolved_config(trained_run, particles_dir):
    cfg = read_json(trained_run / "config.json")
    data, model, train = cfg["data"], cfg["model"], cfg["train"]
    assert Path(data["root"]) == Path(particles_dir)
    assert data["channels"] == 1 and data["size"] is None
    assert data["mask_mode"] == "binary"  # resolved from "auto"
    assert data["num_classes"] == 2 and data["class_names"] == ["background", "foreground"]
    assert len(data["class_colors"]) == 2
    assert data["val"] == 3 and data["test"] == 0.25 and data["seed"] == 0
    assert model["name"] == "notebook" and model["in_channels"] == 1 and model["num_classes"] == 2
    assert train["epochs"] == 2 and train["batch_size"] == 4 and train["seed"] == 0


def test_split_json_partitions_the_data_set(trained_run, particles_dir):
    split = read_json(trained_run / "split.json")
    parts = [set(split[k]) for k in ("train", "val", "test")]
    assert sum(len(p) for p in parts) == 12
    assert set().union(*parts) == set(names_of(particles_dir / "images"))
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert (len(split["val"]), len(split["test"])) == (3, 3)


def test_checkpoints_load_safely_and_describe_themselves(trained_run):
    import torch

    config = read_json(trained_run / "config.json")
    summary = read_json(trained_run / "summary.json")
    best = torch.load(trained_run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    last = torch.load(trained_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    for ckpt in (best, last):
        assert ckpt["segfit"]["config"] == config
        assert ckpt["state_dict"] and all(k.startswith("net.") for k in ckpt["state_dict"])
    assert last["epoch"] + 1 == 2  # Lightning counts epochs from 0
    assert best["epoch"] + 1 == summary["best_epoch"]
    assert len(best["segfit"]["history"]) == summary["best_epoch"]


def test_best_checkpoint_predicts_like_the_run(trained_run, particles_dir):
    predictor = segfit.Predictor.from_checkpoint(trained_run)
    assert predictor.checkpoint == trained_run / "checkpoints" / "best.ckpt"
    assert predictor.config.data.channels == 1
    image = np.asarray(Image.open(particles_dir / "images" / "particles_000.png"))
    mask = predictor.predict(image)
    assert mask.shape == (32, 32) and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}


# ---------------------------------------------------------------------------------------------
# Fresh tiny runs


def test_train_returns_a_train_result(tmp_path):
    data = make_particles(tmp_path / "data", n=10, size=32, seed=3)
    (data / "segmaps").rename(data / "label")  # images/ + label/ is detected too
    result = fit(data, tmp_path / "run", seed=1)
    assert isinstance(result, segfit.TrainResult)
    assert result.run_dir == tmp_path / "run"
    assert result.best_checkpoint == tmp_path / "run" / "checkpoints" / "best.ckpt"
    assert result.best_checkpoint.is_file() and result.last_checkpoint.is_file()
    history = pd.read_csv(result.run_dir / "history.csv")
    assert len(result.history) == len(history) == 1
    assert sum(read_json(result.run_dir / "summary.json")["images"].values()) == 10
    assert np.allclose(result.history["val_loss"], history["val_loss"])
    assert result.best_epoch == int(history.loc[history["val_loss"].idxmin(), "epoch"])
    assert result.best["val_loss"] == pytest.approx(history["val_loss"].min())
    assert isinstance(result.config, segfit.RunConfig) and result.config.train.epochs == 1


def _flat_0_255(folder: Path, n: int = 10, suffix: str = "_mask") -> Path:
    """Flat layout NAME.png + NAME<suffix>.png with 0/255 masks."""
    make_particles(folder, n=n, size=32, seed=4, layout="flat")
    for p in sorted(folder.glob("*_bin.png")):
        m = np.asarray(Image.open(p))
        Image.fromarray((m > 0).astype(np.uint8) * 255).save(folder / p.name.replace("_bin", suffix))
        p.unlink()
    return folder


def test_flat_layout_with_mask_suffix_and_0_255_masks(tmp_path):
    from segfit.data.datamodule import SegmentationDataModule
    from segfit.data.formats import read_mask

    data = _flat_0_255(tmp_path / "flat")
    result = fit(data, tmp_path / "run", mask_suffix="_mask", test=0.2, val=0.25)
    split = read_json(result.run_dir / "split.json")
    listed = split["train"] + split["val"] + split["test"]
    assert sorted(listed) == [f"particles_{i:03d}" for i in range(10)]  # masks are not images
    assert read_json(result.run_dir / "config.json")["data"]["mask_suffix"] == "_mask"
    # the 0/255 masks are read as binary class ids
    dm = SegmentationDataModule(result.config.data, result.config.train, split=split)
    ds = dm.dataset("train")
    for i, sample in enumerate(ds.samples):
        _, mask = ds.pair(i)
        raw = read_mask(sample.mask)
        assert set(np.unique(raw)) <= {0, 255}
        assert np.array_equal(mask, (raw > 0).astype(np.uint8))


def test_flat_layout_needs_a_known_suffix(tmp_path):
    data = _flat_0_255(tmp_path / "flat", n=4, suffix="_xyz")
    with pytest.raises(SegfitError, match="image has no mask"):
        fit(data, tmp_path / "run")  # no rule knows _xyz: NAME_xyz.png are taken for images
    assert not (tmp_path / "run").exists()


def test_index_masks_with_three_classes(tmp_path):
    from segfit.evaluation import evaluate

    data = make_particles(tmp_path / "data", n=10, size=32, seed=6)
    (data / "segmaps").rename(data / "labels")
    for p in (data / "labels").glob("*.png"):
        inst = np.asarray(Image.open(p)).astype(np.int64)
        classes = np.where(inst > 0, 1 + inst % 2, 0).astype(np.uint8)  # odd particles 2, even 1
        Image.fromarray(classes).save(p)
    result = fit(data, tmp_path / "run", classes=3, class_names=["bg", "a", "b"])
    cfg = read_json(result.run_dir / "config.json")
    assert cfg["data"]["mask_mode"] == "index" and cfg["data"]["num_classes"] == 3
    assert cfg["model"]["num_classes"] == 3
    assert {"val_iou_a", "val_iou_b", "val_iou_bg"} <= set(result.history.columns)
    metrics = evaluate(result.run_dir, split="all", out=tmp_path / "eval", verbose=False)
    assert set(metrics["per_class"]) == {"bg", "a", "b"}
    confusion = pd.read_csv(tmp_path / "eval" / "confusion.csv")
    assert confusion["true"].tolist() == ["bg", "a", "b"]
    assert confusion.drop(columns="true").to_numpy().sum() == 10 * 32 * 32


def test_split_files_val_count_rgb_and_size(tmp_path):
    import torch

    data = make_particles(tmp_path / "data", n=10, size=32, seed=7)
    names = [f"particles_{i:03d}" for i in range(10)]
    (data / "train.csv").write_text("name\n" + "\n".join(names[:8]) + "\n")
    (data / "test.csv").write_text("name\n" + "\n".join(f"{n}.png" for n in names[8:]) + "\n")
    result = fit(data, tmp_path / "run", val=2, channels=3, size=16, seed=3)
    split = read_json(result.run_dir / "split.json")
    assert split["test"] == names[8:]
    assert len(split["val"]) == 2 and len(split["train"]) == 6
    assert sorted(split["train"] + split["val"]) == names[:8]
    assert "train.csv" in split["source"]
    cfg = read_json(result.run_dir / "config.json")
    assert cfg["data"]["size"] == 16 and cfg["data"]["channels"] == 3 and cfg["model"]["in_channels"] == 3
    ckpt = torch.load(result.best_checkpoint, map_location="cpu", weights_only=True)
    assert tuple(ckpt["state_dict"]["net.net.0.weight"].shape) == (64, 3, 3, 3)
    # a model trained at 16x16 still answers at the image's own size
    mask = segfit.Predictor.from_checkpoint(result.best_checkpoint).predict(
        np.asarray(Image.open(data / "images" / "particles_000.png")))
    assert mask.shape == (32, 32)


def test_val_test_fractions_and_seed_decide_the_split(tmp_path, particles_dir):
    """The split train() writes comes from build_config + the data module: check sizes and seeding."""
    from segfit.data.datamodule import SegmentationDataModule
    from segfit.runs import build_config

    def split_for(**kw):
        cfg = build_config(particles_dir, channels=1, **kw)
        return SegmentationDataModule(cfg.data, cfg.train).split

    a = split_for(test=0.3, val=0.25, seed=0)
    assert (len(a["train"]), len(a["val"]), len(a["test"])) == (6, 2, 4)  # 12 -> 4 test, 8 * 0.25 val
    assert split_for(test=0.3, val=0.25, seed=0) == a
    b = split_for(test=0.3, val=0.25, seed=1)
    assert (b["train"], b["val"], b["test"]) != (a["train"], a["val"], a["test"])
    c = split_for(test=0.0, val=5, seed=0)
    assert (len(c["train"]), len(c["val"]), len(c["test"])) == (7, 5, 0)


def test_existing_run_folder_is_never_overwritten(tmp_path):
    data = make_particles(tmp_path / "data", n=8, size=32, seed=8)
    (data / "segmaps").rename(data / "masks")  # images/ + masks/ is detected too
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = fit(data, out)
    assert result.run_dir == tmp_path / "run-2"
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert read_json(result.run_dir / "summary.json")["images"]["train"] > 0


def test_api_names_are_not_shadowed_by_submodules(trained_run):
    import segfit.module  # noqa: F401
    import segfit.evaluation  # noqa: F401

    assert callable(segfit.train) and callable(segfit.evaluate)


def test_too_few_training_images_are_warned_of(tmp_path, capsys):
    make_particles(tmp_path / "data", n=4, size=32, seed=0)
    segfit.train(tmp_path / "data", tmp_path / "run", model="notebook", channels=1, epochs=1, batch_size=2, val=1,
                 test=0.25, report=False)
    assert "segfit: warning: only 2 training images" in capsys.readouterr().err


def test_rotations_of_one_pixel_wide_images(tmp_path):
    """A 64 x 1 image rotated by 90 degrees can have a negative stride on an axis of length 1, which numpy calls
    contiguous and torch refuses: every item still becomes a tensor equal to the rotated arrays."""
    import albumentations as A
    import torch

    from segfit.config import DataConfig
    from segfit.data.datamodule import SegmentationDataset
    from segfit.data.layouts import Sample

    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(64, 1)).save(tmp_path / "im.png")
    Image.fromarray((np.arange(64) % 2).astype(np.uint8).reshape(64, 1)).save(tmp_path / "im_mask.png")
    rotate = A.Compose([A.HorizontalFlip(p=0.5), A.RandomRotate90(p=1.0)])
    ds = SegmentationDataset([Sample("im", tmp_path / "im.png", tmp_path / "im_mask.png")], DataConfig(channels=1),
                             transform=rotate)
    for seed in range(8):
        x, y = ds[(0, seed)]
        assert x.shape[1:] == y.shape and sorted(y.shape) == [1, 64]
        values = (x.flatten() * 255).round().long()
        assert sorted(values.tolist()) == list(range(64))
        assert torch.equal(y.flatten(), values % 2)  # image and mask turned alike


def test_overwrite_replaces_a_run_but_never_the_users_files(trained_run, tmp_path):
    """--overwrite deletes what segfit wrote into a run folder; a folder that also holds the user's own files
    (notes, an analysis) is refused, naming them, and nothing is deleted."""
    import shutil

    from segfit.rundir import make_run_dir

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "NOTES.txt").write_text("my notes")
    (run / "my_analysis").mkdir()
    (run / "my_analysis" / "fig.csv").write_text("a,b\n")
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    with pytest.raises(SegfitError, match=r"did not write \(NOTES.txt, my_analysis/\)"):
        make_run_dir(run, overwrite=True)
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before
    (run / "NOTES.txt").unlink()
    shutil.rmtree(run / "my_analysis")
    assert make_run_dir(run, overwrite=True, say=lambda *a: None) == run and not any(run.iterdir())


def test_a_misspelt_model_or_encoder_is_named_before_anything_is_planned(particles_dir, tmp_path, monkeypatch):
    import segfit.runs

    monkeypatch.setattr(segfit.runs, "plan_for", lambda *a, **k: pytest.fail("planned before the names were checked"))
    with pytest.raises(SegfitError, match=r"unknown model 'unett' \(did you mean unet"):
        segfit.train(particles_dir, tmp_path / "run", model="unett", verbose=False)
    with pytest.raises(SegfitError, match=r"unknown encoder 'resnet1800' \(did you mean resnet18"):
        segfit.train(particles_dir, tmp_path / "run", encoder="resnet1800", verbose=False)
    assert not (tmp_path / "run").exists()
