"""k-fold cross-validation ensembles (``segfit train DATA --folds K``).

The training images (train + validation; the test split stays untouched) are dealt into K folds; fold
``i`` trains a complete run in ``RUN/fold_i/`` with fold ``i`` as its validation images. The members'
best checkpoints form the ensemble of ``RUN/ensemble.json``, which ``predict``, ``evaluate`` and
``quantify`` accept like a run. ``RUN/cv_metrics.json`` holds each fold's validation figures and the
pooled out-of-fold ones (every training image scored by the one model that did not train on it); the
same out-of-fold images calibrate the uncertainty above which ``predict --uncertainty`` flags an image
for review. Under a time budget (``--time``) the folds share it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np

from segfit.errors import SegfitError

ENSEMBLE_RESERVE_S = 10.0  # seconds kept back from a budget for the ensemble's records


def fold_splits(split: dict, k: int, seed: int = 0) -> list[dict]:
    """K splits from one: the training and validation images dealt into K folds (reproducibly, whatever
    their order), each fold once the validation images; the test images are every split's."""
    pool = sorted(split["train"] + split["val"])
    if k < 2 or k > len(pool):
        if len(pool) < 2:
            raise SegfitError(f"--folds {k}: {len(pool)} training image cannot be dealt into folds",
                              fix="train a single model (--folds 1), or add images")
        raise SegfitError(f"--folds {k}: {len(pool)} training images make 2 to {len(pool)} folds",
                          fix=f"use e.g. --folds {min(5, len(pool))} (or --folds 1 for a single model)")
    order = [pool[i] for i in np.random.default_rng(seed).permutation(len(pool))]
    parts = [sorted(order[i::k]) for i in range(k)]
    return [{"train": sorted(n for j, part in enumerate(parts) if j != i for n in part), "val": parts[i],
             "test": list(split["test"]), "source": f"fold {i} of {k} ({split.get('source')})", "seed": seed, "fold": i}
            for i in range(k)]


def train_folds(train, data, out, folds: int, *, planning: bool, time=None, plan="auto", overwrite: bool = False,
                name: str | None = None, verbose: bool = True, **options: Any):
    """Train one run per fold with ``train`` (:func:`segfit.runs.train`) and write the ensemble; returns the
    ensemble folder. ``planning``: whether the runs are planned."""
    from segfit.budget import DEFAULT_BUDGET, parse_duration
    from segfit.data.layouts import discover
    from segfit.data.split import make_split
    from segfit.io import write_json
    from segfit.options import build_config
    from segfit.planning import plan_for
    from segfit.rundir import make_run_dir

    start = perf_counter()
    say = print if verbose else (lambda *a, **k: None)
    if data is None:
        raise SegfitError("no data set given", fix="segfit train DATA --folds 5 --out RUN")
    if name:
        out = Path(out or ".") / name
    base_cfg = build_config(data, **options)  # validates the options before anything is written
    d = base_cfg.data
    layout = discover(d.root, d.images, d.masks, d.mask_suffix)
    base = make_split([s.name for s in layout.samples], d.root, d.test, d.val, d.seed, layout.split)
    splits = fold_splits(base, folds, d.seed)
    budget = parse_duration(time) if time is not None else (DEFAULT_BUDGET if planning and "epochs" not in options else None)
    prepared = None
    if planning:
        per_fold = None if budget is None else (budget - ENSEMBLE_RESERVE_S) / folds
        say(f"Planning {folds} folds from the data and the machine" + (f" (budget {budget:.0f} s, {per_fold:.0f} s a fold)" if budget else ""))
        prepared = plan_for(data, per_fold, options)
        _note_short_folds(prepared, folds, per_fold)
        for line in prepared[0].lines()[1:]:
            say("  " + line)
    run_dir = make_run_dir(out, overwrite, say)
    write_json(run_dir / "split.json", {**base, "folds": [s["val"] for s in splits]})
    members = []
    for i, split in enumerate(splits):
        fold_time = None
        if budget is not None:
            left = budget - (perf_counter() - start) - ENSEMBLE_RESERVE_S
            fold_time = max(left / (folds - i), 1.0)
        say(f"Fold {i + 1} of {folds}: {len(split['train'])} training, {len(split['val'])} validation images"
            + (f", {fold_time:.0f} s" if fold_time else ""))
        result = train(data, run_dir / f"fold_{i}", time=fold_time, plan=plan, split=split, prepared=prepared,
                       verbose=verbose, **options)
        members.append(result.run_dir)
    return write_ensemble(run_dir, members, prepared[0] if prepared else None, say)


