"""Benchmark: the seed notebook's model on EMPS with the notebook's protocol.

Official split (train.csv -> 266 train + 100 validation with seed 0, as the Keras reference;
test.csv -> 99 test), grayscale 128x128, batch 32, Adam 1e-3, BCE, best checkpoint on validation
loss, threshold 0.5, metrics averaged per image at 128x128. Prints one JSON line.

Usage: python bench/emps_notebook.py [EMPS_DIR] [EPOCHS] [--out RUN]
Compare with ../shared/bench/REFERENCE.md (Keras: test IoU 0.6645, about 10 training images/s).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

import segfit


def main() -> None:
    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser()
    p.add_argument("data", nargs="?", default=str(here.parent.parent / "shared" / "data" / "emps"))
    p.add_argument("epochs", nargs="?", type=int, default=50)
    p.add_argument("--out", default=None)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--precision", default="32", help="32 (as the notebook) or bf16-mixed (CPUs with AVX512-BF16/AMX)")
    a = p.parse_args()
    out = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="segfit-emps-")) / "run"
    start = time.perf_counter()
    run = segfit.train(a.data, out, model="notebook", channels=1, size=128, epochs=a.epochs, batch_size=a.batch_size,
                       lr=1e-3, val=100, seed=0, preload=True, verbose=False, overwrite=True,
                       precision=a.precision, report=False)
    wall = time.perf_counter() - start
    metrics = segfit.evaluate(run.run_dir, split="test", size=128, verbose=False)
    epoch_s = run.history["seconds"]
    n_train = len(json.loads((run.run_dir / "split.json").read_text())["train"])
    print(json.dumps({
        "system": "segfit", "model": "notebook", "epochs": a.epochs, "batch": a.batch_size, "precision": a.precision,
        "best_epoch": run.best_epoch, "train_images": n_train,
        "test_iou": round(metrics["iou"], 4), "test_dice": round(metrics["dice"], 4),
        "test_acc": round(metrics["accuracy"], 4),
        "s_per_epoch": round(float(epoch_s.mean()), 2), "s_per_epoch_median": round(float(epoch_s.median()), 2),
        "train_img_per_s": round(n_train / float(epoch_s.median()), 2),
        "wall_s": round(wall, 1), "torch_threads": torch.get_num_threads(), "run": str(run.run_dir),
    }))


if __name__ == "__main__":
    sys.exit(main())
