"""Sliding-window prediction: geometry for awkward sizes, and agreement with whole-image prediction."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from segfit.config import ModelConfig, RunConfig
from segfit.backends import TorchBackend
from segfit.models import create_model
from segfit.options import resolve_data
from segfit.predictor import Predictor
from segfit.tiling import gaussian_weight, predict_tiled, resized_rows, tile_starts, tiled_rows


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


def test_tiled_rows_arrive_top_to_bottom_holding_only_a_band_of_rows():
    net = torch.nn.Conv2d(3, 2, 1)
    image = torch.rand(3, 300, 40)
    seen, held = [], []
    with torch.inference_mode():
        whole = net(image[None])[0]
        for y0, rows in tiled_rows(image, net, tile=32, overlap=8):
            seen.append((y0, y0 + rows.shape[1]))
            held.append(rows.shape[1])
            assert torch.allclose(rows, whole[:, y0: y0 + rows.shape[1]], atol=1e-5)
    assert seen[0][0] == 0 and seen[-1][1] == 300
    assert all(a_stop == b_start for (_, a_stop), (b_start, _) in zip(seen, seen[1:]))
    assert max(held) <= 32 < 300


@pytest.mark.parametrize("in_size, out_size", [((100, 77), (37, 210)), ((100, 77), (250, 50)), ((100, 77), (100, 120)),
                                               ((100, 77), (33, 77)), ((100, 77), (100, 77)), ((60, 3), (301, 2))])
@pytest.mark.parametrize("pixels", [64, 1 << 20])
def test_resizing_bands_of_rows_equals_resizing_the_whole_map(in_size, out_size, pixels):
    # Bands of uneven heights (one a single row), resized a block of output rows at a time, must give what
    # one bilinear interpolation of the whole map gives.
    torch.manual_seed(0)
    x = torch.randn(2, *in_size)
    cuts = [0, 13, 14, 40, 41, in_size[0]]
    bands = [(a, x[:, a:b]) for a, b in zip(cuts, cuts[1:])]
    blocks = list(resized_rows(iter(bands), in_size, out_size, pixels=pixels))
    assert [a for a, _ in blocks] == sorted(a for a, _ in blocks) and blocks[0][0] == 0
    got = torch.cat([b for _, b in blocks], 1)
    expected = torch.nn.functional.interpolate(x[None], size=out_size, mode="bilinear", align_corners=False)[0]
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-4)


def test_png_writer_round_trips_and_leaves_the_array_as_it_was(tmp_path):
    from PIL import Image

    from segfit.io import write_png

    rgb = np.random.default_rng(0).integers(0, 256, (70, 50, 3), dtype=np.uint8)
    before = rgb.copy()
    write_png(tmp_path / "rgb.png", rgb)  # channels swapped in place for the encoder, and back
    assert (rgb == before).all() and (np.asarray(Image.open(tmp_path / "rgb.png")) == before).all()
    frozen = before.copy()
    frozen.flags.writeable = False
    write_png(tmp_path / "frozen.png", frozen)
    assert (np.asarray(Image.open(tmp_path / "frozen.png")) == before).all()
    labels = np.arange(70 * 50, dtype=np.uint16).reshape(70, 50) * 17
    write_png(tmp_path / "labels.png", labels)
    assert (np.asarray(Image.open(tmp_path / "labels.png")) == labels).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frozen.png", "labels.png", "rgb.png"]


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
    predictor.config.data.crop = None  # trained on whole images of a size it did not record (512 assumed)
    assert predictor.tile_for(1000, 1000) is None and predictor.tile_for(2000, 2000) == 1024  # not whole above 1024
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


def test_a_model_trained_in_bf16_infers_in_bf16_where_the_device_has_it(monkeypatch):
    """--precision bf16-mixed training: inference in bf16 on a device with native bf16 (about twice as fast on
    such a CPU), float32 elsewhere, for a float32-trained model, and always for precision="32" (what an export
    computes). The logits come back as float32 either way."""
    import segfit.fingerprint as fingerprint

    torch.manual_seed(0)
    cfg = RunConfig()
    cfg.data.channels = 1
    resolve_data(cfg.data)
    cfg.model = ModelConfig(name="unet", encoder="resnet18", encoder_depth=3, decoder_channels=[16, 8, 8],
                            in_channels=1, num_classes=2)
    net = create_model(cfg.model)
    x = torch.rand(1, 1, 32, 32)
    for native in (True, False):
        monkeypatch.setattr(fingerprint, "native_bf16", lambda device, native=native: native)
        cfg.train.precision = "bf16-mixed"
        auto, fp32 = TorchBackend(net, cfg, "cpu"), TorchBackend(net, cfg, "cpu", precision="32")
        assert (auto.bf16, auto.precision, fp32.bf16) == (native, "bf16" if native else "32", False)
        cfg.train.precision = "32"
        assert not TorchBackend(net, cfg, "cpu").bf16 and TorchBackend(net, cfg, "cpu", precision="bf16").bf16
    with torch.inference_mode():
        want = net.eval()(x)
    forced = TorchBackend(net, cfg, "cpu", precision="bf16")
    got = forced.logits(x)
    assert got.dtype == torch.float32 and not torch.equal(got, want)  # computed in bf16: close, not equal
    assert torch.allclose(got, want, atol=0.1 * float(want.abs().max()) + 1e-3)
    assert torch.equal(TorchBackend(net, cfg, "cpu", precision="32").logits(x), want)
    assert Predictor(forced).precision == "bf16" and Predictor(forced, tta=True).precision == "bf16"
    assert Predictor(TorchBackend(net, cfg, "cpu")).record()["precision"] == "32"
    with pytest.raises(ValueError, match="unknown inference precision"):
        TorchBackend(net, cfg, "cpu", precision="16")


def test_predict_and_evaluate_take_the_precision_from_the_command_line(trained_run, particles_dir, tmp_path):
    """`--precision bf16` runs a float32-trained model in bf16, `--precision 32` keeps float32; the record says
    which, and an unknown precision is an argument error."""
    from _segfit_cli import run_many

    images = sorted((particles_dir / "images").iterdir())[:2]
    cases = [["predict", trained_run, *images, "--out", tmp_path / p, "--precision", p] for p in ("bf16", "32")]
    cases.append(["evaluate", trained_run, "--precision", "bf16", "--no-overlays", "--out", tmp_path / "eval"])
    cases.append(["predict", trained_run, images[0], "--out", tmp_path / "bad", "--precision", "16"])
    *ok, bad = run_many(cases, tmp_path)
    for proc in ok:
        assert proc.returncode == 0, proc.stderr
    assert [json.loads((tmp_path / p / "predictions.json").read_text())["precision"] for p in ("bf16", "32")] == ["bf16", "32"]
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["precision"] == "bf16"
    assert bad.returncode == 2 and "invalid choice: '16'" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "bad").exists()
