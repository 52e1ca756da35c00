"""The report page of a cross-validation ensemble (``segfit train --folds``): its folds' table, the review
threshold and the evaluations recorded since, rebuilt by ``segfit report ENSEMBLE`` and ``segfit evaluate ENSEMBLE``."""

from __future__ import annotations

import os
from pathlib import Path


def ensemble_report(run_dir: str | os.PathLike) -> Path:
    """(Re)build an ensemble folder's ``report.html`` from its ``ensemble.json`` and ``cv_metrics.json``, with
    the evaluations recorded since (``segfit report ENSEMBLE``, and after ``segfit evaluate ENSEMBLE``)."""
    from segfit.backends import ENSEMBLE_FILE
    from segfit.rundir import read_json

    run_dir = Path(run_dir)
    write_report(run_dir, read_json(run_dir / "cv_metrics.json"), read_json(run_dir / ENSEMBLE_FILE))
    return run_dir / "report.html"


def _evaluations(run_dir: Path) -> str:
    """The report's table of the ensemble's evaluations (``outputs.json``: ``segfit evaluate ENSEMBLE``)."""
    from html import escape

    from segfit.rundir import outputs, read_json_if_any

    rows = ""
    for folder in outputs(run_dir, "evaluations"):
        m = read_json_if_any(folder / "metrics.json")
        if not m:
            continue
        rel = os.path.relpath(folder, run_dir)
        tta = f", {len(m['tta'])} test-time variants" if len(m.get("tta") or []) > 1 else ""
        rows += (f"<tr><td><a href=\"{escape(rel)}/grid.png\">{escape(rel)}</a></td><td>{escape(str(m.get('split', '')))}{tta}"
                 f"</td><td>{m.get('images', '')}</td>" + "".join(f"<td>{m[k]:.4f}</td>" if isinstance(m.get(k), float) else "<td></td>"
                                                          for k in ("iou", "dice", "accuracy", "miou")) + "</tr>")
    return ("<h2>Evaluations</h2><table><tr><th>folder</th><th>split</th><th>images</th><th>IoU</th><th>Dice</th>"
            f"<th>accuracy</th><th>mIoU</th></tr>{rows}</table>") if rows else ""


def write_report(run_dir: Path, cv: dict, record: dict) -> None:
    from html import escape

    from segfit.io import atomic_path

    rows = "".join(f"<tr><td><a href=\"{escape(f['run'])}/report.html\">{escape(f['run'])}</a></td><td>{f['images']}</td>"
                   f"<td>{f['best_epoch']}</td>" + "".join(f"<td>{f[k]:.4f}</td>" for k in ("iou", "dice", "accuracy", "miou"))
                   + "</tr>" for f in cv["folds"])
    pooled = cv["pooled"]
    rows += ("<tr><th>out-of-fold, pooled</th><td>{}</td><td></td>".format(pooled["images"])
             + "".join(f"<th>{pooled[k]:.4f}</th>" for k in ("iou", "dice", "accuracy", "miou")) + "</tr>")
    rows += ("<tr><th>folds: mean ± sd</th><td></td><td></td>"
             + "".join(f"<td>{cv['mean'][k]:.4f} ± {cv['std'][k]:.4f}</td>" for k in ("iou", "dice", "accuracy", "miou")) + "</tr>")
    unc = record.get("uncertainty")
    note = ("<p>No uncertainty calibration.</p>" if not unc else
            f"<p>Review threshold (predict --uncertainty): none: {escape(unc['how'])}.</p>" if unc["threshold"] is None else
            f"<p>Review threshold (predict --uncertainty): {unc.get('measure', 'mean_uncertainty').replace('_', ' ')} "
            f"above {unc['threshold']:.4f}: {escape(unc['how'])}.</p>")
    note += "".join(f"<p style=\"color:#b3261e\">Warning: {escape(w)}</p>" for w in record.get("warnings", []))
    page = (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>segfit ensemble {escape(run_dir.name)}</title>"
            "<style>body{font-family:sans-serif;margin:2em;color:#1d2430}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccd;padding:4px 10px;text-align:right}</style></head><body>"
            f"<h1>Ensemble of {len(cv['folds'])} folds</h1><p>Each fold is validated on the images the others train on; "
            "the ensemble averages the members' probabilities. Figures: validation images, each image's own "
            "resolution.</p><table><tr><th>fold</th><th>images</th><th>best epoch</th><th>IoU</th><th>Dice</th>"
            f"<th>accuracy</th><th>mIoU</th></tr>{rows}</table>{note}{_evaluations(run_dir)}</body></html>")
    with atomic_path(run_dir / "report.html") as tmp:
        Path(tmp).write_text(page)
