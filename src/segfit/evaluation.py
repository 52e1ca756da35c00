"""Evaluation of a trained model on a split of a data set: metrics.json, per_image.csv (also as
``<split>_metrics.csv``, with per-class metrics and coverage: the predicted and true fraction of the
image in each class), confusion.csv, grid.png (the notebook's 3x3 figure), overlays/, and gallery/
(the best and worst images as image · truth · prediction · errors strips, which the report shows)."""

from __future__ import annotations

import json
import os
import shlex
import sys
from functools import partial
from pathlib import Path
from time import perf_counter

import numpy as np
import torch

from segfit.data.layouts import discover
from segfit.data.preprocess import read_pair, resize_image, resize_mask
from segfit.data.split import select
from segfit.decoding import image_uncertainty
from segfit.errors import SegfitError
from segfit.instances import ObjectScores, SeedSweep
from segfit.metrics import confusion_per_image, image_scores, learning_warnings, per_class_table, scores_from_confusion
from segfit.objects import true_objects
from segfit.rescaling import fragment_floor
from segfit.rundir import output_dir, record_output, resolve_checkpoint, run_dir_of

GALLERY = 4  # best and worst images kept as strips in gallery/


def evaluate(run: str | os.PathLike, data: str | os.PathLike | None = None, split: str = "test",
             out: str | os.PathLike | None = None, size: int | None = None, batch_size: int = 8,
             seed: int = 0, overlays: bool = True, instances: bool = False, split_touching: bool = False,
             min_distance: int = 5, min_area: int | None = None, pixel_size: float | None = None, unit: str = "px",
             model_instances: bool = True, tta: bool | None = None, precision: str = "auto", report: bool = True, verbose: bool = True,
             calibrate_seeds: bool = False, deadline: float | None = None) -> dict:
    """Evaluate a run (its best checkpoint) or a checkpoint file (``segfit evaluate``).

    Args:
        run: run folder or ``.ckpt`` file.
        data: data set folder (default: the one the run was trained on).
        split: ``test``, ``val``, ``train`` or ``all`` (the run's saved split).
        out: output folder (default ``RUN/eval_<split>``).
        size: compare at ``size x size`` (the notebook's protocol); default: each image's original size.
        batch_size: images per forward pass.
        seed: picks the images shown in ``grid.png``.
        overlays: write ``overlays/NAME.png`` (image and class colours blended at alpha 0.5).
        instances: also score objects (:mod:`segfit.instances`): predicted objects (the model's own
            instances when it learned them, unless ``split_touching``; else connected components, or a
            watershed split with ``split_touching``, ``min_area`` pixels at least, peaks ``min_distance`` apart) matched to
            true ones at IoU >= 0.5. The truth is the mask's own ids when it is an instance map (EMPS),
            else its connected components. Writes ``sizes.png`` (true vs predicted diameters).
        pixel_size, unit: the size of one pixel: diameters are also given in ``unit``.
        min_area: drop smaller predicted objects (default: the model's fragment floor ``min_object_area``,
            calibrated on its validation images or planned).
        tta: average the label-preserving flips and rotations (see :mod:`segfit.ensemble`; default: the run's plan).
        model_instances: False scores a model that learned instances as if it had not (components of
            its class map, or their watershed split): to compare the two.
        report: record this evaluation in the run's ``outputs.json`` and rebuild its ``report.html``
            (when evaluating a run's checkpoint).
        calibrate_seeds: for a model that learned instances, score its objects at each seed level
            (:class:`segfit.instances.SeedSweep`) into ``metrics["seed_calibration"]``.
        deadline: ``time.perf_counter()`` by which the evaluation should end: the seed sweep scores no more images
            (a few at least) once the images left, at the pace of those scored so far, would take it past.

    Returns:
        The content of ``metrics.json``.
    """
    import pandas as pd

    from segfit.io import write_csv, write_json
    from segfit.predictor import Predictor
    from segfit.viz import plot_grid

    say = print if verbose else (lambda *a, **k: None)
    from segfit.backends import ENSEMBLE_FILE

    if (Path(run) / ENSEMBLE_FILE).is_file():  # a cross-validation ensemble (segfit train --folds)
        run_dir, ckpt = Path(run), Path(run) / ENSEMBLE_FILE
        predictor = Predictor.from_checkpoint(run, precision=precision, tta=tta)
    else:
        ckpt = resolve_checkpoint(run, "best")
        run_dir = run_dir_of(ckpt)
        predictor = Predictor.from_checkpoint(ckpt, precision=precision, tta=tta)
    d = predictor.config.data
    root = Path(data) if data is not None else Path(d.root)
    if data is None and not root.exists():
        raise SegfitError("the data folder this run was trained on is not there any more", root,
                          f"give its new place: segfit evaluate {shlex.quote(str(run))} DATA")
    layout = discover(root, d.images, d.masks, d.mask_suffix)
    by_name = {s.name: s for s in layout.samples}
    names, source = _names(run_dir, root, Path(d.root), split, list(by_name))
    if not names:
        raise SegfitError(f"the {split} split is empty", root, "evaluate another --split (e.g. val or all)")
    missing = [n for n in names if n not in by_name]
    if missing:
        raise SegfitError(f"{len(missing)} images of the saved split are missing (first: {missing[0]!r})", root,
                          "evaluate on the data set the run was trained on, or use --split all")
    _warn_if_data_changed(run_dir, layout.samples, say)
    out = output_dir(out, say) if out else (run_dir or ckpt.parent) / f"eval_{split}"  # a user's folder is never mixed into
    say(f"Evaluating {ckpt} on {len(names)} {split} images ({source}) at "
        f"{'%dx%d' % (size, size) if size else 'original resolution'}"
        + (f", averaging {len(predictor.variants)} test-time variants" if len(predictor.variants) > 1 else ""))

    k = d.num_classes
    total = np.zeros((k, k), dtype=np.int64)
    if pixel_size is not None and not (pixel_size > 0):
        raise SegfitError(f"--pixel-size must be a number above 0, not {pixel_size}", fix="give e.g. --pixel-size 2.5 --unit nm")
    learned = instances and model_instances and predictor.learns_instances and not split_touching
    if instances and split_touching and predictor.learns_instances:  # asked for: the post-hoc split, to compare
        say("--split-touching: objects from a watershed of the class map, not the model's own instances")
    planned = predictor.config.model.min_object_area or 0  # the sweep tries floors around the plan's, not its own last choice
    sweep = SeedSweep(planned if min_area is None else min_area, deadline=deadline) if calibrate_seeds and predictor.learns_instances else None
    if learned:
        from segfit.seeding import calibrate_averaged

        calibrate_averaged(predictor, say)  # averaged outputs (--tta, an ensemble) seed at their own level
        if min_area is not None:  # the model's own objects drop what the user calls fragments
            predictor.min_object_area = min_area
    min_area = (predictor.min_object_area if learned else planned) if min_area is None else min_area  # fragments are not objects
    objects = ObjectScores(d.class_names, d.mask_mode == "binary" or k == 2, split_touching, min_distance, min_area,
                           pixel_size, unit)
    rows = []
    rng = np.random.default_rng(seed)
    shown = set(rng.choice(len(names), size=min(9, len(names)), replace=False).tolist())
    grid: list[tuple[str, np.ndarray, np.ndarray]] = []
    gallery = _Gallery(GALLERY, d.class_colors)
    began, swept_s = perf_counter(), 0.0
    for start in range(0, len(names), batch_size):
        if sweep is not None and deadline is not None and start:  # it stops in time for the images left to be scored
            sweep.deadline = deadline - (len(names) - start) * (perf_counter() - began - swept_s) / start
        chunk = [by_name[n] for n in names[start: start + batch_size]]
        images, truths, raws = [], [], []
        for s in chunk:
            image, truth, raw = read_pair(s, d, channels=3, raw=True)  # RGB for the overlays; the predictor converts
            if size:
                image, truth, raw = resize_image(image, size), resize_mask(truth, size), resize_mask(raw, size)
            images.append(image)
            truths.append(truth)
            raws.append(raw if instances or sweep else None)
        results = predictor.predict_full(images, [t.shape for t in truths], batch_size, objects=learned, uncertainty=True,
                                         distance=sweep is not None)
        for j, (s, image, truth, raw, result) in enumerate(zip(chunk, images, truths, raws, results)):
            pred, pred_objects = result.classes, result.objects
            row = _image_row(s.name, pred, truth, d.class_names, total)
            row["working_scale"] = result.scale or d.scale or 1.0  # larger than the model's for small objects, smaller for huge ones
            row.update({k: v for k, v in image_uncertainty(s.name, result.uncertainty, None, None, result.expected_iou, pred).items() if k not in ("image", "review")})
            if instances:
                row.update(objects.add(s.name, raw, truth, pred, pred_objects))
            if sweep is not None:
                t = perf_counter()
                sweep.add(true_objects(raw, truth, objects.binary), truth, pred, result.distance, result.uncertainty,
                          partial(fragment_floor, data=d, scale=result.scale))
                swept_s += perf_counter() - t
            rows.append(row)
            gallery.add(row["iou"], s.name, image, truth, pred)
            if overlays:
                _save_overlay(out / "overlays" / f"{s.name}.png", image, pred, d.class_colors)
            if start + j in shown:
                grid.append((s.name, image, pred))
    per_image = pd.DataFrame(rows)
    per_class = per_class_table(total, d.class_names)
    for name, scores in per_class.items():  # the area measured (leaf-area index) beside the true one: a bias shows
        scores.update({f"coverage_{w}": float(per_image[f"coverage_{w}_{name}"].mean()) for w in ("pred", "true")})
    metrics = {
        "iou": float(per_image["iou"].mean()),
        "dice": float(per_image["dice"].mean()),
        "accuracy": float(per_image["accuracy"].mean()),
        "miou": float(np.mean([v["iou"] for v in per_class.values()])),
        "per_class": per_class,
        "images": len(names),
        "split": split,
        "threshold": 0.5 if k == 2 else "argmax",
        "resolution": size or "original",
        "checkpoint": str(ckpt),
        "data": str(root),
        "members": predictor.members, "tta": list(predictor.variants), "precision": predictor.precision,
        "uncertainty": _uncertainty_summary(per_image),
        "rescaled_images": int((per_image["working_scale"] != (d.scale or 1.0)).sum()),
    }
    if instances:
        from segfit.viz import plot_size_comparison

        metrics["instances"] = objects.summary()
        if learned:
            metrics["instances"]["seed_level"] = predictor.seed_level
            metrics["instances"]["merge_level"] = predictor.merge_level
            metrics["instances"]["min_object_area"] = predictor.min_object_area
            metrics["instances"]["unsure_level"] = predictor.unsure_level
        plot_size_comparison(objects.diameters(), out / "sizes.png", pixel_size, unit)
    if sweep is not None:
        metrics["seed_calibration"] = sweep.best(f"the {len(names)} {split} images" if sweep.images == len(names) else
                                                 f"{sweep.images} of the {len(names)} {split} images (the time budget)")
        if metrics["seed_calibration"]:  # for outputs averaged as these were (others calibrate their own)
            metrics["seed_calibration"].update(members=predictor.members, variants=list(predictor.variants))
    metrics["warnings"] = learning_warnings(total, d.class_names, predictor.config)
    write_json(out / "metrics.json", metrics)
    write_csv(out / "per_image.csv", per_image)
    write_csv(out / f"{split}_metrics.csv", per_image)
    confusion = pd.DataFrame(total, columns=[f"pred_{n}" for n in d.class_names])
    confusion.insert(0, "true", d.class_names)
    write_csv(out / "confusion.csv", confusion)
    grid.sort(key=lambda g: g[0])
    plot_grid([g[1] for g in grid], [g[2] for g in grid], [g[0] for g in grid], d.class_colors,
              out / "grid.png", alpha=0.25)
    gallery.save(out / "gallery")
    say(f"{split}: iou {metrics['iou']:.4f}  dice {metrics['dice']:.4f}  accuracy {metrics['accuracy']:.4f}  "
        f"(means over {len(names)} images" + (f"; {metrics['rescaled_images']} with objects far from the training size predicted at another scale)"
                                              if metrics["rescaled_images"] else ")"))
    if k > 2:  # the areas measured per class (the vineyard's leaf-area index) against the true ones
        say(f"{split} area (mean share of the pixels), predicted vs true: " + ", ".join(
            f"{n} {v['coverage_pred']:.3f} vs {v['coverage_true']:.3f}" for n, v in list(per_class.items())[1:]))
    unc = metrics["uncertainty"]
    if unc["spearman_with_error"] is not None or unc["spearman_expected_error"] is not None:
        rho = {k: "-" if unc[k] is None else f"{unc[k]:.3f}" for k in ("spearman_expected_error", "spearman_with_error")}
        say(f"{split} uncertainty: mean {unc['mean']:.4f}; Spearman correlation with the per-image error (1 - IoU): "
            f"expected error {rho['spearman_expected_error']}, mean uncertainty {rho['spearman_with_error']}"
            + (f" ({predictor.members} models" if predictor.members > 1 else " (1 model")
            + (f", {len(predictor.variants)} test-time variants)" if len(predictor.variants) > 1 else ")"))
    for warning in metrics["warnings"]:
        print(f"segfit: warning: {warning}", file=sys.stderr)
    if instances:
        inst = metrics["instances"]
        u, f = (unit, pixel_size) if pixel_size else ("px", 1.0)
        floor = f"; under {inst['min_area']} px: fragments" if inst.get("min_area") else ""
        say(f"{split} objects ({inst['predicted_objects']}{floor}): {inst['count_pred']} predicted vs {inst['count_true']} true "
            f"(count error {inst['count_error']:+d}, {100 * inst['count_error_fraction']:+.1f} %); at IoU >= 0.5 precision "
            f"{inst['precision']:.4f}  recall {inst['recall']:.4f}  F1 {inst['f1']:.4f} (per image {inst['mean_f1_per_image']:.4f}); "
            f"AP50 {inst['ap50']:.4f}  mAP@0.5:0.95 {inst['map']:.4f}")
        say(f"{split} sizes: mean equivalent diameter {inst['mean_diameter_pred'] * f:.2f} {u} predicted vs "
            f"{inst['mean_diameter_true'] * f:.2f} {u} true; Wasserstein-1 of the distributions {inst['diameter_wasserstein'] * f:.2f} {u}")
    say(f"Wrote {out}/: metrics.json, per_image.csv, {split}_metrics.csv, confusion.csv, grid.png"
        + (", sizes.png" if instances else "") + (", overlays/" if overlays else ""))
    if run_dir is not None and report and (run_dir / ENSEMBLE_FILE).is_file():
        from segfit.ensemble_page import ensemble_report

        record_output(run_dir, "evaluations", out)
        say(f"Updated {ensemble_report(run_dir)}")
    elif run_dir is not None and report and (run_dir / "config.json").is_file():
        from segfit.report_page import update_report

        record_output(run_dir, "evaluations", out)
        if update_report(run_dir):
            say(f"Updated {run_dir / 'report.html'}")
    return metrics