def _note_short_folds(prepared: tuple, folds: int, per_fold: float | None) -> None:
    """A plan note where each fold's share of the budget is too short for the working scale that instances need:
    the members then find objects worse than one model given the whole budget would."""
    from segfit.planner import MIN_INSTANCE_OBJECT_PX, instance_objects_px

    px = instance_objects_px(prepared[0], prepared[1]["data"]) if per_fold else None
    if px is not None:
        prepared[0].notes.append(
            f"each of the {folds} folds gets {per_fold:.0f} s, too short to keep the median object at {MIN_INSTANCE_OBJECT_PX:.0f} px for instances "
            f"(it keeps {px:.0f} px): the members will split objects worse than one model trained on the whole budget "
            f"(EMPS, 10 minutes: 5 folds instance F1 0.52 with TTA, one model 0.64); give about {folds} times the "
            "--time one model needs, or fewer --folds")


def write_ensemble(run_dir: Path, members: list[Path], planned=None, say=print) -> Path:
    """``ensemble.json``, ``cv_metrics.json`` and ``report.html`` of an ensemble folder from its members'
    run folders (each evaluated on its own validation images by its report)."""
    from segfit.ensemble import review_calibration
    from segfit.ensemble_page import write_report
    from segfit.io import write_json

    cv = cv_metrics(members)
    uncertainty = review_calibration(cv.pop("_uncertainties"), "out-of-fold validation images, each scored by the "
                                                               "one member that did not train on it")
    from segfit.novelty import merged_range

    record = {"members": [os.path.relpath(m / "checkpoints" / "best.ckpt", run_dir) for m in members],
              "weights": [1.0 / len(members)] * len(members), "folds": len(members),
              "plan": planned.to_dict() if planned is not None else None, "uncertainty": uncertainty,
              "inputs": merged_range([_member_inputs(m) for m in members]), "instances": _member_seed_level(members),
              "cv_metrics": "cv_metrics.json"}
    record["warnings"] = _weak_folds(cv["folds"])
    for warning in record["warnings"]:
        say(f"segfit: warning: {warning}", file=sys.stderr)
    write_json(run_dir / "cv_metrics.json", cv)
    write_json(run_dir / "ensemble.json", record)
    write_report(run_dir, cv, record)
    pooled = cv["pooled"]
    say(f"Cross-validation ({len(members)} folds): out-of-fold iou {pooled['iou']:.4f}  dice {pooled['dice']:.4f}  "
        f"mIoU {pooled['miou']:.4f} over {pooled['images']} images; folds' iou {cv['mean']['iou']:.4f} ± {cv['std']['iou']:.4f}")
    say(f"Wrote {run_dir}/: ensemble.json ({len(members)} members), cv_metrics.json, report.html, fold_0/ .. fold_{len(members) - 1}/")
    return run_dir


WEAK_FOLD_IOU = 0.15  # a fold this far below the median fold's validation IoU is named


def _weak_folds(folds: list[dict]) -> list[str]:
    """A fold much worse than the others (too few epochs on a busy machine, say): the ensemble averages it with
    the same weight, so it is named, with what it trained."""
    median = float(np.median([f["iou"] for f in folds]))
    return [f"{f['run']} reaches validation IoU {f['iou']:.3f}, far below the folds' median {median:.3f} (it trained "
            f"{f.get('epochs')} epochs; the others {', '.join(str(g.get('epochs')) for g in folds if g is not f)}): the "
            "ensemble averages it with the same weight; train the ensemble again, or predict with its better folds"
            for f in folds if f["iou"] < median - WEAK_FOLD_IOU]


