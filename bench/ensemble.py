"""Benchmark: trust. On the EMPS test split (original resolution), with the same total `--time`: a single planned
model vs its test-time augmentation vs a K-fold ensemble vs the ensemble with TTA — test IoU, instance F1 (when the
models learn instances), training wall time, prediction seconds per megapixel, peak RSS of `segfit predict`; the
Spearman correlation between per-image uncertainty and per-image error; and whether corrupted images (heavy noise,
wrong contrast, a photo of something else) are flagged for review. One member alone (with TTA) parts the ensemble's
gain in two (``why``): what averaging adds over a member, and what a member loses by training on 1/K of the budget.
One JSON line. Runs already in ``--out`` (a bench cut short) are scored, not trained again.

Usage: python bench/ensemble.py [--emps DIR] [--time 10m] [--folds 5] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _train(data: str, run: Path, budget: str, folds: int | None) -> float | None:
    if (run / ("ensemble.json" if folds else "summary.json")).is_file():
        return None  # trained by an earlier bench run in the same --out
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "segfit", "train", data, "--out", str(run), "--time", budget]
    proc = subprocess.run(cmd + (["--folds", str(folds)] if folds else []), capture_output=True, text=True)
    if proc.returncode != 0:
        print(json.dumps({"bench": "ensemble", "error": proc.stderr.strip()[-400:]}))
        sys.exit(1)
    return round(time.perf_counter() - start, 1)


def _corrupted(emps: Path, out: Path, names: list[str]) -> Path:
    """Test images made untrustworthy: heavy noise, inverted and flattened contrast, and a photo of something else."""
    from PIL import Image

    from segfit.data.synthetic import make_scenes

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        image = np.asarray(Image.open(emps / "images" / f"{name}.png").convert("L"), np.float32)
        noisy = np.clip(image + rng.normal(0, 80, image.shape), 0, 255)
        flat = 100 + (255 - image) * 0.15
        Image.fromarray(noisy.astype(np.uint8)).save(out / f"{name}_noise.png")
        Image.fromarray(flat.astype(np.uint8)).save(out / f"{name}_contrast.png")
    scenes = make_scenes(out.parent / "scenes", n=len(names), size=512, seed=1)  # vineyard-like photos
    for path in sorted(scenes.glob("*.jpg"))[: len(names)]:
        Image.open(path).convert("RGB").save(out / f"{path.stem}_photo.png")
    return out


def _predict_rss(model: Path, images: Path, out: Path, tta: bool) -> tuple[float, float, dict]:
    """Wall time, peak RSS (MB) of `segfit predict --uncertainty` and its predictions.json."""
    args = ["predict", str(model), str(images), "--out", str(out), "--uncertainty"] + (["--tta"] if tta else [])
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _PEAK, *args], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-400:])
    peak = float(proc.stderr.strip().splitlines()[-1].split()[-1]) / 1024
    return seconds, peak, json.loads((out / "predictions.json").read_text())


# The command line in a process that reports its own peak RSS (kB) last on stderr: the children's maximum would
# include the training processes this bench ran before.
_PEAK = """
import resource, sys
from segfit.cli import main
try:
    code = main(sys.argv[1:])
