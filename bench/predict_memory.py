"""Benchmark: peak memory of `segfit predict` (the command line, overlay included) on one large image.

A resnet34 U-Net (3 classes, trained for one short epoch on synthetic scenes, 256-pixel crops) predicts
one SIZE x SIZE RGB image through the CLI in a process of its own that reports its own peak RSS: once
as a single model, and once as an ensemble of MEMBERS copies with ``--tta`` and ``--uncertainty``.
Issue 13's target: below 2 GB for an 8192 x 8192 image in both cases. Prints one JSON line.

Usage: python bench/predict_memory.py [--size 8192] [--members 5] [--out DIR] [--skip-ensemble] [--reuse-forward]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# The command line in a process that reports its own peak RSS (kB) last on stderr.
_PEAK = """
import os, resource, sys
from segfit.cli import main
if os.environ.get("SEGFIT_BENCH_REUSE_FORWARD"):
    # Memory, not speed: each network runs for real once per batch shape; later batches of that shape get a
    # copy of its output (the same allocations as a real pass; the activations peak in every pass alike).
    from segfit.backends import TorchBackend
    real = TorchBackend.logits
    def logits(self, batch):
        cache = self.__dict__.setdefault("_bench_cache", {})
        if batch.shape not in cache:
            cache[batch.shape] = real(self, batch)
        return cache[batch.shape].clone()
    TorchBackend.logits = logits
try:
    code = main(sys.argv[1:])
finally:  # VmHWM: this process's own peak (ru_maxrss starts from the parent's size at the fork)
    hwm = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")]
    print("peak_rss_kb", hwm[0] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def train_model(folder: Path) -> Path:
    """The run folder (reused when ``folder`` already holds one from an earlier call)."""
    import segfit
    from segfit.data.synthetic import make_scenes

    if (folder / "run" / "checkpoints" / "best.ckpt").is_file():
        return folder / "run"

    data = make_scenes(folder / "data", n=12, size=256, seed=0)
    run = segfit.train(data, folder / "run", model="unet", encoder="resnet34", classes=3, epochs=1, batch_size=4,
                       lr=1e-3, crop=256, preload=True, verbose=False, val=2, test=0.0, report=False)
    return run.run_dir


def large_image(path: Path, size: int) -> Path:
    from PIL import Image

    if path.is_file():
        return path
    rng = np.random.default_rng(size)
    small = rng.integers(0, 256, (size // 64 + 1, size // 64 + 1, 3), dtype=np.uint8)
    Image.fromarray(np.kron(small, np.ones((64, 64, 1), np.uint8))[:size, :size]).save(path)
    return path


def peak_predict(model: Path, image: Path, out: Path, *extra: str, reuse: bool = False) -> dict:
    start = time.perf_counter()
    env = {**os.environ, **({"SEGFIT_BENCH_REUSE_FORWARD": "1"} if reuse else {})}
    proc = subprocess.run([sys.executable, "-c", _PEAK, "predict", str(model), str(image), "--out", str(out), *extra],
                          capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-600:])
    peak_mb = float(proc.stderr.strip().splitlines()[-1].split()[-1]) / 1024
    return {"peak_rss_mb": round(peak_mb), "seconds": round(seconds, 1), "flags": list(extra),
            "forward": "once per batch shape, then reused (memory only)" if reuse else "every tile"}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=8192)
    p.add_argument("--members", type=int, default=5)
    p.add_argument("--out", default=None)
    p.add_argument("--skip-ensemble", action="store_true")
    p.add_argument("--skip-single", action="store_true")
    p.add_argument("--reuse-forward", action="store_true",
                   help="run each network once per batch shape and reuse its output (peak memory in minutes, "
                        "not hours, on a CPU: 5 members x TTA of 8192^2 is ~100 full passes of a resnet34)")
    args = p.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="segfit-predmem-"))
    root.mkdir(parents=True, exist_ok=True)
    run = train_model(root)
    image = large_image(root / "large.png", args.size)
    result = {"bench": "predict_memory", "size": args.size, "model": "unet-resnet34, 3 classes, crop 256",
              "target_mb": 2048}
    if not args.skip_single:
        result["single"] = peak_predict(run, image, root / "pred_single", "--no-tta", reuse=args.reuse_forward)  # one pass
        print(json.dumps(result), file=sys.stderr)  # the first figure, in case the second run fails
    if not args.skip_ensemble:
        ensemble = root / "ensemble"
        ensemble.mkdir(exist_ok=True)
        best = str((run / "checkpoints" / "best.ckpt").resolve())
        (ensemble / "ensemble.json").write_text(json.dumps({"members": [best] * args.members}))
        result["ensemble_tta"] = {"members": args.members,
                                  **peak_predict(ensemble, image, root / "pred_ensemble", "--tta", "--uncertainty",
                                                reuse=args.reuse_forward)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
