"""Images unlike the training images (noise, flattened contrast, colour) are flagged for review."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from segfit.novelty import image_stats, merged_range, stats_range, unusual


def _scene(rng, size=64) -> np.ndarray:
    """A smooth image with a few bright and dark blobs (uint8)."""
    yy, xx = np.mgrid[:size, :size]
    image = np.full((size, size), 0.5)
    for _ in range(5):
        cy, cx, r = rng.uniform(8, size - 8, 2).tolist() + [rng.uniform(4, 10)]
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.choice([0.15, 0.85])
    return (np.clip(image + rng.normal(0, 0.02, image.shape), 0, 1) * 255).astype(np.uint8)


def test_stats_of_crafted_images():
    flat = np.full((32, 32), 128, np.uint8)
    assert image_stats(flat) == pytest.approx({"brightness": 128 / 255, "contrast": 0.0, "noise": 0.0, "colour": 0.0})
    stripes = np.tile(np.array([0, 255], np.uint8), (32, 16))  # every neighbour differs by the whole range
    stats = image_stats(stripes)
    assert stats == pytest.approx({"brightness": 0.5, "contrast": 0.5, "noise": 2.0, "colour": 0.0})
    assert image_stats(np.stack([stripes] * 3, -1)) == pytest.approx(stats)  # grey in RGB: the mean of the channels
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    red[4:] = 100  # half red (spread 1), half grey (spread 0)
    assert image_stats(red)["colour"] == pytest.approx(0.5)
    assert image_stats(red, colour=0.25)["colour"] == 0.25  # measured on the file by the caller


def test_a_colour_image_is_unusual_for_grey_training_images():
    rng = np.random.default_rng(0)
    known = stats_range(_scene(rng) for _ in range(20))
    assert known["range"]["colour"] == [-0.02, 0.02]  # grey: a faint tint still passes
    scene = _scene(rng)
    tinted = np.stack([scene, scene, (scene * 0.6).astype(np.uint8)], -1)
    assert "colour" in unusual(image_stats(tinted), known)
    assert unusual(image_stats(np.stack([scene] * 3, -1)), known) is None
    old = {"range": {k: v for k, v in known["range"].items() if k != "colour"}, "how": "before colour"}
    assert unusual(image_stats(tinted), old) is None  # a range recorded without colour checks the rest


def test_noise_and_flat_contrast_are_unusual_and_the_training_kind_is_not():
    rng = np.random.default_rng(0)
    known = stats_range(_scene(rng) for _ in range(20))
    assert unusual(image_stats(_scene(np.random.default_rng(99))), known) is None
    noisy = np.clip(_scene(rng) + rng.normal(0, 80, (64, 64)), 0, 255).astype(np.uint8)
    assert "noise" in unusual(image_stats(noisy), known)
    flat = (100 + (255 - _scene(rng).astype(np.float32)) * 0.1).astype(np.uint8)
    assert "contrast" in unusual(image_stats(flat), known)
    assert unusual(image_stats(noisy), None) is None  # no recorded range: nothing to say
    both = merged_range([known, {"range": {"brightness": [2, 3], "contrast": [1, 2], "noise": [0, 9]}, "how": "x"}])
    assert both["range"]["noise"] == [0, 9] and unusual(image_stats(noisy), both) is None


def test_predict_flags_an_image_unlike_the_training_images(trained_run, particles_dir, tmp_path):
    summary = json.loads((trained_run / "summary.json").read_text())
    assert set(summary["inputs"]["range"]) == {"brightness", "contrast", "noise", "colour"}
    inputs = tmp_path / "in"
    inputs.mkdir()
    clean = sorted((particles_dir / "images").glob("*.png"))[0]
    image = np.asarray(Image.open(clean))
    Image.fromarray(image).save(inputs / "clean.png")
    noisy = np.clip(image + np.random.default_rng(0).normal(0, 90, image.shape), 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(inputs / "noisy.png")
    grey = image if image.ndim == 2 else image[..., 0]
    Image.fromarray(np.stack([grey, (grey * 0.5).astype(np.uint8), grey // 4], -1)).save(inputs / "tinted.png")
    out = tmp_path / "pred"
    proc = subprocess.run([sys.executable, "-m", "segfit", "predict", str(trained_run), str(inputs), "--out", str(out),
                           "--uncertainty"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    rows = {r["image"]: r for r in json.loads((out / "predictions.json").read_text())["images"]}
    assert rows["clean.png"]["unusual_input"] is None
    assert "noise" in rows["noisy.png"]["unusual_input"] and rows["noisy.png"]["review"] is True
    assert "colour" in rows["tinted.png"]["unusual_input"] and rows["tinted.png"]["review"] is True
    assert "noisy.png" in proc.stdout and "unlike the training images" in proc.stdout


def test_predict_without_uncertainty_still_says_which_images_are_unusual(trained_run, particles_dir, tmp_path, capsys):
    """A float TIFF of raw counts (pixels far above 1) would be segmented with confidence and wrongly: the
    image is named, with the likely cause, also when no uncertainty is asked for."""
    import tifffile

    import segfit

    inputs = tmp_path / "in"
    inputs.mkdir()
    clean = sorted((particles_dir / "images").glob("*.png"))[0]
    image = np.asarray(Image.open(clean))
    Image.fromarray(image).save(inputs / "clean.png")
    tifffile.imwrite(inputs / "counts.tif", image.astype(np.float32) * 16)  # 0..4080 as floats
    segfit.predict(trained_run, [inputs], tmp_path / "pred")
    record = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert [r["image"] for r in record["unusual"]] == ["counts.tif"]
    assert "brightness" in record["unusual"][0]["why"] and "floats above 1" in record["unusual"][0]["why"]
    out = capsys.readouterr().out
    assert "counts.tif: unlike the training images" in out and "Check: 1 of 2 images" in out


def test_a_photo_saved_again_as_jpeg_is_not_unusual(tmp_path):
    """Recompression smooths the pixel-to-pixel noise (to about 0.6 of it at quality 75): not unusual."""
    rng = np.random.default_rng(3)
    scene = _scene(rng, 128).astype(np.float32)
    photos = [np.clip(scene + rng.normal(0, 3, scene.shape), 0, 255).astype(np.uint8) for _ in range(12)]
    known = stats_range(photos)
    Image.fromarray(photos[0]).save(tmp_path / "again.jpg", quality=75)
    again = np.asarray(Image.open(tmp_path / "again.jpg"))
    assert image_stats(again)["noise"] < min(image_stats(p)["noise"] for p in photos)  # smoother than any
    assert unusual(image_stats(again), known) is None
    blank = np.full((128, 128), 120, np.uint8)
    blank[::8] = 121  # almost no noise at all: still unusual
    assert "noise" in unusual(image_stats(blank), known)