MIN_CORRELATION_IMAGES = 5  # fewer images: no correlation of uncertainty with error (null in metrics.json)


def _uncertainty_summary(per_image) -> dict:
    """Mean per-image uncertainty and the Spearman correlation of the per-image error (1 - IoU) with the mean
    uncertainty and with the expected error: does the model know when it is wrong?"""
    err = 1 - per_image["iou"].to_numpy(float)
    u = per_image["mean_uncertainty"].to_numpy(float)
    rho = _spearman(u, err)
    return {"mean": float(u.mean()) if len(u) else float("nan"), "spearman_with_error": rho,
            "spearman_expected_error": _spearman(per_image["expected_error"].to_numpy(float), err),
            "spearman": f"over {len(u)} images" if len(u) >= MIN_CORRELATION_IMAGES else
                        f"none: {len(u)} images, {MIN_CORRELATION_IMAGES} at least give a correlation that means something",
            "error": "1 - the image's IoU",
            "measure": "mean predictive entropy of the averaged class probabilities / log(classes), over the predicted "
                       "objects and the uncertain pixels",
            "expected_error": "1 - the IoU the model expects of its own mask (its mask scored against its own probabilities)"}


def _spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    from scipy.stats import spearmanr

    ok = (x == x) & (y == y)
    x, y = x[ok], y[ok]
    enough = len(x) >= MIN_CORRELATION_IMAGES and x.std() > 0 and y.std() > 0  # 3 images give only +-1 or +-0.5
    return float(spearmanr(x, y).statistic) if enough else None


