"""Class masks stored as spread-out values (0/128/255): detected, planned, read, and checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segfit.data.formats import to_class_ids
from segfit.errors import SegfitError
from segfit.fingerprint import fingerprint_data
from segfit.planner import make_plan

VALUES = [0, 128, 255]


@pytest.fixture(scope="module")
def coded_scenes(tmp_path_factory) -> Path:
    """The vineyard-like scenes with their class masks rewritten as 0/128/255."""
    from segfit.data.synthetic import make_scenes

    out = make_scenes(tmp_path_factory.mktemp("coded"), n=12, size=48, seed=3)
    for path in out.glob("*_bin.png"):
        ids = np.asarray(Image.open(path))
        Image.fromarray(np.asarray(VALUES, np.uint8)[ids]).save(path)
    return out


def test_to_class_ids_maps_values_and_names_unknown_ones(tmp_path):
    mask = np.array([[0, 128], [255, 128]], np.uint8)
    assert to_class_ids(mask, "index", 3, values=VALUES).tolist() == [[0, 1], [2, 1]]
    with pytest.raises(SegfitError) as err:
        to_class_ids(np.array([[0, 64]], np.uint8), "index", 3, tmp_path / "m.png", VALUES)
    assert "[64]" in str(err.value) and "m.png" in str(err.value) and "--class-values" in str(err.value)


def test_fingerprint_and_plan_read_spread_values_as_classes(coded_scenes):
    fp = fingerprint_data(coded_scenes)
    assert fp["mask_kind"] == "coded" and fp["num_classes"] == 3 and fp["class_values"] == VALUES
    assert all(f > 0 for f in fp["class_fractions"])
    plan = make_plan(fp, {"cores": 2, "cpu_bf16": False, "gpu": None}, None, {}, calibrate_steps=0)
    v = plan.values()
    assert v["classes"] == 3 and v["mask_mode"] == "index" and v["class_values"] == VALUES
    given = make_plan(fp, {"cores": 2, "cpu_bf16": False, "gpu": None}, None, {"class_values": [0, 255, 128]}, 0)
    assert given.entries["class_values"] == {"value": [0, 255, 128], "source": "user", "reason": "given by the user"}


def test_class_values_options_are_checked(coded_scenes):
    from segfit.options import build_config

    cfg = build_config(coded_scenes, class_values="0,128,255")
    assert cfg.data.num_classes == 3 and cfg.data.mask_mode == "index" and cfg.data.class_values == VALUES
    for bad in ("0,128,x", "0,128,128"):
        with pytest.raises(SegfitError, match="--class-values"):
            build_config(coded_scenes, class_values=bad)
    with pytest.raises(SegfitError, match="--class-values"):
        build_config(coded_scenes, class_values="0,255", classes=3)


def test_train_on_coded_masks_from_the_command_line(coded_scenes, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "segfit", "train", str(coded_scenes), "--out", str(run), "--time", "20s"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "0, 128, 255" in proc.stdout
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["class_values"] == VALUES and config["data"]["num_classes"] == 3
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best_epoch"] >= 1
