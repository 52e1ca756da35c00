"""Benchmark: particles you can count. Train `segfit train EMPS --time 20m` (no other flag), then score the
test split's objects at the images' original resolution two ways, side by side: the model's own instances
(learned distance map + seeded watershed) and the post-hoc watershed of its class map (--split-touching
--min-area 20, the previous bench's setting).
One JSON line.

Usage: python bench/emps_objects.py [--emps DIR] [--time 20m] [--run RUN (reuse a trained run)] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = {"f1": 0.75, "f1_per_image": 0.75, "abs_count_error_pct": 5.0, "abs_mean_diameter_error_pct": 2.0,
           "diameter_wasserstein_px": 3.0, "pixel_iou": 0.787}


def figures(metrics: dict, seconds: float) -> dict:
    inst = metrics["instances"]
    true_d, pred_d = inst["mean_diameter_true"], inst["mean_diameter_pred"]
    return {"objects": inst["predicted_objects"], "pixel_iou": round(metrics["iou"], 4),
            "f1": round(inst["f1"], 4), "f1_per_image": round(inst["mean_f1_per_image"], 4),
            "precision": round(inst["precision"], 4), "recall": round(inst["recall"], 4),
            "ap50": round(inst["ap50"], 4), "map_50_95": round(inst["map"], 4),
            "count_true": inst["count_true"], "count_pred": inst["count_pred"],
            "count_error_pct": round(100 * inst["count_error_fraction"], 2),
            "mean_diameter_true_px": round(true_d, 2), "mean_diameter_pred_px": round(pred_d, 2),
            "mean_diameter_error_pct": round(100 * (pred_d - true_d) / true_d, 2),
            "diameter_wasserstein_px": round(inst["diameter_wasserstein"], 3), "evaluate_s": round(seconds, 1)}


def met(f: dict) -> dict:
    return {"f1": f["f1"] >= TARGETS["f1"], "f1_per_image": f["f1_per_image"] >= TARGETS["f1_per_image"],
            "count": abs(f["count_error_pct"]) <= TARGETS["abs_count_error_pct"],
            "mean_diameter": abs(f["mean_diameter_error_pct"]) <= TARGETS["abs_mean_diameter_error_pct"],
            "wasserstein": f["diameter_wasserstein_px"] <= TARGETS["diameter_wasserstein_px"],
            "pixel_iou": f["pixel_iou"] >= TARGETS["pixel_iou"]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--emps", default=str(HERE.parent.parent / "shared" / "data" / "emps"))
    p.add_argument("--time", default="20m")
    p.add_argument("--run", help="score this trained run instead of training one")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    out = Path(a.out or tempfile.mkdtemp(prefix="segfit-objects-"))
    out.mkdir(parents=True, exist_ok=True)
    train_s = None
    run = Path(a.run) if a.run else out / f"emps-{a.time}"
    if not a.run:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "segfit", "train", a.emps, "--out", str(run), "--time", a.time],
                              capture_output=True, text=True)
        train_s = time.perf_counter() - start
        if proc.returncode != 0:
            print(json.dumps({"bench": "emps_objects", "error": proc.stderr.strip()[-400:]}))
            sys.exit(1)
    import segfit

    results = {}
    plan = json.loads((run / "plan.json").read_text())
    ways = [("model_instances", {}), ("posthoc_watershed", {"model_instances": False, "split_touching": True, "min_area": 20})]
    if plan["entries"].get("tta", {}).get("value"):  # the plan averages test-time variants: one pass beside it
        ways.insert(1, ("model_instances_one_pass", {"tta": False}))
    for name, options in ways:
        start = time.perf_counter()
        metrics = segfit.evaluate(run, split="test", instances=True, overlays=False, verbose=False, report=False,
                                  out=out / f"eval_{name}", **options)
        results[name] = figures(metrics, time.perf_counter() - start)
        results[name]["targets_met"] = met(results[name])
    chosen = {k: e["value"] for k, e in plan["entries"].items()
              if k in ("instances", "encoder", "encoder_depth", "scale", "crop", "batch_size", "epochs", "loss", "tta")}
    print(json.dumps({"bench": "emps_objects", "time": a.time, "train_wall_s": round(train_s, 1) if train_s else None,
                      "plan": chosen, "targets": TARGETS, **results, "run": str(run)}))


if __name__ == "__main__":
    main()
