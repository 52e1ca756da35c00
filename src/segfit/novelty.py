"""Is an image like the ones the model learned from? Per-image statistics against their range on the
training images.

A model's own uncertainty says little about images unlike its training data: heavy noise, a flat
inverted contrast or a photo of something else can be segmented with confidence, and wrongly. So
``predict --uncertainty`` also compares each image's brightness, contrast and pixel-to-pixel noise
with their range over the training and validation images (recorded in ``summary.json`` when the run is
reported), and flags for review an image that falls outside it.
"""

from __future__ import annotations

import numpy as np

STATS = ("brightness", "contrast", "noise")
RATIOS = ("contrast",)  # positive, spread over orders of magnitude: its range is widened on a log scale
SAMPLE_IMAGES = 64  # training and validation images measured for the range
WIDEN = 0.25  # the observed range is widened by this share of its width on each side
ROWS = 256  # rows of an image measured (spread over its height; whole rows, so neighbours stay neighbours)


def image_stats(image: np.ndarray) -> dict:
    """``brightness`` (mean), ``contrast`` (standard deviation) and ``noise`` (median absolute difference of
    horizontal neighbours over the contrast) of an ``H x W [x C]`` image scaled to [0, 1] by its dtype."""
    rows = image[:: max(1, image.shape[0] // ROWS)]
    scale = 1.0 / np.iinfo(image.dtype).max if image.dtype.kind in "ui" else 1.0
    grey = (rows.mean(axis=-1) if rows.ndim == 3 else rows).astype(np.float32) * scale
    contrast = float(grey.std())
    step = np.abs(np.diff(grey, axis=1))
    return {"brightness": float(grey.mean()), "contrast": contrast,
            "noise": float(np.median(step) / max(contrast, 1e-3)) if step.size else 0.0}


def stats_range(images) -> dict | None:
    """``{"range": {stat: [low, high]}, "how": ...}`` from images (arrays) the model learned from."""
    measured = [image_stats(im) for im in images]
    if not measured:
        return None
    out = {}
    for name in STATS:
        values = np.array([m[name] for m in measured])
        if name in RATIOS:
            logs = np.log(np.maximum(values, 1e-4))
            pad = WIDEN * max(float(logs.max() - logs.min()), 0.1)
            out[name] = [round(float(np.exp(logs.min() - pad)), 5), round(float(np.exp(logs.max() + pad)), 5)]
        else:
            pad = WIDEN * max(float(values.max() - values.min()), 1e-3)
            out[name] = [round(float(values.min()) - pad, 5), round(float(values.max()) + pad, 5)]
    return {"range": out, "how": f"range over {len(measured)} training and validation images, widened by "
                                 f"{100 * WIDEN:.0f} % of its width on each side (contrast: on a log scale)"}


def merged_range(ranges: list[dict | None]) -> dict | None:
    """One range covering several runs' (an ensemble's members)."""
    ranges = [r for r in ranges if r]
    if not ranges:
        return None
    out = {name: [min(r["range"][name][0] for r in ranges), max(r["range"][name][1] for r in ranges)]
           for name in ranges[0]["range"]}
    return {"range": out, "how": f"the members' ranges together ({ranges[0]['how']}, each)"}


def unusual(stats: dict, known: dict | None) -> str | None:
    """Why an image with ``stats`` is unlike the training images (None when it is like them)."""
    if not known:
        return None
    found = [f"{name} {stats[name]:.3g} (training {lo:.3g}..{hi:.3g})"
             for name, (lo, hi) in known["range"].items() if not lo <= stats[name] <= hi]
    return "unlike the training images: " + ", ".join(found) if found else None


def run_stats_range(cfg, split: dict) -> dict | None:
    """The range of a run's training and validation images (a sample of :data:`SAMPLE_IMAGES`), read as
    the model reads them."""
    import random

    from segfit.data.formats import read_image
    from segfit.data.layouts import discover

    d = cfg.data
    by_name = {s.name: s for s in discover(d.root, d.images, d.masks, d.mask_suffix, require_masks=False).samples}
    names = [n for n in split.get("train", []) + split.get("val", []) if n in by_name]
    names = sorted(random.Random(0).sample(names, SAMPLE_IMAGES)) if len(names) > SAMPLE_IMAGES else names
    return stats_range(read_image(by_name[n].image, d.channels) for n in names)
