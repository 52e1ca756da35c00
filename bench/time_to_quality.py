"""Benchmark: wall-clock time for segfit's recipe for small microscopy sets to reach the Keras
reference's 50-epoch test IoU on EMPS (0.6645, ../shared/bench/REFERENCE.md).

The recipe: a small U-Net (resnet18 encoder, depth 3, decoder 64/32/16), 128x128 grayscale,
AdamW + one-cycle, light augmentation, bf16-mixed where the CPU has native bf16 (else 32-bit).
Every epoch is checkpointed; each checkpoint is evaluated on the test split (not counted in the
training time) and the first epoch at or above the target gives the time to quality.

Usage: python bench/time_to_quality.py [EMPS_DIR] [--epochs 20] [--target 0.6645] [--keras-seconds S]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

import segfit

HERE = Path(__file__).resolve().parent
RECIPE = dict(model="unet", encoder="resnet18", encoder_depth=3, decoder_channels=[64, 32, 16], channels=1, size=128,
              batch_size=16, lr=3e-3, optimizer="adamw", weight_decay=1e-4, scheduler="onecycle", augment="light")


def bf16_native() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        return False


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("data", nargs="?", default=str(HERE.parent.parent / "shared" / "data" / "emps"))
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--target", type=float, default=0.6645)
    p.add_argument("--keras-seconds", type=float, default=1746.0, help="the Keras reference's 50-epoch wall-clock time")
    p.add_argument("--precision", default="auto")
    a = p.parse_args()
    precision = a.precision if a.precision != "auto" else ("bf16-mixed" if bf16_native() else "32")
    out = Path(tempfile.mkdtemp(prefix="segfit-ttq-")) / "run"
    start = time.perf_counter()
    run = segfit.train(a.data, out, epochs=a.epochs, val=100, seed=0, preload=True, verbose=False, save_every=1, report=False,
                       precision=precision, **RECIPE)
    wall = time.perf_counter() - start
    setup = wall - float(run.history["seconds"].sum())  # reading data, building the model
    elapsed, reached, curve = setup, None, []
    budget_iou = None
    for _, row in run.history.iterrows():
        epoch = int(row["epoch"])
        elapsed += float(row["seconds"])
        m = segfit.evaluate(out / "checkpoints" / f"epoch_{epoch}.ckpt", split="test", size=128, verbose=False,
                            overlays=False, out=out / f"eval_{epoch}")
        curve.append({"epoch": epoch, "seconds": round(elapsed, 1), "test_iou": round(m["iou"], 4)})
        if reached is None and m["iou"] >= a.target:
            reached = curve[-1]
        if elapsed <= a.keras_seconds:
            budget_iou = m["iou"]
    print(json.dumps({
        "bench": "time_to_quality", "recipe": RECIPE, "precision": precision, "target_test_iou": a.target,
        "reached": reached, "seconds_to_target": reached["seconds"] if reached else None,
        "keras_50_epoch_seconds": a.keras_seconds,
        "fraction_of_keras_time": round(reached["seconds"] / a.keras_seconds, 3) if reached else None,
        "test_iou_within_keras_time": round(budget_iou, 4) if budget_iou is not None else None,
        "curve": curve,
    }))


if __name__ == "__main__":
    main()
