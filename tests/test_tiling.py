"""Sliding-window prediction: geometry for awkward sizes, and agreement with whole-image prediction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segfit.config import ModelConfig, RunConfig
from segfit.backends import TorchBackend
from segfit.models import create_model
from segfit.options import resolve_data
from segfit.predictor import Predictor
from segfit.tiling import gaussian_weight, predict_tiled, tile_starts


@pytest.mark.parametrize("length, tile, overlap", [(1, 8, 2), (7, 8, 2), (8, 8, 2), (9, 8, 2), (97, 32, 8),
                                                    (101, 16, 15), (64, 16, 0), (1000, 512, 64)])
def test_tile_starts_cover_everything_and_stay_inside(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    size = min(tile, length)
    covered = np.zeros(length, bool)
    for s in starts:
        assert 0 <= s and s + size <= length
        covered[s: s + size] = True
    assert covered.all()
    assert starts == sorted(set(starts))
    if length > tile:
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


def test_gaussian_weight_peaks_in_the_centre():
    w = gaussian_weight(9, 5)
    assert w.shape == (9, 5) and w[4, 2] == pytest.approx(1.0) and w.min() >= 1e-3
    assert w[0, 0] < w[2, 1] < w[4, 2]


@pytest.mark.parametrize("h, w", [(1, 1), (13, 17), (31, 97), (64, 64), (127, 45), (200, 33)])
def test_tiled_logits_have_the_input_size_and_match_a_pointwise_network(h, w):
    # A 1x1 convolution has no spatial context: tiled and whole predictions must agree exactly.
    net = torch.nn.Conv2d(3, 2, 1)
    image = torch.rand(3, h, w)
    out = predict_tiled(image, net, tile=32, overlap=8, batch_size=3)
    assert out.shape == (2, h, w)
    assert torch.allclose(out, net(image[None])[0], atol=1e-5)


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    cfg = RunConfig()
    cfg.data.channels, cfg.data.num_classes = 3, 3
    resolve_data(cfg.data)
    cfg.model = ModelConfig(name="unet", encoder="resnet18", encoder_depth=3, decoder_channels=[32, 16, 8],
                            in_channels=3, num_classes=3)
    return Predictor(TorchBackend(create_model(cfg.model), cfg, "cpu"), auto_tile=0)


@pytest.mark.parametrize("h, w", [(1, 1), (37, 53), (97, 131), (200, 160)])
def test_predict_returns_original_size_with_and_without_tiles(predictor, h, w):
    image = (np.random.default_rng(h).random((h, w, 3)) * 255).astype(np.uint8)
    predictor.tile = None
    whole = predictor.predict(image)
    predictor.tile = 64
    tiled = predictor.predict(image)
    predictor.tile = None
    assert whole.shape == tiled.shape == (h, w)
    assert whole.dtype == np.uint8 and whole.max() < 3


def test_tiled_and_whole_predictions_agree():
    # The notebook network sees about 30 pixels around each pixel: with 32-pixel overlaps,
    # blended tiles reproduce the whole-image prediction almost everywhere.
    torch.manual_seed(1)
    cfg = RunConfig()
    cfg.data.channels = 1
    resolve_data(cfg.data)
    cfg.model = ModelConfig(name="notebook", in_channels=1, num_classes=2)
    predictor = Predictor(TorchBackend(create_model(cfg.model), cfg, "cpu"), auto_tile=0)
    image = (np.random.default_rng(3).random((150, 170)) * 255).astype(np.uint8)
    whole = predictor.predict(image)
    predictor.tile, predictor.overlap = 64, 32
    tiled = predictor.predict(image)
    assert 0.05 < whole.mean() < 0.95  # both classes present, so agreement is not trivial
    assert (whole == tiled).mean() >= 0.99


def test_large_images_are_tiled_automatically(predictor):
    predictor.auto_tile = 4.0
    predictor.config.data.size = None
    predictor.config.data.crop = 16
    assert predictor.tile_for(60, 60) is None
    assert predictor.tile_for(65, 20) == 32
    predictor.auto_tile = 0
    assert predictor.tile_for(10_000, 10_000) is None


@pytest.mark.parametrize("length, tile, overlap, align", [(150, 64, 32, 4), (1000, 512, 64, 32), (97, 40, 8, 8)])
def test_tile_windows_are_aligned_to_the_network_stride(length, tile, overlap, align):
    from segfit.tiling import tile_windows

    windows = tile_windows(length, tile, overlap, align)
    assert windows[0][0] == 0 and windows[-1][1] == length
    assert all(start % align == 0 for start, _ in windows)
    assert all(a_stop - b_start >= overlap for (_, a_stop), (b_start, _) in zip(windows, windows[1:]))
    assert all(stop - start <= tile + align - 1 for start, stop in windows)


def test_tiles_are_normalised_like_the_whole_image():
    # A pixel-wise network: tiled and whole-image logits must then be equal, which holds only if each
    # tile is scaled and normalised (ImageNet mean/std) exactly as the whole image is.
    torch.manual_seed(2)
    cfg = RunConfig()
    cfg.data.channels, cfg.data.num_classes = 3, 3
    cfg.data.mean, cfg.data.std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    resolve_data(cfg.data)
    net = torch.nn.Conv2d(3, 3, 1)
    predictor = Predictor(TorchBackend(net, cfg, "cpu"), auto_tile=0)
    image = (np.random.default_rng(4).random((90, 75, 3)) * 255).astype(np.uint8)
    whole = predictor.predict(image)
    predictor.tile, predictor.overlap = 32, 8
    tiled = predictor.predict(image)
    assert len(np.unique(whole)) > 1 and (whole == tiled).all()
    with torch.inference_mode():
        expected = net(predictor.prepare(image)[None]).argmax(1)[0].numpy()
    assert (tiled == expected).all()
