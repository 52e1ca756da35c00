"""A few real EMPS images (../shared/data/emps): 16-bit instance segmaps, binarised for training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from segfit.data.formats import read_mask, to_class_ids

N_IMAGES = 8


def _emps_names(emps_dir: Path, n: int = N_IMAGES) -> list[str]:
    lines = [line.split(",")[0].strip() for line in (emps_dir / "train.csv").read_text().splitlines()]
    names = [Path(x).stem for x in lines if x and x.lower() not in ("name", "id", "image", "filename")]
    return [x for x in names if (emps_dir / "images" / f"{x}.png").is_file()][:n]


@pytest.fixture(scope="module")
def emps_small(emps_dir, tmp_path_factory) -> Path:
    """8 EMPS image/segmap pairs (names from its train.csv) in images/ + segmaps/, no split files."""
    root = tmp_path_factory.mktemp("emps_small")
    for sub in ("images", "segmaps"):
        (root / sub).mkdir()
    for name in _emps_names(emps_dir):
        for sub in ("images", "segmaps"):
            shutil.copy(emps_dir / sub / f"{name}.png", root / sub / f"{name}.png")
    return root


@pytest.fixture(scope="module")
def emps_run(emps_small, trained_run, tmp_path_factory):
    # trained_run is requested first on purpose: conftest builds it with segfit.train(), which stops
    # being callable once any training has imported the submodule segfit/train.py (see test_train.py).
    from segfit.runs import train

    out = tmp_path_factory.mktemp("emps_run") / "run"
    return train(emps_small, out, size=32, channels=1, epochs=1, batch_size=4, preload=True, verbose=False)


@pytest.mark.emps
def test_read_mask_returns_16_bit_instance_ids(emps_dir):
    # some images hold a single particle (max 1): take the one with most particles of the first 8
    masks = {n: read_mask(emps_dir / "segmaps" / f"{n}.png") for n in _emps_names(emps_dir)}
    name = max(masks, key=lambda n: int(masks[n].max()))
    mask = masks[name]
    assert all(m.dtype == np.uint16 for m in masks.values())
    assert mask.dtype == np.uint16 and mask.ndim == 2
    assert mask.max() > 1  # several particles: instance ids, not a binary mask
    with Image.open(emps_dir / "images" / f"{name}.png") as im:
        assert mask.shape == (im.size[1], im.size[0])
    binary = to_class_ids(mask, "binary", 2)
    assert binary.dtype == np.uint8 and set(np.unique(binary)) == {0, 1}
    assert np.array_equal(binary, (mask > 0).astype(np.uint8))


@pytest.mark.emps
def test_copied_subset_has_instance_maps(emps_small):
    masks = sorted((emps_small / "segmaps").glob("*.png"))
    assert len(masks) == N_IMAGES
    raw = [read_mask(p) for p in masks]
    assert all(m.dtype == np.uint16 and m.max() >= 1 for m in raw)
    assert any(m.max() > 1 for m in raw)


@pytest.mark.emps
def test_training_binarises_the_instance_maps(emps_run, emps_small):
    from segfit.data.datamodule import SegmentationDataModule
    from segfit.data.preprocess import resize_mask, split_target

    run_dir = emps_run.run_dir
    config = json.loads((run_dir / "config.json").read_text())
    assert config["data"]["mask_mode"] == "binary" and config["data"]["size"] == 32
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["images"] == {"train": 5, "val": 1, "test": 2} and summary["best_epoch"] == 1
    split = json.loads((run_dir / "split.json").read_text())
    dm = SegmentationDataModule(emps_run.config.data, emps_run.config.train, split=split)
    ds = dm.dataset("train")
    assert config["data"]["instances"]  # EMPS particles touch: the plan learns instances
    for i, sample in enumerate(ds.samples):
        image, target = ds.pair(i)
        mask, distance = split_target(target)
        assert image.shape == (32, 32, 1) and mask.shape == (32, 32) and distance.shape == (32, 32)
        assert set(np.unique(mask)) <= {0, 1} and mask.any()
        assert np.array_equal(mask, resize_mask((read_mask(sample.mask) > 0).astype(np.uint8), 32))
        assert distance[mask == 0].max() == 0 and distance.max() == 1.0


@pytest.mark.emps
def test_evaluate_on_emps(emps_run, emps_small, tmp_path):
    from segfit.evaluation import evaluate

    split = json.loads((emps_run.run_dir / "split.json").read_text())
    metrics = evaluate(emps_run.run_dir, out=tmp_path / "orig", verbose=False)
    assert metrics["images"] == len(split["test"]) == 2
    for key in ("iou", "dice", "accuracy"):
        assert 0 <= metrics[key] <= 1
    pixels = 0
    for name in split["test"]:
        with Image.open(emps_small / "images" / f"{name}.png") as im:
            pixels += im.size[0] * im.size[1]
    confusion = pd.read_csv(tmp_path / "orig" / "confusion.csv").drop(columns="true").to_numpy()
    assert confusion.sum() == pixels  # compared at the original resolution
    truth_fg = sum((read_mask(emps_small / "segmaps" / f"{n}.png") > 0).sum() for n in split["test"])
    assert confusion[1].sum() == truth_fg  # the truth row of foreground: binarised instance maps

    small = evaluate(emps_run.run_dir, size=32, out=tmp_path / "small", verbose=False)
    assert small["resolution"] == 32
    assert pd.read_csv(tmp_path / "small" / "confusion.csv").drop(columns="true").to_numpy().sum() == 2 * 32 * 32
