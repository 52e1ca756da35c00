"""Scale-adaptive prediction: an image whose objects come out much smaller than the training objects is
predicted again at the scale that brings them to the training size (at most full size, twice after a closer
look); one whose objects are too small to see is looked at from closer; one whose objects come out in pieces
from farther away."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segfit.backends import TorchBackend
from segfit.config import RunConfig
from segfit.decoding import Prediction
from segfit.options import resolve_data
from segfit.predictor import Predictor


def _predictor(scale: float | None, diameter: float | None, sharpness: float = 40.0) -> Predictor:
    """A pixel-wise network on grey images: foreground where the pixel is brighter than half (logit
    ``sharpness * (pixel - 0.5)``)."""
    cfg = RunConfig()
    cfg.data.channels, cfg.data.num_classes, cfg.data.mean, cfg.data.std = 1, 2, [0.0], [1.0]
    cfg.data.scale, cfg.data.object_diameter = scale, diameter
    resolve_data(cfg.data)
    cfg.model.in_channels, cfg.model.num_classes = 1, 2
    net = torch.nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        net.weight.fill_(sharpness), net.bias.fill_(-sharpness / 2)
    return Predictor(TorchBackend(net, cfg, "cpu"), auto_tile=0, tta=False)


def _discs(diameter: float, side: int = 240, step: int = 60) -> np.ndarray:
    yy, xx = np.mgrid[:side, :side]
    image = np.zeros((side, side), np.uint8)
    for cy in range(step // 2, side, step):
        for cx in range(step // 2, side, step):
            image[(yy - cy) ** 2 + (xx - cx) ** 2 <= (diameter / 2) ** 2] = 255
    return image


def _median_diameter(mask: np.ndarray) -> float:
    from scipy import ndimage

    labels, n = ndimage.label(mask > 0)
    return float(np.median(2 * np.sqrt(np.bincount(labels.ravel())[1:] / np.pi)))


def test_the_scale_that_brings_small_objects_to_the_training_size():
    p = _predictor(0.25, 40.0)
    assert p.adapts_scale
    labels = np.zeros((200, 200), np.int32)
    labels[10:20, 10:20], labels[50:60, 50:60], labels[100:110, 100:110] = 1, 2, 3  # 10x10 px: 11.3 px across
    assert p.closer_scale(Prediction(labels.astype(np.uint8) > 0, objects=labels)) == pytest.approx(0.25 * 40 / 11.28, abs=1e-3)
    small = np.zeros((200, 200), np.int32)
    small[10:14, 10:14] = 1  # 4.5 px across: full size at most
    assert p.closer_scale(Prediction(small > 0, objects=small)) == 1.0
    usual = np.zeros((200, 200), np.int32)
    usual[:36, :36] = 1  # 40.6 px across: the training size
    assert p.closer_scale(Prediction(usual > 0, objects=usual)) is None
    assert p.closer_scale(Prediction(np.zeros((9, 9), np.uint8))) is None  # no objects: nothing to measure
    closer = Prediction(small > 0, objects=small, scale=1.5)  # a closer look's: up to twice the image's size
    assert p.closer_scale(closer) == 2.0 and p.closer_scale(closer._replace(scale=1.8)) is None  # barely larger
    assert not _predictor(1.0, 40.0).adapts_scale and not _predictor(0.25, None).adapts_scale


def test_an_image_of_small_objects_is_predicted_again_at_a_larger_scale():
    p = _predictor(0.25, 40.0)
    big = p.predict_full([_discs(40)])[0]  # the training size: one pass
    assert big.scale is None and big.classes.shape == (240, 240)
    small = p.predict_full([_discs(12)])[0]  # 3 px at the working scale: predicted again at the scale of 40 / 12
    expected = min(1.0, 0.25 * 40 / _median_diameter(_predictor(0.25, None).predict(_discs(12))))
    assert small.scale == pytest.approx(expected, abs=1e-3) and small.scale > 0.5
    assert small.classes.shape == (240, 240)
    at_that_scale = _predictor(small.scale, None).predict(_discs(12))
    assert (small.classes == at_that_scale).all()  # the second pass is the prediction at that scale
    truth = _discs(12) > 0
    once = _predictor(0.25, None).predict(_discs(12)) > 0
    iou = lambda m: (m & truth).sum() / (m | truth).sum()  # noqa: E731
    assert iou(small.classes > 0) > iou(once) + 0.05
    both = p.predict_full([_discs(40), _discs(12)])  # a batch: each image as alone
    assert both[0].scale is None and both[1].scale == small.scale and (both[1].classes == small.classes).all()


def _textured_disc(side: int = 420, diameter: int = 300, period: int = 12, line: int = 4, dark: int = 115) -> np.ndarray:
    """One large bright disc crossed by a grid of lines a little darker than half: a pixel-wise network at a fine
    scale breaks it into squares, unsure of the lines; from farther away the lines blur into the disc, whole and
    sure."""
    yy, xx = np.mgrid[:side, :side]
    disc = (yy - side // 2) ** 2 + (xx - side // 2) ** 2 <= (diameter / 2) ** 2
    image = np.where(disc, 255, 0).astype(np.uint8)
    grid = ((yy % period) < line) | ((xx % period) < line)
    image[disc & grid] = dark
    return image


def test_objects_broken_into_pieces_are_seen_whole_from_farther_away():
    from segfit.rescaling import broken_apart, coarse_scale, median_diameter, surer

    p = _predictor(0.5, 40.0, sharpness=20.0)
    assert coarse_scale(p.config.data) == pytest.approx(0.5 / 3)
    first = _predictor(0.5, None, 20.0).predict_full([_textured_disc()], objects=True, uncertainty=True)[0]  # no size known: no coarse look
    assert first.scale is None and first.objects.max() > 50 and median_diameter(first) < 20  # pieces of ~9 px
    seen = p.predict_full([_textured_disc()], objects=True)[0]
    assert seen.scale == pytest.approx(0.5 / 3, abs=1e-3)  # the coarse look is the prediction
    assert seen.objects.max() == 1 and median_diameter(seen) > 250  # one object, about 300 px across
    assert seen.classes.shape == (420, 420) and seen.uncertainty is None  # what was not asked for is not returned
    # The same look, but where the model is less sure of it than of the first pass, is not taken.
    assert surer(p.predict_full([_textured_disc()], uncertainty=True)[0], first)
    assert not surer(first, p.predict_full([_textured_disc()], uncertainty=True)[0])
    # Objects of the training size stay at the working scale, though the image is large enough for a coarse look.
    usual = p.predict_full([_discs(40, side=480)], objects=True)[0]
    assert usual.scale is None and usual.objects.max() == 64
    assert not broken_apart(p.config.data, 16.0, 35.0)  # 2.2 times the pieces: not enough
    assert not broken_apart(p.config.data, 30.0, 90.0)  # under 2.4 times the training objects (96 px): crumbs run together
    assert broken_apart(p.config.data, 30.0, 130.0)
    assert coarse_scale(_predictor(0.5, None).config.data) is None  # no known object size: no coarse look


def test_an_image_whose_objects_are_too_small_to_see_is_looked_at_from_closer():
    from segfit.rescaling import close_scale, closer_is_surer, looks_closer

    p = _predictor(0.25, 40.0)
    dots = _discs(3, side=240, step=10)  # 576 dots 3 px across: under a pixel at the working scale
    first = _predictor(0.25, None).predict_full([dots], uncertainty=True)[0]
    assert (first.classes == 0).all() and first.expected_iou < 0.1  # nothing seen, and the model knows it is unsure
    assert looks_closer(p.config.data, first) and close_scale(p.config.data) == 0.75
    seen = p.predict_full([dots], objects=True, uncertainty=True)[0]
    assert seen.scale == 2.0  # seen from closer (0.75), then at the scale of the dots' size, at most twice the image's
    truth = dots > 0
    assert (seen.classes > 0).sum() > 0 and ((seen.classes > 0) & truth).sum() / ((seen.classes > 0) | truth).sum() > 0.9
    assert seen.objects.max() == 576 and seen.expected_iou > 0.9
    blank = p.predict_full([np.zeros((240, 240), np.uint8)], uncertainty=True)[0]  # nothing there, and sure of it
    assert blank.scale is None and not looks_closer(p.config.data, blank)
    assert close_scale(_predictor(1.0, 40.0).config.data) is None  # a model at full size is not looked closer
    usual = np.zeros((240, 240), np.int32)
    usual[:36, :36] = 1  # unsure of an object of the training size: not a matter of seeing closer
    assert not looks_closer(p.config.data, Prediction(usual > 0, objects=usual, expected_iou=0.2))
    assert looks_closer(p.config.data, Prediction(usual > 0, objects=usual // 2, expected_iou=0.2))  # nothing found
    # A closer look is taken only where the model expects clearly more of it than of the first pass.
    assert closer_is_surer(seen, first) and not closer_is_surer(seen, seen._replace(expected_iou=seen.expected_iou - 0.1))


def test_the_fragment_floor_is_a_size_the_network_sees():
    from segfit.rescaling import fragment_floor, largest_scale

    d = _predictor(0.5, 40.0).config.data
    assert fragment_floor(96, d, None) == 96 and fragment_floor(96, d, 0.5) == 96  # the working scale
    assert fragment_floor(96, d, 1.0) == 24 and fragment_floor(96, d, 2.0) == 6  # predicted larger: smaller objects
    assert fragment_floor(96, d, 0.5 / 3) == 864 and fragment_floor(0, d, 2.0) == 0  # from farther away: larger crumbs
    assert largest_scale((200, 200)) == 2.0 and largest_scale((8192, 8192)) == 1.0  # at most 16 M pixels, full size always
    assert largest_scale((3000, 3000)) == pytest.approx((1 << 24) ** 0.5 / 3000)


def test_pieces_the_coarse_look_saw_whole_are_not_looked_at_from_closer(monkeypatch):
    import segfit.predictor as predictor

    p = _predictor(0.5, 40.0, sharpness=20.0)
    # The model is not surer of the coarse look: the first pass stays, but its pieces (~9 px, under the training
    # objects' 40) are not small objects to predict again at a larger scale, in more pieces.
    monkeypatch.setattr(predictor, "surer", lambda coarse, first: False)
    kept = p.predict_full([_textured_disc()], objects=True)[0]
    assert kept.scale is None and kept.objects.max() > 50
    # Without the coarse look's word (an object size too small for it to see the disc whole), the same pieces are
    # predicted again from closer.
    monkeypatch.setattr(predictor, "broken_apart", lambda data, first, coarse: False)
    assert p.predict_full([_textured_disc()], objects=True)[0].scale > 0.5


def test_an_image_is_measured_by_the_objects_it_counts_before_a_closer_look():
    from segfit.decoding import Prediction

    p = _predictor(0.25, 40.0)
    image = p._array(_discs(40, side=240, step=60))  # 16 discs of the training size
    labels, (yy, xx) = np.zeros((240, 240), np.int32), np.mgrid[:240, :240]
    for k, (cy, cx) in enumerate((y, x) for y in range(30, 240, 60) for x in range(30, 240, 60)):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= 400] = k + 1
    unsure = np.full((240, 240), 0.05, np.float16)
    for y in range(0, 240, 60):  # 32 crumbs 3 px across between them, which the model is nowhere sure of
        for x in range(0, 240, 30):
            labels[y:y + 3, x:x + 3], unsure[y:y + 3, x:x + 3] = labels.max() + 1, 0.95
    first = Prediction((labels > 0).astype(np.uint8), objects=labels, uncertainty=unsure, expected_iou=0.2)

    def looked(level):
        p.unsure_level, results = level, [first]
        p._look_closer([image], results, [(240, 240)], 4, True, False, set())
        return results[0].scale

    assert looked(0.7) is None  # the objects it counts are the usual size: nothing to see from closer
    assert looked(None) == 0.75  # counting the crumbs too, the image passes for one of small objects