finally:  # VmHWM: this process's own peak (ru_maxrss starts from the parent's size at the fork)
    hwm = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")]
    print("peak_rss_kb", hwm[0] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def _training(single: Path, ensemble: Path) -> dict:
    """What each model got of the budget: working scale, epochs, best epoch, validation IoU; and the plan's
    notes (a fold's share too short for the instance scale). The why behind the gain, or its absence."""
    def one(run: Path) -> dict:
        plan = json.loads((run / "plan.json").read_text())["entries"]
        summary = json.loads((run / "summary.json").read_text())
        return {"scale": plan["scale"]["value"], "encoder_depth": plan.get("encoder_depth", {}).get("value"),
                "epochs": summary["epochs"], "best_epoch": summary["best_epoch"], "seconds": round(summary.get("seconds") or 0),
                "val_iou": round(summary["best"]["val_iou"], 4)}
    info = json.loads((ensemble / "ensemble.json").read_text())
    members = [one(ensemble / Path(m).parts[0]) for m in info["members"]]
    cv = json.loads((ensemble / "cv_metrics.json").read_text())
    return {"single": one(single), "members": members,
            "out_of_fold_iou": round(cv["pooled"]["iou"], 4) if "pooled" in cv else None,
            "notes": [n for n in info["plan"].get("notes", []) if "sample" not in n]}


def _why(configs: dict, training: dict, folds: int) -> dict:
    """The ensemble's gain parted in two: what averaging the members adds over one of them (same TTA), and what a
    member loses against the single model by training on 1/K of the budget; their sum is the gain over the single
    model with TTA."""
    iou = {k: v["test_iou"] for k, v in configs.items()}
    one, members = training["single"], training["members"]
    averaging = round(iou["ensemble_tta"] - iou["member_tta"], 4)
    share = round(iou["member_tta"] - iou["single_tta"], 4)
    return {"averaging_gain_iou": averaging, "budget_share_cost_iou": share,
            "single_epochs": one["epochs"], "single_scale": one["scale"],
            "member_epochs": [m["epochs"] for m in members], "member_scales": sorted({m["scale"] for m in members}),
            "summary": f"averaging {folds} members adds {averaging:+.3f} test IoU over one member (both with TTA); a member, "
                       f"trained on 1/{folds} of the budget ({members[0]['epochs']} epochs at scale {members[0]['scale']} "
                       f"against {one['epochs']} at {one['scale']}), is {share:+.3f} against the single model"}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--emps", default=str(HERE.parent.parent / "shared" / "data" / "emps"))
    p.add_argument("--time", default="10m")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--out", default=None)
    a = p.parse_args()
    out = Path(a.out or tempfile.mkdtemp(prefix="segfit-ensemble-"))
    out.mkdir(parents=True, exist_ok=True)
    import segfit

    single, ensemble = out / "single", out / "ensemble"
    result = {"bench": "ensemble", "time": a.time, "folds": a.folds,
              "train_wall_s": {"single": _train(a.emps, single, a.time, None),
                               "ensemble": _train(a.emps, ensemble, a.time, a.folds)}}
    emps = Path(a.emps)
    from segfit.data.formats import read_split_file

    test = read_split_file(emps / "test.csv") if (emps / "test.csv").is_file() else []
    pixels = 0
    from PIL import Image

    for name in test:
        with Image.open(emps / "images" / f"{name}.png") as im:
            pixels += im.size[0] * im.size[1]
    configs = {}
    # one member alone (fold 0, with TTA) parts the ensemble's gain over its members from what a member loses by
    # training on 1/K of the budget
    for label, run, tta in (("single", single, False), ("single_tta", single, True), ("ensemble", ensemble, False),
                            ("ensemble_tta", ensemble, True), ("member_tta", ensemble / "fold_0", True)):
        start = time.perf_counter()
        metrics = segfit.evaluate(run, split="test", instances=True, overlays=False, verbose=False, report=False,
                                  tta=tta, out=out / f"eval_{label}")
        seconds = time.perf_counter() - start
        inst = metrics.get("instances", {})
        configs[label] = {"test_iou": round(metrics["iou"], 4), "test_miou": round(metrics["miou"], 4),
                          "instance_f1": round(inst.get("f1", float("nan")), 4), "objects": inst.get("predicted_objects"),
                          "spearman_uncertainty_error": round(metrics["uncertainty"]["spearman_with_error"], 3),
                          "spearman_expected_error": round(metrics["uncertainty"]["spearman_expected_error"], 3),
                          "evaluate_s_per_megapixel": round(seconds / (pixels / 1e6), 3) if pixels else None}
    result.update(configs)
    result["ensemble_tta_gain_iou"] = round(configs["ensemble_tta"]["test_iou"] - configs["single"]["test_iou"], 4)
    result["training"] = _training(single, ensemble)
    result["why"] = _why(configs, result["training"], a.folds)
    corrupted = _corrupted(emps, out / "corrupted", test[:5])
    flags = {}
    for label, run, tta in (("single", single, False), ("ensemble_tta", ensemble, True)):
        seconds, peak, predictions = _predict_rss(run, corrupted, out / f"pred_corrupted_{label}", tta)
        rows = predictions["images"]
        flags[label] = {"flagged": sum(bool(r["review"]) for r in rows), "images": len(rows),
                        "threshold": predictions["uncertainty"]["review_threshold"], "predict_s": round(seconds, 1),
                        "peak_rss_mb": round(peak), "flagged_kinds": sorted({r["image"].rsplit("_", 1)[-1].split(".")[0]
                                                                             for r in rows if r["review"]})}
    result["corrupted"] = flags
    print(json.dumps(result))


if __name__ == "__main__":
    main()
