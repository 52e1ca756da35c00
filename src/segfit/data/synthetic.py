"""Synthetic data sets that look like the real ones, for the demo and the tests.

* :func:`particle_image` / :func:`make_particles` — EM-like: textured noisy background, bright and
  dark particles of varied size and shape, 16-bit instance label maps (like EMPS).
* :func:`field_scene` / :func:`make_scenes` — field-photo-like RGB scenes of leaves and wood with
  colour-coded annotations (blue leaves, red trunk, green branches on white), like the vineyard set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage


def _ellipse(shape: tuple[int, int], cy: float, cx: float, ry: float, rx: float, angle: float,
             wobble: np.ndarray | None = None) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    c, s = np.cos(angle), np.sin(angle)
    u, v = (dx * c + dy * s) / rx, (-dx * s + dy * c) / ry
    r = np.sqrt(u * u + v * v)
    if wobble is not None:  # a wavy outline: radius varies with the polar angle
        theta = np.arctan2(v, u)
        r = r / (1 + sum(a * np.cos((k + 2) * theta + p) for k, (a, p) in enumerate(wobble)))
    return r <= 1.0


def particle_image(rng: np.random.Generator, size: int = 128, count: tuple[int, int] = (3, 9),
                   radius: tuple[float, float] = (0.05, 0.13)) -> tuple[np.ndarray, np.ndarray]:
    """One EM-like image (uint8, H x W) and its instance label map (uint16, 0 = background).

    Args:
        rng: random generator.
        size: image side in pixels.
        count: range of the number of particles.
        radius: range of particle radii as fractions of ``size``.
    """
    shape = (size, size)
    noise = rng.normal(size=shape).astype(np.float32)
    texture = ndimage.gaussian_filter(noise, size / 10) * (size / 10) * 0.9
    gradient = np.linspace(-1, 1, size, dtype=np.float32)[None, :] * rng.uniform(-0.06, 0.06)
    image = 0.5 + 0.07 * texture + gradient
    labels = np.zeros(shape, np.uint16)
    for k in range(int(rng.integers(count[0], count[1] + 1))):
        r = rng.uniform(*radius) * size
        ry, rx = r * rng.uniform(0.7, 1.0), r * rng.uniform(0.8, 1.2)
        cy, cx = rng.uniform(r, size - r), rng.uniform(r, size - r)
        wobble = [(rng.uniform(0, 0.08), rng.uniform(0, 2 * np.pi)) for _ in range(2)]
        region = _ellipse(shape, cy, cx, ry, rx, rng.uniform(0, np.pi), wobble)
        polarity = 1.0 if rng.random() < 0.5 else -1.0
        yy, xx = np.mgrid[:size, :size]
        shading = 1.0 - 0.3 * np.clip(((yy - cy) ** 2 + (xx - cx) ** 2) / (r * r), 0, 1)
        image[region] = (0.5 + polarity * rng.uniform(0.22, 0.32) * shading[region]
                         + 0.03 * texture[region])
        labels[region] = k + 1
    image = ndimage.gaussian_filter(image, 0.8) + rng.normal(0, 0.035, shape)
    ids = np.unique(labels)  # a particle hidden under later ones leaves a gap: renumber 1..K
    labels = np.searchsorted(ids, labels).astype(np.uint16) if ids[0] == 0 else (np.searchsorted(ids, labels) + 1).astype(np.uint16)
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8), labels


def make_particles(out: str | Path, n: int = 60, size: int = 128, seed: int = 0, layout: str = "folders") -> Path:
    """Write an EMPS-like data set: ``images/*.png`` (RGB) + ``segmaps/*.png`` (16-bit instances),
    or with ``layout="flat"`` ``NAME.png`` + ``NAME_bin.png`` (0/1 masks)."""
    from PIL import Image

    out = Path(out)
    rng = np.random.default_rng(seed)
    for i in range(n):
        image, labels = particle_image(rng, size)
        name = f"particles_{i:03d}"
        rgb = Image.fromarray(np.repeat(image[..., None], 3, axis=-1))
        if layout == "folders":
            (out / "images").mkdir(parents=True, exist_ok=True)
            (out / "segmaps").mkdir(parents=True, exist_ok=True)
            rgb.save(out / "images" / f"{name}.png")
            Image.fromarray(labels).save(out / "segmaps" / f"{name}.png")  # uint16 -> 16-bit PNG
        elif layout == "flat":
            out.mkdir(parents=True, exist_ok=True)
            rgb.save(out / f"{name}.png")
            Image.fromarray((labels > 0).astype(np.uint8)).save(out / f"{name}_bin.png")
        else:
            raise ValueError(f"unknown layout {layout!r}: use folders or flat")
    return out


# Colours annotators used in the vineyard project (RGB).
ANNOTATION_COLORS = {"background": (255, 255, 255), "leaves": (0, 0, 255), "trunk": (255, 0, 0), "branches": (0, 255, 0)}


def field_scene(rng: np.random.Generator, size: int = 96) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One field-like RGB scene, its class-index mask (0 background, 1 leaves, 2 wood) and the
    annotators' colour-coded mask (white background, blue leaves, red trunk, green branches)."""
    shape = (size, size)
    sky = np.linspace(0.85, 0.55, size, dtype=np.float32)[:, None, None] * np.array([0.75, 0.8, 0.95], np.float32)
    image = np.broadcast_to(sky, shape + (3,)).copy()
    image += rng.normal(0, 0.03, shape + (3,)).astype(np.float32)
    classes = np.zeros(shape, np.uint8)
    colour = np.full(shape + (3,), 255, np.uint8)
    # Wood: a vertical trunk and a few horizontal branches.
    x0 = int(rng.integers(size // 4, 3 * size // 4))
    w = max(3, size // 14)
    trunk = np.zeros(shape, bool)
    trunk[size // 3:, x0 - w // 2: x0 + w // 2 + 1] = True
    branches = np.zeros(shape, bool)
    for _ in range(int(rng.integers(1, 3))):
        y = int(rng.integers(size // 4, size // 2))
        branches[y: y + max(2, w // 2), int(rng.integers(0, size // 4)): int(rng.integers(3 * size // 4, size))] = True
    for region, rgb_class, col in ((branches, (0.45, 0.3, 0.15), "branches"), (trunk, (0.35, 0.22, 0.1), "trunk")):
        image[region] = np.array(rgb_class) + rng.normal(0, 0.03, (int(region.sum()), 3))
        classes[region] = 2
        colour[region] = ANNOTATION_COLORS[col]
    # Leaves: green ellipses over the wood.
    for _ in range(int(rng.integers(4, 9))):
        r = rng.uniform(0.06, 0.14) * size
        region = _ellipse(shape, rng.uniform(0, size * 0.75), rng.uniform(0, size), r * 0.7, r, rng.uniform(0, np.pi))
        image[region] = np.array([0.2, rng.uniform(0.5, 0.7), 0.15]) + rng.normal(0, 0.04, (int(region.sum()), 3))
        classes[region] = 1
        colour[region] = ANNOTATION_COLORS["leaves"]
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8), classes, colour


def make_scenes(out: str | Path, n: int = 24, size: int = 96, seed: int = 0, colour_masks: bool = False,
                class_masks: bool = True) -> Path:
    """Write a vineyard-like flat data set: ``NAME.jpg`` + ``NAME_bin.png`` (class ids), and with
    ``colour_masks`` the annotators' ``NAME.png`` colour masks in ``out/annotations/`` too.
    ``class_masks=False`` leaves out the ``NAME_bin.png``: photos and colour annotations only, as a field
    project starts (``segfit.convert_masks`` makes the class masks)."""
    from PIL import Image

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        image, classes, colour = field_scene(rng, size)
        name = f"vine_{i:03d}"
        Image.fromarray(image).save(out / f"{name}.jpg", quality=95)
        if class_masks:
            Image.fromarray(classes).save(out / f"{name}_bin.png")
        if colour_masks:
            (out / "annotations").mkdir(exist_ok=True)
            Image.fromarray(colour).save(out / "annotations" / f"{name}.png")
    return out
