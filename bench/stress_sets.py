"""Synthetic data sets that stress the planner's rules (used by bench/auto_config.py --synthetic).

tiny objects on large images, one huge image, 1000+ small images, 16-bit grayscale, 5 classes with a rare one,
and the demo's particles and vineyard-like scenes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def _discs(rng, shape, n, radius, value=1, mask=None):
    h, w = shape
    mask = np.zeros(shape, np.uint8) if mask is None else mask
    yy, xx = np.mgrid[:h, :w]
    for _ in range(n):
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.uniform(*radius)
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = value
    return mask


def _save_set(root: Path, images, masks, bits16=False) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i, (im, m) in enumerate(zip(images, masks)):
        Image.fromarray(im).save(root / "images" / f"img_{i:04d}.png")
        Image.fromarray(m).save(root / "masks" / f"img_{i:04d}.png")
    return root


def _image(rng, mask, bits16=False, colours=None):
    noise = rng.normal(0, 0.08, mask.shape)
    base = 0.3 + 0.4 * (mask > 0) + noise if colours is None else None
    if colours is not None:
        rgb = np.asarray(colours, float)[mask] / 255 + rng.normal(0, 0.05, mask.shape + (3,))
        return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    if bits16:
        return (np.clip(base * 0.06, 0, 1) * 65535).astype(np.uint16)  # a narrow 16-bit range, as cameras give
    return (np.clip(base, 0, 1) * 255).astype(np.uint8)


def make_all(out: Path, seed: int = 0) -> dict[str, Path]:
    rng = np.random.default_rng(seed)
    out = Path(out)
    sets = {}
    masks = [_discs(rng, (1024, 1024), 60, (2, 4)) for _ in range(12)]
    sets["tiny_objects_large_images"] = _save_set(out / "tiny", [_image(rng, m) for m in masks], [m * 255 for m in masks])
    huge = _discs(rng, (3000, 3000), 400, (8, 20))
    sets["one_huge_image"] = _save_set(out / "huge", [_image(rng, huge)] * 1 + [_image(rng, huge[:1500, :1500])],
                                       [huge * 255, huge[:1500, :1500] * 255])
    small = [_discs(rng, (32, 32), 2, (3, 6)) for _ in range(1200)]
    sets["1200_small_images"] = _save_set(out / "small", [_image(rng, m) for m in small], small)
    masks = [_discs(rng, (256, 256), 12, (6, 14)) for _ in range(30)]
    sets["16bit_grey"] = _save_set(out / "bits16", [_image(rng, m, bits16=True) for m in masks], masks)
    colours = [(20, 20, 20), (200, 60, 60), (60, 200, 60), (60, 60, 200), (220, 220, 40)]
    five = []
    for _ in range(30):
        m = np.zeros((192, 192), np.uint8)
        for cls, n in ((1, 6), (2, 6), (3, 6)):
            _discs(rng, m.shape, n, (8, 16), cls, m)
        if rng.random() < 0.5:
            _discs(rng, m.shape, 1, (2, 3), 4, m)  # the rare class
        five.append(m)
    sets["5_classes_one_rare"] = _save_set(out / "five", [_image(rng, m, colours=colours) for m in five], five)
    from segfit.data.synthetic import make_particles, make_scenes

    sets["demo_particles"] = make_particles(out / "particles", n=80, size=96, seed=seed)
    sets["vineyard_like"] = make_scenes(out / "scenes", n=40, size=128, seed=seed)
    return sets
