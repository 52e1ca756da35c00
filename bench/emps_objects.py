"""Benchmark: particles on the EMPS test split, predicted vs true (count, mean equivalent diameter,
instance precision / recall / F1 at IoU >= 0.5), at the images' original resolution.

Scores a trained run (--run), or first trains segfit's recipe for small microscopy sets at --size.
The truth is EMPS' own instance maps (each particle its own value); predicted particles are the
connected components of the predicted foreground, without and with the watershed split of
touching particles (--min-distance, --min-area). Prints one JSON line.

Usage: python bench/emps_objects.py [EMPS_DIR] [--run RUN | --size 256 --epochs 25] [--min-area 20]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import segfit

HERE = Path(__file__).resolve().parent
KEYS = ("count_true", "count_pred", "count_error", "mean_diameter_true", "mean_diameter_pred", "diameter_error",
        "precision", "recall", "f1", "mean_f1_per_image", "mean_abs_count_error_per_image")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("data", nargs="?", default=str(HERE.parent.parent / "shared" / "data" / "emps"))
    p.add_argument("--run", help="a trained run folder (default: train the recipe first)")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--min-area", type=int, default=20)
    p.add_argument("--min-distance", type=int, nargs="+", default=[5, 10])
    p.add_argument("--precision", default="bf16-mixed")
    a = p.parse_args()
    result: dict = {"bench": "emps_objects"}
    run = Path(a.run) if a.run else None
    if run is None:
        run = Path(tempfile.mkdtemp(prefix="segfit-objects-")) / "run"
        start = time.perf_counter()
        segfit.train(a.data, run, model="unet", encoder="resnet18", encoder_depth=4, decoder_channels=[128, 64, 32, 16],
                     channels=1, size=a.size, batch_size=8, lr=2e-3, optimizer="adamw", weight_decay=1e-4,
                     scheduler="onecycle", augment="light", epochs=a.epochs, val=100, seed=0, preload=True,
                     precision=a.precision, verbose=False, report=False)
        result["train_seconds"] = round(time.perf_counter() - start, 1)
    result["run"] = str(run)
    settings = [("components", dict(split_touching=False, min_area=a.min_area))]
    settings += [(f"split_min_distance_{d}", dict(split_touching=True, min_distance=d, min_area=a.min_area))
                 for d in a.min_distance]
    for label, options in settings:
        m = segfit.evaluate(run, a.data, split="test", instances=True, overlays=False, verbose=False, report=False,
                            out=run / f"objects_{label}", **options)
        inst = m["instances"]
        result[label] = {"test_iou": round(m["iou"], 4), **{k: round(inst[k], 4) if isinstance(inst[k], float) else inst[k]
                                                            for k in KEYS}}
    result["images"] = m["images"]
    result["unit"] = "px (original resolution)"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