def _image_row(name: str, pred: np.ndarray, truth: np.ndarray, class_names: list[str], total: np.ndarray) -> dict:
    """One image's figures (a row of per_image.csv); its confusion matrix is added to ``total``."""
    cm = confusion_per_image(torch.from_numpy(pred)[None], torch.from_numpy(truth)[None], len(class_names))
    total += cm[0].numpy()
    scores = image_scores(cm)
    per_class = scores_from_confusion(cm[0])
    row = {"image": name, "iou": float(scores["iou"]), "dice": float(scores["dice"]), "accuracy": float(scores["accuracy"])}
    for metric in ("iou", "dice", "precision", "recall"):
        row.update({f"{metric}_{n}": float(per_class[metric][c]) for c, n in enumerate(class_names)})
    pred_counts, true_counts = cm[0].sum(0).numpy(), cm[0].sum(1).numpy()
    row.update({f"coverage_pred_{n}": pred_counts[c] / pred.size for c, n in enumerate(class_names)})
    row.update({f"coverage_true_{n}": true_counts[c] / truth.size for c, n in enumerate(class_names)})
    return row


def _save_overlay(path: Path, image: np.ndarray, pred: np.ndarray, colors) -> None:
    from segfit.io import write_png
    from segfit.viz import overlay

    write_png(path, overlay(image, pred, colors, alpha=0.5))


