"""Benchmark: training speed of the notebook model on EMPS, segfit vs the seed notebook's Keras model.

Same network, same work: EMPS official split (266 train + 100 validation), grayscale 128x128,
batch 32. Prints one JSON line: images/s and seconds per epoch for segfit (and for the Keras
reference when a Python with tensorflow is found: --keras-python, $SEGFIT_KERAS_PYTHON, or this
one), the model's FLOPs per image, the machine's measured matrix-multiply FLOP/s and the fraction
of it that training achieves.

Usage: python bench/train_speed.py [EMPS_DIR] [--epochs 3] [--precision 32|bf16-mixed] [--keras-python PY]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import torch

import segfit

HERE = Path(__file__).resolve().parent


def matmul_flops(n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.rand(n, n), torch.rand(n, n)
    for _ in range(2):
        a @ b
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - t)


def forward_flops(size: int = 128) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    from segfit.nets import NotebookNet

    with FlopCounterMode(display=False) as counter:
        NotebookNet(1, 1)(torch.zeros(1, 1, size, size))
    return int(counter.get_total_flops())


def keras_python(given: str | None) -> str | None:
    for candidate in (given, os.environ.get("SEGFIT_KERAS_PYTHON")):
        if candidate:
            return candidate
    return "python" if importlib.util.find_spec("tensorflow") else None


def run_keras(python: str, data: str, epochs: int) -> dict:
    script = HERE.parent.parent / "shared" / "bench" / "ref_keras_notebook.py"
    proc = subprocess.run([python, str(script), data, str(epochs), "32"], capture_output=True, text=True)
    line = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode or not line:
        return {"skipped": f"the Keras reference failed: {proc.stderr.strip().splitlines()[-1:]}"}
    ref = json.loads(line[-1])
    seconds = sorted(ref["epoch_seconds"][1:] or ref["epoch_seconds"])
    median = seconds[len(seconds) // 2]
    return {"s_per_epoch_median": median, "img_per_s": round(ref["train_images"] / median, 2), "epoch_seconds": ref["epoch_seconds"]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("data", nargs="?", default=str(HERE.parent.parent / "shared" / "data" / "emps"))
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--precision", default="32")
    p.add_argument("--keras-python")
    a = p.parse_args()
    out = Path(tempfile.mkdtemp(prefix="segfit-speed-")) / "run"
    run = segfit.train(a.data, out, model="notebook", channels=1, size=128, epochs=a.epochs, batch_size=32, lr=1e-3,
                       val=100, seed=0, preload=True, verbose=False, precision=a.precision, report=False)
    h = run.history
    steady = h["seconds"][1:] if len(h) > 1 else h["seconds"]  # the first epoch warms up
    n_train = len(json.loads((run.run_dir / "split.json").read_text())["train"])
    median = float(steady.median())
    flops = forward_flops()
    machine = matmul_flops()
    img_s = n_train / median
    result = {
        "bench": "train_speed", "precision": a.precision, "epochs": a.epochs,
        "segfit": {"s_per_epoch_median": round(median, 2), "img_per_s": round(img_s, 2),
                   "data_wait_fraction": round(float((h["data_seconds"][1:] / h["seconds"][1:]).max()) if len(h) > 1 else 0.0, 4)},
        "forward_gflops_per_image": round(flops / 1e9, 3),
        "train_gflops_per_image": round(3 * flops / 1e9, 3),
        "machine_matmul_gflops": round(machine / 1e9, 1),
        "achieved_fraction_of_matmul": round(img_s * 3 * flops / machine, 3),
    }
    python = keras_python(a.keras_python)
    if python is None:
        result["keras"] = {"skipped": "no Python with tensorflow (give --keras-python or $SEGFIT_KERAS_PYTHON)"}
    else:
        result["keras"] = run_keras(python, a.data, a.epochs + 1)
        if "img_per_s" in result["keras"]:
            result["speedup_vs_keras"] = round(img_s / result["keras"]["img_per_s"], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
