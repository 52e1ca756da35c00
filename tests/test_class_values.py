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


def test_masks_without_a_zero_make_no_empty_class(coded_scenes, tmp_path):
    """Trimaps coded 1/2/3 (Oxford pets): three classes named by their values, not four with an empty
    'background' 0 that scores IoU 1 everywhere; the user's names still win."""
    from segfit.data.check import check

    trimaps = tmp_path / "pets"
    (trimaps / "masks").mkdir(parents=True)
    (trimaps / "images").mkdir()
    for path in sorted(coded_scenes.glob("*_bin.png"))[:6]:
        codes = np.asarray(Image.open(path))
        Image.fromarray((np.searchsorted(VALUES, codes) + 1).astype(np.uint8)).save(trimaps / "masks" / f"{path.stem[:-4]}.png")
        Image.open(coded_scenes / f"{path.stem[:-4]}.jpg").save(trimaps / "images" / f"{path.stem[:-4]}.jpg")
    fp = fingerprint_data(trimaps)
    assert fp["mask_kind"] == "coded" and fp["class_values"] == [1, 2, 3]
    v = make_plan(fp, {"cores": 2, "cpu_bf16": False, "gpu": None}, None, {}, calibrate_steps=0).values()
    assert v["classes"] == 3 and v["class_names"] == ["value1", "value2", "value3"]
    named = make_plan(fp, {"cores": 2, "cpu_bf16": False, "gpu": None}, None, {"class_names": "pet,bg,border"}, 0)
    assert named.entries["class_names"]["source"] == "user"
    report = check(trimaps, verbose=False)
    assert report.ok and report.class_names == ["value1", "value2", "value3"] and report.class_pixels.min() > 0


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
    proc = subprocess.run([sys.executable, "-m", "segfit", "train", str(coded_scenes), "--out", str(run), "--epochs", "2"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "0, 128, 255" in proc.stdout
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["class_values"] == VALUES and config["data"]["num_classes"] == 3
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best_epoch"] >= 1


@pytest.fixture(scope="module")
def colour_scenes(tmp_path_factory) -> Path:
    """The scenes with their class masks saved as colour PNGs: black, red and green."""
    from segfit.data.synthetic import make_scenes

    out = make_scenes(tmp_path_factory.mktemp("colour"), n=12, size=48, seed=4)
    for path in out.glob("*_bin.png"):
        ids = np.asarray(Image.open(path))
        Image.fromarray(np.asarray([[0, 0, 0], [255, 0, 0], [0, 160, 0]], np.uint8)[ids]).save(path)
    return out


def test_colour_masks_are_read_as_classes(colour_scenes, tmp_path):
    from segfit.data.formats import read_mask

    fp = fingerprint_data(colour_scenes)
    assert fp["mask_kind"] == "colour" and fp["class_values"] == ["#000000", "#00a000", "#ff0000"]
    v = make_plan(fp, {"cores": 2, "cpu_bf16": False, "gpu": None}, None, {}, calibrate_steps=0).values()
    assert v["classes"] == 3 and v["class_values"] == fp["class_values"]
    from segfit.options import build_config

    d = build_config(colour_scenes, **{k: v[k] for k in ("classes", "mask_mode", "class_values")}).data
    assert d.class_colors == [[0, 0, 0], [0, 160, 0], [255, 0, 0]] and d.class_names == ["background", "#00a000", "#ff0000"]
    mask_path = next(colour_scenes.glob("*_bin.png"))
    rgb = np.asarray(Image.open(mask_path))
    ids = to_class_ids(read_mask(mask_path, colour=True), "index", 3, mask_path, v["class_values"])
    assert np.array_equal(ids == 2, rgb[..., 0] == 255) and np.array_equal(ids == 1, rgb[..., 1] == 160)
    with pytest.raises(SegfitError) as err:  # a colour no class has
        to_class_ids(read_mask(mask_path, colour=True), "index", 2, mask_path, ["#000000", "#00a000"])
    assert "#ff0000" in str(err.value) and mask_path.name in str(err.value)


def test_too_many_colours_ask_for_convert_masks(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(np.full((16, 16), 90, np.uint8)).save(tmp_path / f"a{i}.png")
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / f"a{i}_bin.png")
    with pytest.raises(SegfitError) as err:
        fingerprint_data(tmp_path)
    assert "convert-masks" in err.value.fix and "colours" in err.value.what


def test_train_on_colour_masks_with_given_colours(colour_scenes, tmp_path):
    import segfit

    run = segfit.train(colour_scenes, tmp_path / "run", model="unet", encoder="resnet18", encoder_depth=3,
                       decoder_channels=[16, 8, 8], epochs=1, batch_size=4, plan=False, verbose=False, report=False,
                       class_values="#000000,#ff0000,#00a000")
    data = json.loads((run.run_dir / "config.json").read_text())["data"]
    assert data["num_classes"] == 3 and data["mask_mode"] == "index"
    assert data["class_colors"] == [[0, 0, 0], [255, 0, 0], [0, 160, 0]]
    metrics = segfit.evaluate(run.run_dir, split="val", overlays=False, verbose=False, report=False)
    assert list(metrics["per_class"]) == ["background", "#ff0000", "#00a000"]


def test_check_reads_masks_as_train_would(coded_scenes, colour_scenes):
    """`segfit check` with no class options reads coded and colour masks as the plan does."""
    import segfit

    for data, names in ((coded_scenes, ["background", "class1", "class2"]), (colour_scenes, ["background", "#00a000", "#ff0000"])):
        report = segfit.check(data, verbose=False)
        assert report.ok and report.class_names == names
        assert all(report.class_pixels > 0)


@pytest.mark.parametrize("fixture", ["coded_scenes", "colour_scenes"])
def test_show_reads_the_masks_as_check_and_train_do(fixture, request, tmp_path, monkeypatch):
    """`segfit show` with no flags: three classes in their colours (it drew 0/128/255 as 2 values, and
    refused colour masks)."""
    import segfit
    from segfit import viz

    seen = {}
    monkeypatch.setattr(viz, "plot_pair", lambda image, mask, title, names, colors, path: seen.update(
        mask=mask, names=names, colors=colors))
    segfit.show(request.getfixturevalue(fixture), index=0, out=tmp_path / "pair.png", verbose=False)
    assert len(seen["names"]) == len(seen["colors"]) == 3 and seen["mask"].max() == 2


def test_colour_masks_drawn_on_white_have_white_as_background(colour_scenes, tmp_path):
    """White with no black is class 0, the background; the vineyard palette reads such masks by its rules
    (blue leaves, red wood); `check` with the user's class names reads the colours as `train` does."""
    import segfit

    white = tmp_path / "white"
    white.mkdir()
    for path in colour_scenes.iterdir():
        data = np.asarray(Image.open(path))
        if path.name.endswith("_bin.png"):  # black -> white, green -> blue
            data = np.where((data == (0, 0, 0)).all(-1, keepdims=True), 255, data)
            data = np.where((data == (0, 160, 0)).all(-1, keepdims=True), np.array([0, 0, 255], np.uint8), data)
        Image.fromarray(data.astype(np.uint8)).save(white / path.name)
    fp = fingerprint_data(white)
    assert fp["class_values"] == ["#ffffff", "#0000ff", "#ff0000"]
    assert segfit.check(white, verbose=False).class_names == ["background", "#0000ff", "#ff0000"]
    by_palette = segfit.check(white, palette="vineyard", verbose=False)
    named = segfit.check(white, class_names="soil,leaf,wood", verbose=False)
    assert by_palette.ok and named.ok and by_palette.class_names == ["background", "leaves", "wood"]
    assert np.array_equal(by_palette.class_pixels, named.class_pixels)
    assert by_palette.class_pixels[0] > by_palette.class_pixels[1] > 0