class _Gallery:
    """Keeps the ``n`` best and ``n`` worst images by IoU (ties by name) as small strips, drawn only
    for images that enter, and saves them as ``gallery/NAME.png`` with ``gallery.csv``."""

    def __init__(self, n: int, colors):
        self.n, self.colors = n, colors
        self.best: list[tuple] = []
        self.worst: list[tuple] = []
        self.strips: dict[str, np.ndarray] = {}

    def add(self, iou: float, name: str, image: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> None:
        key = (-iou, name)  # the report's order: best first
        best = sorted(self.best + [key])[: self.n]
        worst = sorted(self.worst + [key])[-self.n:]
        if key in best or key in worst:
            from segfit.viz import error_strip

            self.strips[name] = error_strip(image, truth, pred, self.colors)
        self.best, self.worst = best, worst
        kept = {k[1] for k in best + worst}
        self.strips = {k: v for k, v in self.strips.items() if k in kept}

    def save(self, folder: Path) -> None:
        import pandas as pd
        from PIL import Image

        from segfit.io import atomic_path, write_csv

        for stale in folder.glob("*.png") if folder.is_dir() else []:
            stale.unlink()
        for name, strip in self.strips.items():
            with atomic_path(folder / f"{name}.png") as tmp:
                Image.fromarray(strip).save(tmp, format="PNG", optimize=True)
        keys = sorted(set(self.best + self.worst))
        write_csv(folder / "gallery.csv", pd.DataFrame({"image": [k[1] for k in keys], "iou": [-k[0] for k in keys]}))


def _warn_if_data_changed(run_dir: Path | None, samples, say) -> None:
    """Compare the data set's fingerprint with the one recorded when the run was trained."""
    from segfit.record import data_fingerprint

    record = run_dir / "environment.json" if run_dir else None
    if record is None or not record.is_file():
        return
    trained = json.loads(record.read_text()).get("data", {})
    now = data_fingerprint(samples)
    if trained and trained.get("sha256") != now["sha256"]:
        say(f"segfit: warning: the data set differs from the one this run was trained on ({trained.get('files')} files then, "
            f"{now['files']} now, or files changed since): the split and the figures may not be comparable.", file=sys.stderr)


def _names(run_dir: Path | None, root: Path, trained_root: Path, split: str, available: list[str]) -> tuple[list[str], str]:
    """The image names to evaluate: the run's saved split on its own data set, else the data set's
    own split files, else everything."""
    split_file = run_dir / "split.json" if run_dir else None
    same_data = root.resolve() == trained_root.resolve() if str(trained_root) else False
    if split_file is not None and split_file.is_file() and same_data:
        return select(json.loads(split_file.read_text()), split), "the run's saved split"
    if split == "test" and (root / "test.csv").is_file():
        from segfit.data.formats import read_split_file

        return read_split_file(root / "test.csv"), "test.csv"
    if split != "all":
        print(f"Note: no saved {split} split for this data set, evaluating all {len(available)} images")
    return sorted(available), "all images"
