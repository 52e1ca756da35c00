"""Benchmark: prediction of large images with a resnet34 U-Net, and ONNX vs eager PyTorch.

Prints one JSON line: megapixels/s and peak RSS (each size in its own process) for 2048x2048 and
8192x8192 RGB images predicted with tiles (512, overlap 64); the tiling overhead (time beyond the
forward passes); tiled vs whole-image agreement at 2048x2048; onnxruntime vs eager images/s at
512x512 and their mask agreement.

Usage: python bench/predict_speed.py [--sizes 2048,8192] [--tile 512] [--overlap 64]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch


def train_model(folder: Path) -> Path:
    """A briefly trained resnet34 U-Net (random init has no meaningful BatchNorm statistics)."""
    import segfit
    from segfit.data.synthetic import make_scenes

    data = make_scenes(folder / "data", n=16, size=128, seed=0)
    run = segfit.train(data, folder / "run", model="unet", encoder="resnet34", classes=3, epochs=3, batch_size=4,
                       lr=1e-3, crop=128, preload=True, verbose=False, val=4, test=0.0, report=False)
    return run.best_checkpoint


def make_predictor(tile: int | None, overlap: int, checkpoint: str | None = None):
    from segfit.config import ModelConfig, RunConfig
    from segfit.backends import TorchBackend
    from segfit.models import create_model
    from segfit.options import resolve_data
    from segfit.predictor import Predictor

    if checkpoint:
        return Predictor.from_checkpoint(checkpoint, device="cpu", tile=tile, overlap=overlap, auto_tile=0, tta=False)
    torch.manual_seed(0)
    cfg = RunConfig()
    cfg.data.channels, cfg.data.num_classes, cfg.data.crop = 3, 3, 256
    resolve_data(cfg.data)
    cfg.model = ModelConfig(name="unet", encoder="resnet34", in_channels=3, num_classes=3)
    backend = TorchBackend(create_model(cfg.model), cfg, "cpu")
    return Predictor(backend, tile=tile, overlap=overlap, auto_tile=0)


def image(size: int) -> np.ndarray:
    rng = np.random.default_rng(size)
    small = rng.integers(0, 256, (size // 64 + 1, size // 64 + 1, 3), dtype=np.uint8)
    return np.kron(small, np.ones((64, 64, 1), np.uint8))[:size, :size]


def one_size(size: int, tile: int, overlap: int, checkpoint: str | None) -> dict:
    """Runs in its own process so that its peak RSS is its own."""
    predictor = make_predictor(tile, overlap, checkpoint)
    forward_s = 0.0
    inner = predictor.logits

    def timed(batch, out_size=None):
        nonlocal forward_s
        t = time.perf_counter()
        out = inner(batch, out_size)
        forward_s += time.perf_counter() - t
        return out

    predictor.logits = timed
    img = image(size)
    t = time.perf_counter()
    mask = predictor.predict(img)
    total = time.perf_counter() - t
    out = {"size": size, "seconds": round(total, 2), "mpix_per_s": round(size * size / 1e6 / total, 3),
           "forward_seconds": round(forward_s, 2), "tiling_overhead": round((total - forward_s) / forward_s, 3),
           "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2)}
    if size <= 2048:
        predictor.logits, predictor.tile = inner, None
        whole = predictor.predict(img)
        out["tiled_vs_whole_agreement"] = round(float((whole == mask).mean()), 5)
    return out


def onnx_vs_eager(side: int = 512, repeats: int = 3) -> dict:
    from segfit.backends import OnnxBackend

    predictor = make_predictor(None, 64)
    backend = predictor.backend
    net = backend.net
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        torch.onnx.export(net.net.eval(), (torch.zeros(1, 3, side, side),), str(path), input_names=["image"],
                          output_names=["logits"], opset_version=18, dynamo=False)
        Path(f"{path}.json").write_text(json.dumps({"config": backend.config.to_dict(), "multiple": backend.multiple}))
        onnx = OnnxBackend(path).logits
        x = torch.rand(1, 3, side, side)
        with torch.inference_mode():
            net(x), onnx(x)
            t = time.perf_counter()
            for _ in range(repeats):
                a = net(x)
            eager = (time.perf_counter() - t) / repeats
            t = time.perf_counter()
            for _ in range(repeats):
                b = onnx(x)
            ort = (time.perf_counter() - t) / repeats
    agree = float((a.argmax(1) == b.argmax(1)).float().mean())
    return {"side": side, "eager_img_per_s": round(1 / eager, 3), "onnx_img_per_s": round(1 / ort, 3),
            "onnx_speedup": round(eager / ort, 2), "mask_agreement": round(agree, 5)}


def main() -> None:
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="2048,8192")
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--overlap", type=int, default=64)
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)
    p.add_argument("--checkpoint", help="model to use (default: a resnet34 U-Net trained 3 epochs on synthetic scenes)")
    a = p.parse_args()
    if a.one:
        print(json.dumps(one_size(a.one, a.tile, a.overlap, a.checkpoint)))
        return
    tmp = tempfile.TemporaryDirectory(prefix="segfit-predict-bench-")
    checkpoint = a.checkpoint or str(train_model(Path(tmp.name)))
    results = []
    for size in (int(s) for s in a.sizes.split(",")):
        proc = subprocess.run([sys.executable, __file__, "--one", str(size), "--tile", str(a.tile),
                               "--overlap", str(a.overlap), "--checkpoint", checkpoint], capture_output=True, text=True)
        lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
        results.append(json.loads(lines[-1]) if lines else {"size": size, "error": proc.stderr.strip()[-300:]})
    print(json.dumps({"bench": "predict_speed", "model": "unet-resnet34", "tile": a.tile, "overlap": a.overlap,
                      "images": results, "onnx": onnx_vs_eager()}))


if __name__ == "__main__":
    main()
