"""Synthetic data sets: particle images, their files, and field scenes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segfit.data.formats import read_image, read_mask
from segfit.data.layouts import discover
from segfit.data.synthetic import ANNOTATION_COLORS, field_scene, make_particles, make_scenes, particle_image


@pytest.mark.parametrize("seed,size", [(0, 32), (1, 64), (2, 128), (5, 48)])
def test_particle_image(seed, size):
    image, labels = particle_image(np.random.default_rng(seed), size)
    assert image.shape == labels.shape == (size, size)
    assert image.dtype == np.uint8 and labels.dtype == np.uint16
    ids = np.unique(labels[labels > 0])
    assert len(ids) >= 1
    np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))  # consecutive from 1 for these seeds
    assert ids.max() <= 9
    background = float(np.median(image[labels == 0]))
    assert np.abs(image[labels > 0].astype(float) - background).mean() > 25
    assert 60 < background < 200


def test_particle_image_ids_bounded_and_deterministic():
    for seed in range(20):
        image, labels = particle_image(np.random.default_rng(seed), 32, count=(2, 4))
        ids = np.unique(labels[labels > 0])
        assert 1 <= len(ids) <= 4 and ids.min() >= 1 and ids.max() <= 4
    a = particle_image(np.random.default_rng(3), 40)
    b = particle_image(np.random.default_rng(3), 40)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_make_particles_folders(tmp_path):
    out = make_particles(tmp_path / "ds", n=3, size=24, seed=4)
    assert out == tmp_path / "ds"
    layout = discover(out)
    assert [s.name for s in layout.samples] == ["particles_000", "particles_001", "particles_002"]
    assert all(s.mask.parent.name == "segmaps" for s in layout.samples)
    rng = np.random.default_rng(4)
    for s in layout.samples:
        image, labels = particle_image(rng, 24)
        assert Image.open(s.mask).mode == "I;16"
        mask = read_mask(s.mask)
        assert mask.dtype == np.uint16
        np.testing.assert_array_equal(mask, labels)
        rgb = read_image(s.image, 3)
        assert rgb.shape == (24, 24, 3)
        for c in range(3):
            np.testing.assert_array_equal(rgb[..., c], image)
        np.testing.assert_array_equal(read_image(s.image, 1)[..., 0], image)


def test_make_particles_flat(tmp_path):
    out = make_particles(tmp_path, n=2, size=20, seed=9, layout="flat")
    layout = discover(out)
    assert [(s.image.name, s.mask.name) for s in layout.samples] == [
        ("particles_000.png", "particles_000_bin.png"), ("particles_001.png", "particles_001_bin.png")]
    rng = np.random.default_rng(9)
    for s in layout.samples:
        _, labels = particle_image(rng, 20)
        mask = read_mask(s.mask)
        assert mask.dtype == np.uint8
        np.testing.assert_array_equal(mask, (labels > 0).astype(np.uint8))


def test_make_particles_unknown_layout(tmp_path):
    with pytest.raises(ValueError, match="unknown layout"):
        make_particles(tmp_path, n=1, size=16, layout="nested")


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_field_scene_colours_match_classes(seed):
    image, classes, colour = field_scene(np.random.default_rng(seed), 48)
    assert image.shape == colour.shape == (48, 48, 3)
    assert classes.shape == (48, 48)
    assert image.dtype == classes.dtype == colour.dtype == np.uint8
    assert set(np.unique(classes).tolist()) <= {0, 1, 2}
    assert set(np.unique(classes).tolist()) == {0, 1, 2}  # background, leaves and wood all drawn
    white = np.array(ANNOTATION_COLORS["background"])
    blue = np.array(ANNOTATION_COLORS["leaves"])
    red, green = np.array(ANNOTATION_COLORS["trunk"]), np.array(ANNOTATION_COLORS["branches"])
    assert tuple(blue) == (0, 0, 255) and tuple(red) == (255, 0, 0) and tuple(green) == (0, 255, 0)
    assert np.all(colour[classes == 0] == white)
    assert np.all(colour[classes == 1] == blue)
    wood = colour[classes == 2]
    assert np.all(np.all(wood == red, axis=-1) | np.all(wood == green, axis=-1))
    # and nothing else: every colour pixel is one of the four annotation colours
    known = np.stack([white, blue, red, green])
    assert np.all((colour.reshape(-1, 1, 3) == known[None]).all(-1).any(-1))


def test_make_scenes(tmp_path):
    out = make_scenes(tmp_path, n=2, size=32, seed=0, colour_masks=True)
    layout = discover(out)
    assert [(s.image.name, s.mask.name) for s in layout.samples] == [
        ("vine_000.jpg", "vine_000_bin.png"), ("vine_001.jpg", "vine_001_bin.png")]
    rng = np.random.default_rng(0)
    for s in layout.samples:
        _, classes, colour = field_scene(rng, 32)
        np.testing.assert_array_equal(read_mask(s.mask), classes)
        np.testing.assert_array_equal(np.array(Image.open(out / "annotations" / f"{s.name}.png")), colour)
