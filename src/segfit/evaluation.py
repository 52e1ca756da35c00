"""Evaluation of a trained model on a split of a data set: metrics.json, per_image.csv (also as
``<split>_metrics.csv``, with per-class metrics and coverage: the predicted and true fraction of the
image in each class), confusion.csv, grid.png (the notebook's 3x3 figure) and overlays/."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from segfit.data.datamodule import read_pair, resize_image, resize_mask
from segfit.data.formats import discover
from segfit.data.split import select
from segfit.errors import SegfitError
from segfit.metrics import confusion_per_image, image_scores, per_class_table, scores_from_confusion


def evaluate(run_or_checkpoint: str | os.PathLike, data: str | os.PathLike | None = None, split: str = "test",
             out: str | os.PathLike | None = None, size: int | None = None, batch_size: int = 8,
             seed: int = 0, overlays: bool = True, verbose: bool = True) -> dict:
    """Evaluate a run (its best checkpoint) or a checkpoint file.

    Args:
        run_or_checkpoint: run folder or ``.ckpt`` file.
        data: data set folder (default: the one the run was trained on).
        split: ``test``, ``val``, ``train`` or ``all`` (the run's saved split).
        out: output folder (default ``RUN/eval_<split>``).
        size: compare at ``size x size`` (the notebook's protocol); default: each image's original size.
        batch_size: images per forward pass.
        seed: picks the images shown in ``grid.png``.
        overlays: write ``overlays/NAME.png`` (image and class colours blended at alpha 0.5).

    Returns:
        The content of ``metrics.json``.
    """
    import pandas as pd

    from segfit.checkpoint import resolve_checkpoint, run_dir_of
    from PIL import Image

    from segfit.io import atomic_path, write_csv, write_json
    from segfit.predict import Predictor
    from segfit.viz import overlay, plot_grid

    say = print if verbose else (lambda *a, **k: None)
    ckpt = resolve_checkpoint(run_or_checkpoint, "best")
    run_dir = run_dir_of(ckpt)
    predictor = Predictor.from_checkpoint(ckpt)
    d = predictor.config.data
    root = Path(data) if data is not None else Path(d.root)
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
    out = Path(out) if out else (run_dir or ckpt.parent) / f"eval_{split}"
    say(f"Evaluating {ckpt} on {len(names)} {split} images ({source}) at "
        f"{'%dx%d' % (size, size) if size else 'original resolution'}")

    k = d.num_classes
    total = np.zeros((k, k), dtype=np.int64)
    rows = []
    rng = np.random.default_rng(seed)
    shown = set(rng.choice(len(names), size=min(9, len(names)), replace=False).tolist())
    gallery: list[tuple[str, np.ndarray, np.ndarray]] = []
    for start in range(0, len(names), batch_size):
        chunk = [by_name[n] for n in names[start: start + batch_size]]
        images, truths = [], []
        for s in chunk:
            image, truth = read_pair(s, d, channels=3)  # RGB for the overlays; the predictor converts
            if size:
                image, truth = resize_image(image, size), resize_mask(truth, size)
            images.append(image)
            truths.append(truth)
        preds = predictor.predict_many(images, [t.shape for t in truths], batch_size=batch_size)
        for j, (s, image, truth, pred) in enumerate(zip(chunk, images, truths, preds)):
            cm = confusion_per_image(torch.from_numpy(pred)[None], torch.from_numpy(truth)[None], k)
            total += cm[0].numpy()
            scores = image_scores(cm)
            per_class = scores_from_confusion(cm[0])
            row = {"image": s.name, "iou": float(scores["iou"]), "dice": float(scores["dice"]),
                   "accuracy": float(scores["accuracy"])}
            for metric in ("iou", "dice", "precision", "recall"):
                row.update({f"{metric}_{name}": float(per_class[metric][c]) for c, name in enumerate(d.class_names)})
            pred_counts, true_counts = cm[0].sum(0).numpy(), cm[0].sum(1).numpy()
            row.update({f"coverage_pred_{name}": pred_counts[c] / pred.size for c, name in enumerate(d.class_names)})
            row.update({f"coverage_true_{name}": true_counts[c] / truth.size for c, name in enumerate(d.class_names)})
            rows.append(row)
            if overlays:
                with atomic_path(out / "overlays" / f"{s.name}.png") as tmp:
                    Image.fromarray(overlay(image, pred, d.class_colors, alpha=0.5)).save(tmp, format="PNG")
            if start + j in shown:
                gallery.append((s.name, image, pred))
    per_image = pd.DataFrame(rows)
    per_class = per_class_table(total, d.class_names)
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
    }
    write_json(out / "metrics.json", metrics)
    write_csv(out / "per_image.csv", per_image)
    write_csv(out / f"{split}_metrics.csv", per_image)
    confusion = pd.DataFrame(total, columns=[f"pred_{n}" for n in d.class_names])
    confusion.insert(0, "true", d.class_names)
    write_csv(out / "confusion.csv", confusion)
    gallery.sort(key=lambda g: g[0])
    plot_grid([g[1] for g in gallery], [g[2] for g in gallery], [g[0] for g in gallery], d.class_colors,
              out / "grid.png", alpha=0.25)
    say(f"{split}: iou {metrics['iou']:.4f}  dice {metrics['dice']:.4f}  accuracy {metrics['accuracy']:.4f}  "
        f"(means over {len(names)} images)")
    say(f"Wrote {out}/: metrics.json, per_image.csv, {split}_metrics.csv, confusion.csv, grid.png"
        + (", overlays/" if overlays else ""))
    return metrics


def _warn_if_data_changed(run_dir: Path | None, samples, say) -> None:
    """Compare the data set's fingerprint with the one recorded when the run was trained."""
    from segfit.record import data_fingerprint

    record = run_dir / "environment.json" if run_dir else None
    if record is None or not record.is_file():
        return
    trained = json.loads(record.read_text()).get("data", {})
    now = data_fingerprint(samples)
    if trained and trained.get("sha256") != now["sha256"]:
        say(f"Warning: the data set differs from the one this run was trained on ({trained.get('files')} files then, "
            f"{now['files']} now, or files changed since): the split and the figures may not be comparable.")


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
