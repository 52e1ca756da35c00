"""Is an image like the ones the model learned from? Per-image statistics against their range on the
training images.

A model's own uncertainty says little about images unlike its training data: heavy noise, a flat
inverted contrast or a photo of something else can be segmented with confidence, and wrongly. So
``predict --uncertainty`` also compares each image's brightness, contrast, pixel-to-pixel noise and
colour with their range over the training and validation images (recorded in ``summary.json`` when the
run is reported), and flags for review an image that falls outside it. Colour is measured on the file
itself, also for a model that reads grey: a colour photo given to a model of grey micrographs is unusual.
"""

from __future__ import annotations

import numpy as np

STATS = ("brightness", "contrast", "noise", "colour")
RATIOS = ("contrast",)  # positive, spread over orders of magnitude: its range is widened on a log scale
SAMPLE_IMAGES = 64  # training and validation images measured for the range
WIDEN = 0.25  # the observed range is widened by this share of its width on each side
ROWS = 256  # rows of an image measured (spread over its height; whole rows, so neighbours stay neighbours)
MIN_PAD = {"colour": 0.02}  # the least widening: grey training images (colour 0) still admit a faint tint
# Smoother than any training image is not unusual down to this share of the least noise seen: a JPEG saved again
# at quality 75 has about 0.6 of its noise, and segments as well; added noise (the other side) is what misleads.
LOW_NOISE = 0.5


def image_stats(image: np.ndarray, colour: float | None = None) -> dict:
    """``brightness`` (mean), ``contrast`` (standard deviation), ``noise`` (median absolute difference of
    horizontal neighbours over the contrast) and ``colour`` (:func:`colourfulness`, unless given) of an
    ``H x W [x C]`` image scaled to [0, 1] by its dtype."""
    rows = _rows(image)
    grey = rows.mean(axis=-1) if rows.ndim == 3 else rows
    contrast = float(grey.std())
    step = np.abs(np.diff(grey, axis=1))
    return {"brightness": float(grey.mean()), "contrast": contrast,
            "noise": float(np.median(step) / max(contrast, 1e-3)) if step.size else 0.0,
            "colour": colourfulness(image) if colour is None else colour}


def colourfulness(image: np.ndarray) -> float:
    """Mean spread between the largest and smallest channel of each pixel, in [0, 1] (0 for grey)."""
    if image.ndim != 3 or image.shape[-1] < 3:
        return 0.0
    rgb = _rows(image)[..., :3]
    return round(float((rgb.max(axis=-1) - rgb.min(axis=-1)).mean()), 5)


def _rows(image: np.ndarray) -> np.ndarray:
    """:data:`ROWS` rows spread over the image's height, float32 scaled to [0, 1] by its dtype."""
    rows = image[:: max(1, image.shape[0] // ROWS)]
    scale = 1.0 / np.iinfo(image.dtype).max if image.dtype.kind in "ui" else 1.0
    return rows.astype(np.float32) * scale


def file_colour(path) -> float:
    """:func:`colourfulness` of an image file read as it is stored (colour or grey)."""
    from segfit.data.formats import read_image

    return colourfulness(read_image(path, 3))


def stats_range(images) -> dict | None:
    """``{"range": {stat: [low, high]}, "how": ...}`` from images the model learned from (arrays, or their
    :func:`image_stats`)."""
    measured = [im if isinstance(im, dict) else image_stats(im) for im in images]
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
            pad = max(WIDEN * float(values.max() - values.min()), MIN_PAD.get(name, 1e-3 * WIDEN))
            low = min(float(values.min()) - pad, LOW_NOISE * float(values.min())) if name == "noise" else values.min() - pad
            out[name] = [round(float(low), 5), round(float(values.max()) + pad, 5)]
    return {"range": out, "how": f"range over {len(measured)} training and validation images, widened by "
                                 f"{100 * WIDEN:.0f} % of its width on each side (contrast: on a log scale; "
                                 f"colour: by {MIN_PAD['colour']} at least; noise: down to {LOW_NOISE:g} of the least seen, as "
                                 "smoother images, a JPEG saved again among them, segment as well)"}


def merged_range(ranges: list[dict | None]) -> dict | None:
    """One range covering several runs' (an ensemble's members)."""
    ranges = [r for r in ranges if r]
    if not ranges:
        return None
    shared = [name for name in ranges[0]["range"] if all(name in r["range"] for r in ranges)]  # older runs lack some
    out = {name: [min(r["range"][name][0] for r in ranges), max(r["range"][name][1] for r in ranges)] for name in shared}
    return {"range": out, "how": f"the members' ranges together ({ranges[0]['how']}, each)"}


def unusual(stats: dict, known: dict | None) -> str | None:
    """Why an image with ``stats`` is unlike the training images (None when it is like them)."""
    if not known:
        return None
    found = [f"{name} {stats[name]:.3g} (training {lo:.3g}..{hi:.3g})"
             for name, (lo, hi) in known["range"].items() if name in stats and not lo <= stats[name] <= hi]
    return "unlike the training images: " + ", ".join(found) if found else None


def run_stats_range(cfg, split: dict) -> dict | None:
    """The range of a run's training and validation images (a sample of :data:`SAMPLE_IMAGES`), read as
    the model reads them."""
    import random

    from segfit.data.formats import read_image, to_channels
    from segfit.data.layouts import discover

    d = cfg.data
    by_name = {s.name: s for s in discover(d.root, d.images, d.masks, d.mask_suffix, require_masks=False).samples}
    names = [n for n in split.get("train", []) + split.get("val", []) if n in by_name]
    names = sorted(random.Random(0).sample(names, SAMPLE_IMAGES)) if len(names) > SAMPLE_IMAGES else names
    images = (read_image(by_name[n].image, 3) for n in names)  # colour from the file: a grey model's view has none
    return stats_range(image_stats(to_channels(rgb, d.channels), colourfulness(rgb)) for rgb in images)