def _member_inputs(member: Path) -> dict | None:
    """A member's input statistics range: from its summary (its report made it), else measured now."""
    from segfit.config import RunConfig
    from segfit.novelty import run_stats_range
    from segfit.rundir import read_json

    summary = _member_summary(member)
    if summary.get("inputs"):
        return summary["inputs"]
    return run_stats_range(RunConfig.from_dict(read_json(member / "config.json")), read_json(member / "split.json"))


def _member_seed_level(members: list[Path]) -> dict | None:
    """The ensemble's seed level for instances: the median of its members' calibrated levels; merging, when
    most members merge, at the median of their merge levels."""
    from statistics import median

    found = [_member_summary(m).get("instances") or {} for m in members]
    levels = [c["seed_level"] for c in found if c.get("seed_level") is not None]
    if not levels:
        return None
    merges = [c["merge_level"] for c in found if c.get("merge_level") is not None]
    merge = float(median(merges)) if 2 * len(merges) > len(levels) else None
    areas = [c["min_object_area"] for c in found if c.get("min_object_area") is not None]
    unsure = [c["unsure_level"] for c in found if c.get("unsure_level") is not None]
    return {"seed_level": float(median(levels)), "merge_level": merge,
            **({"min_object_area": int(median(areas))} if areas else {}),
            "unsure_level": float(median(unsure)) if 2 * len(unsure) > len(levels) else None,
            "how": f"the median of the members' calibrated levels {levels} (merge levels {merges}, fragment floors {areas}, "
                   f"unsure levels {unsure})"}


def _member_summary(member: Path) -> dict:
    from segfit.rundir import read_json

    return read_json(member / "summary.json") if (member / "summary.json").is_file() else {}


def cv_metrics(members: list[Path]) -> dict:
    """Per-fold validation figures (each fold's ``eval_val``) and the pooled out-of-fold ones."""
    import pandas as pd

    from segfit.ensemble import REVIEW_MEASURES
    from segfit.metrics import per_class_table
    from segfit.rundir import read_json

    folds, frames, confusion = [], [], None
    for i, member in enumerate(members):
        if not (member / "eval_val" / "metrics.json").is_file():  # trained with --no-report: score its fold now
            from segfit.evaluation import evaluate

            size = read_json(member / "config.json")["data"].get("size")
            evaluate(member, split="val", size=size, overlays=False, report=False, verbose=False)
        metrics = read_json(member / "eval_val" / "metrics.json")
        summary = read_json(member / "summary.json")
        folds.append({"fold": i, "run": member.name, "images": metrics["images"], "best_epoch": summary["best_epoch"],
                      "epochs": summary.get("epochs"),
                      **{k: metrics[k] for k in ("iou", "dice", "accuracy", "miou")}})
        frames.append(pd.read_csv(member / "eval_val" / "per_image.csv").assign(fold=i))
        cm = pd.read_csv(member / "eval_val" / "confusion.csv").drop(columns=["true"]).to_numpy(np.int64)
        confusion = cm if confusion is None else confusion + cm
        names = list(pd.read_csv(member / "eval_val" / "confusion.csv")["true"])
    per_image = pd.concat(frames, ignore_index=True)
    per_class = per_class_table(confusion, names)
    table = pd.DataFrame(folds)
    return {
        "folds": folds,
        "mean": {k: float(table[k].mean()) for k in ("iou", "dice", "accuracy", "miou")},
        "std": {k: float(table[k].std(ddof=0)) for k in ("iou", "dice", "accuracy", "miou")},
        "pooled": {"images": len(per_image), "iou": float(per_image["iou"].mean()), "dice": float(per_image["dice"].mean()),
                   "accuracy": float(per_image["accuracy"].mean()),
                   "miou": float(np.mean([v["iou"] for v in per_class.values()])), "per_class": per_class},
        "_uncertainties": per_image[[c for c in REVIEW_MEASURES if c in per_image]],
    }
