"""Benchmark: `segfit train DATA --time T` with no other flag, per data set: the plan, the wall time of the
whole command and the test metrics at the images' original resolution. One JSON line per data set.

Usage: python bench/auto_config.py [--emps DIR] [--times 5m,10m] [--synthetic] [--out DIR] [--flags '--precision 32']
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


def run_one(name: str, data: Path, budget: str, out: Path, flags: tuple[str, ...] = ()) -> dict:
    run = out / f"{name}-{budget}{''.join(flags).replace('-', '_')}"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "segfit", "train", str(data), "--out", str(run), "--time", budget, *flags],
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        return {"bench": "auto_config", "data": name, "time": budget, "error": proc.stderr.strip()[-400:]}
    import segfit
    from segfit.budget import parse_duration
    from segfit.errors import SegfitError

    split = "test"
    try:
        metrics = segfit.evaluate(run, split=split, overlays=False, verbose=False, report=False)
    except SegfitError:  # too few images for a test split (one huge image): score the validation images
        split = "val"
        metrics = segfit.evaluate(run, split=split, overlays=False, verbose=False, report=False)
    one_pass = None
    if len(metrics.get("tta") or []) > 1:  # the plan averages test-time variants: the one-pass figure beside it
        one_pass = segfit.evaluate(run, split=split, overlays=False, verbose=False, report=False, tta=False,
                                   out=run / f"eval_{split}_one_pass")["iou"]
    plan = json.loads((run / "plan.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    chosen = {k: e["value"] for k, e in plan["entries"].items()
              if k in ("model", "encoder", "encoder_depth", "scale", "crop", "batch_size", "loss", "augment",
                       "precision", "epochs", "channels", "val", "tta")}
    return {"bench": "auto_config", "data": name, "time": budget, **({"flags": " ".join(flags)} if flags else {}), "wall_s": round(wall, 1),
            "within_budget": round(wall / parse_duration(budget), 3), "plan": chosen,
            "best_epoch": summary["best_epoch"], "scored": split, "test_iou": round(metrics["iou"], 4), "test_dice": round(metrics["dice"], 4),
            "test_miou": round(metrics["miou"], 4), "tta_variants": len(metrics.get("tta") or [1]),
            "test_iou_one_pass": round(one_pass, 4) if one_pass is not None else None, "warnings": metrics.get("warnings", []), "run": str(run)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--emps", default=str(HERE.parent.parent / "shared" / "data" / "emps"))
    p.add_argument("--times", default="5m,10m")
    p.add_argument("--synthetic", action="store_true", help="also the synthetic stress sets (1 minute each)")
    p.add_argument("--only-synthetic", action="store_true", help="the synthetic stress sets, not EMPS")
    p.add_argument("--out", default=None)
    p.add_argument("--sets", default=None, help="only these synthetic sets (comma-separated names)")
    p.add_argument("--flags", default="", help="flags added to every train command, e.g. '--precision 32' (default: none)")
    a = p.parse_args()
    out = Path(a.out or tempfile.mkdtemp(prefix="segfit-auto-"))
    out.mkdir(parents=True, exist_ok=True)
    if a.emps and Path(a.emps).is_dir() and not a.only_synthetic:
        for budget in a.times.split(","):
            print(json.dumps(run_one("emps", Path(a.emps), budget, out, tuple(a.flags.split()))), flush=True)
    if a.synthetic or a.only_synthetic:
        from stress_sets import make_all

        for name, data in make_all(out / "data").items():
            if a.sets and name not in a.sets.split(","):
                continue
            print(json.dumps(run_one(name, data, "60s", out, tuple(a.flags.split()))), flush=True)


if __name__ == "__main__":
    main()
