"""``report.html``: a run folder as one self-contained page (images inlined, no network access).

The page is rebuilt from the files of the run folder: ``config.json``, ``data.json``,
``history.csv``, ``summary.json``, ``environment.json``, the validation evaluation ``eval_val/``
(written after training, with its gallery of strips) and every evaluation and quantification recorded
in ``outputs.json``. This module only reads those files and writes the page: it never runs a network.
``segfit report RUN`` rebuilds it; ``train``, ``evaluate`` and ``quantify`` keep it current.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import math
import os
import shlex
from pathlib import Path

import numpy as np

from segfit.io import write_text
from segfit.rundir import outputs, read_json_if_any, require_run_dir, scored_before_best
from segfit.viz import FN_COLOR, FP_COLOR


def update_report(run_dir: str | os.PathLike) -> Path | None:
    """Rebuild ``report.html`` after an output was added; a failure is reported, not raised (the
    output it describes is already written). Returns the page, or None when it failed."""
    try:
        return build_report(run_dir)
    except Exception as exc:  # noqa: BLE001 (the page is a view; the figures are already saved)
        print(f"Note: report.html was not updated ({type(exc).__name__}: {exc}); rebuild it with: segfit report {shlex.quote(str(run_dir))}")
        return None


def build_report(run_dir: str | os.PathLike, gallery_size: int = 4) -> Path:
    """Write ``RUN/report.html`` from the files in the run folder and return its path.

    Args:
        run_dir: a run folder (as written by ``segfit train``).
        gallery_size: how many of the best and of the worst validation images to show.
    """
    import pandas as pd

    run_dir = require_run_dir(run_dir)
    config = read_json_if_any(run_dir / "config.json") or {}
    summary = read_json_if_any(run_dir / "summary.json") or {}
    history = pd.read_csv(run_dir / "history.csv") if (run_dir / "history.csv").is_file() else None
    names = config.get("data", {}).get("class_names") or ["background", "foreground"]

    parts = [_header(run_dir, config, summary)]
    parts.append(_data_section(read_json_if_any(run_dir / "data.json"), names, config))
    parts.append(_plan_section(read_json_if_any(run_dir / "plan.json")))
    parts.append(_config_section(config))
    parts.append(_training_section(run_dir, history, summary, names))
    val_dir = run_dir / "eval_val"
    if (val_dir / "metrics.json").is_file():
        parts.append(_evaluation_section(val_dir, names, "Validation (best checkpoint)", grid=False))
        parts.append(_gallery_section(val_dir, gallery_size))
    for folder in outputs(run_dir, "evaluations"):
        if folder.resolve() != val_dir.resolve() and (folder / "metrics.json").is_file():
            metrics = read_json_if_any(folder / "metrics.json") or {}
            split = str(metrics.get("split", "test"))
            title = f"{split.capitalize()} set" + ("" if folder.name == f"eval_{split}" else f" ({folder.name})")
            stale = scored_before_best(folder, run_dir) and Path(str(metrics.get("checkpoint", ""))).name == "best.ckpt"
            parts.append(_evaluation_section(folder, names, title, stale_in=run_dir if stale else None))
    for folder in outputs(run_dir, "quantifications"):
        if (folder / "quantify.json").is_file():
            parts.append(_quantify_section(folder))
    parts.append(_environment_section(read_json_if_any(run_dir / "environment.json"), summary, history))
    title = f"segfit report: {run_dir.name}"
    page = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body><main>\n"
            + "\n".join(p for p in parts if p) + "\n</main></body></html>\n")
    path = run_dir / "report.html"
    write_text(path, page)
    return path


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2430}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:1.6rem;margin:0 0 4px} h2{font-size:1.25rem;margin:32px 0 10px;border-bottom:2px solid #dde2ea;padding-bottom:4px}
h3{font-size:1.02rem;margin:18px 0 8px}
.sub{color:#5b6575;margin:0 0 16px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:14px 0}
.card{background:#fff;border:1px solid #dde2ea;border-radius:8px;padding:10px 14px;min-width:130px}
.card b{display:block;font-size:1.3rem} .card span{color:#5b6575;font-size:.82rem}
table{border-collapse:collapse;background:#fff;font-size:.86rem;margin:6px 0 12px}
th,td{border:1px solid #dde2ea;padding:4px 8px;text-align:right} th{background:#eef1f5} td.l,th.l{text-align:left}
img{max-width:100%;height:auto;background:#fff;border:1px solid #dde2ea;border-radius:4px}
.row{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
figure{margin:0 0 14px} figcaption{font-size:.8rem;color:#5b6575}
.legend span{display:inline-block;width:12px;height:12px;vertical-align:middle;margin:0 4px 0 12px;border-radius:2px}
details{margin:6px 0} pre{background:#fff;border:1px solid #dde2ea;padding:8px;overflow:auto;font-size:.8rem}
.note{color:#5b6575;font-size:.85rem}
.warn{background:#fdecea;border-left:4px solid #c62828;padding:8px 12px;color:#7f1d1d}
"""


def _header(run_dir: Path, config: dict, summary: dict) -> str:
    m = config.get("model", {})
    model = m.get("name", "?") + (f" ({m.get('encoder')})" if m.get("name") != "notebook" else "")
    best = summary.get("best", {})
    cards = [("best epoch", f"{summary.get('best_epoch', '–')} / {summary.get('epochs', '–')}"),
             ("validation loss", _f(best.get("val_loss"))), ("validation IoU", _f(best.get("val_iou"))),
             ("validation mIoU", _f(best.get("val_miou"))), ("training time", _duration(summary.get("seconds")))]
    made = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    warnings = "".join(f"<p class=\"warn\">Warning: {_e(w)}</p>" for w in summary.get("training_warnings", []) + summary.get("warnings", []))
    return (f"<h1>segfit run: {_e(run_dir.name)}</h1><p class=\"sub\">{_e(str(run_dir.resolve()))} · model {_e(model)}"
            f" · report made {made}</p>{warnings}<div class=\"cards\">"
            + "".join(f"<div class=\"card\"><b>{_e(v)}</b><span>{_e(k)}</span></div>" for k, v in cards) + "</div>")


def _plan_section(plan: dict | None) -> str:
    if not plan:
        return ""
    rows = [[key, json.dumps(e["value"]) if not isinstance(e["value"], str) else e["value"], e["source"], e["reason"]]
            for key, e in plan.get("entries", {}).items()]
    budget = f" for a budget of {_duration(plan['budget_s'])}" if plan.get("budget_s") else ""
    notes = "".join(f"<p class=\"note\">{_e(n)}</p>" for n in plan.get("notes", []))
    return (f"<h2>Plan</h2><p class=\"sub\">Chosen from the data's and the machine's fingerprint{_e(budget)} "
            f"(plan.json, fingerprint.json); what the user gave wins.</p>{notes}"
            + _table(["option", "value", "from", "reason"], rows, left=4))


def _data_section(data: dict | None, names: list[str], config: dict) -> str:
    d = config.get("data", {})
    head = f"<h2>Data</h2><p class=\"sub\">{_e(d.get('root', ''))}"
    if data is None:
        return head + "</p><p class=\"note\">No data.json in this run folder (made by an older segfit).</p>"
    resized = f"; resized to {data['resized_to']}×{data['resized_to']} for training" if data.get("resized_to") else ""
    head += f" · {_e(data.get('layout', ''))} · split: {_e(data.get('split_source') or '')}{resized}</p>"
    rows = []
    for split, st in data.get("splits", {}).items():
        sizes = ", ".join(f"{k} ({v})" for k, v in list(st.get("sizes", {}).items())[:3])
        more = len(st.get("sizes", {})) - 3
        sizes += f", {more} more" if more > 0 else ""
        fractions = st.get("class_fractions", [])
        rows.append([split, st.get("images", 0), sizes] + [f"{100 * f:.2f} %" for f in fractions])
    return head + _table(["split", "images", "image sizes (h×w)"] + [f"{n} pixels" for n in names], rows, left=3)


def _config_section(config: dict) -> str:
    rows = [[section, key, json.dumps(value) if not isinstance(value, str) else value]
            for section, values in config.items() if isinstance(values, dict) for key, value in values.items()]
    return ("<h2>Configuration</h2><details><summary>The resolved configuration (config.json)</summary>"
            + _table(["section", "option", "value"], rows, left=3) + "</details>")


def _training_section(run_dir: Path, history, summary: dict, names: list[str]) -> str:
    out = ["<h2>Training</h2><div class=\"row\">"]
    for file, caption in (("curves.png", "Training and validation loss; the best epoch is starred"),
                          ("metrics.png", "Per-class metrics per epoch (dashed: training, solid: validation)")):
        if (run_dir / file).is_file():
            out.append(f"<figure>{_img_file(run_dir / file, caption)}<figcaption>{_e(caption)}</figcaption></figure>")
    out.append("</div>")
    if history is not None and len(history) and summary.get("best_epoch") is not None:
        best = history[history["epoch"] == summary["best_epoch"]]
        if len(best):
            row = best.iloc[0]
            metrics = ("iou", "dice", "precision", "recall", "accuracy")
            table = [[name] + [_f(row.get(f"val_{m}_{name}")) for m in metrics] for name in names]
            out.append(f"<h3>Best epoch {int(summary['best_epoch'])}: validation metrics per class</h3>")
            out.append(_table(["class", *metrics], table))
    return "".join(out)


def _evaluation_section(folder: Path, names: list[str], title: str, grid: bool = True,
                        stale_in: Path | None = None) -> str:
    import pandas as pd

    metrics = read_json_if_any(folder / "metrics.json") or {}
    resolution = metrics.get("resolution")
    res = f"{resolution}×{resolution}" if isinstance(resolution, int) else "original resolution"
    out = [f"<h2>{_e(title)}</h2><p class=\"sub\">{metrics.get('images', '?')} images at {res} · "
           f"{_e(folder.name)}/ · threshold {_e(metrics.get('threshold', ''))}</p>"]
    if stale_in:  # evaluated before a resumed training in that run made a newer best checkpoint
        out.append(f"<p class=\"warn\">These figures score an earlier best checkpoint: training went on since. "
                   f"Score the current one with: segfit evaluate {_e(shlex.quote(str(stale_in)))} --split {_e(metrics.get('split', 'test'))}</p>")
    out.append("<div class=\"cards\">")
    for key, label in (("iou", "IoU (mean over images)"), ("dice", "Dice"), ("accuracy", "pixel accuracy"), ("miou", "mean class IoU")):
        out.append(f"<div class=\"card\"><b>{_e(_f(metrics.get(key)))}</b><span>{label}</span></div>")
    out.append("</div>")
    per_class = metrics.get("per_class", {})
    if per_class:
        cols = ("iou", "dice", "precision", "recall", "accuracy", "coverage_pred", "coverage_true")
        header = ["class", *cols[:5], "area predicted", "area true"]  # mean share of each image's pixels
        out.append(_table(header, [[n] + [_f(v.get(c)) for c in cols] for n, v in per_class.items()]))
    inst = metrics.get("instances")
    if inst:
        out.append(_instances_table(inst))
        if (folder / "sizes.png").is_file():
            out.append(f"<figure>{_img_file(folder / 'sizes.png', 'object sizes')}"
                       "<figcaption>Equivalent diameters: true vs predicted objects</figcaption></figure>")
    out.append(_trust_note(folder, metrics.get("uncertainty") or {}))
    if (folder / "confusion.csv").is_file():
        out.append("<h3>Confusion matrix (pixels; rows: truth, columns: prediction; shade: share of the row)</h3>")
        out.append(_heatmap(pd.read_csv(folder / "confusion.csv")))
    if grid and (folder / "grid.png").is_file():
        out.append(f"<figure>{_img_file(folder / 'grid.png', 'predictions overlaid')}"
                   "<figcaption>Predictions overlaid on images</figcaption></figure>")
    return "".join(out)


def _trust_note(folder: Path, unc: dict) -> str:
    """Does the model know when it is wrong: the correlation of its expected error with the real one, and
    the images it expects to get most wrong (those a person would review first)."""
    import pandas as pd

    rho = unc.get("spearman_expected_error")
    if rho is None or rho != rho or not (folder / "per_image.csv").is_file():
        return ""
    rows = pd.read_csv(folder / "per_image.csv").nlargest(5, "expected_error")
    return (f"<h3>Knowing when it is wrong</h3><p>Spearman correlation of the per-image error (1 − IoU) with the error "
            f"the model expects of itself: {_f(rho)} (with the mean uncertainty: {_f(unc.get('spearman_with_error'))}). "
            "The images it expects to get most wrong:</p>"
            + _table(["image", "expected error", "IoU"], [[r.image, _f(r.expected_error), _f(r.iou)] for r in rows.itertuples()]))


def _instances_table(inst: dict) -> str:
    keys = ("precision", "recall", "f1", "ap50", "map", "count_true", "count_pred", "count_error", "mean_diameter_true",
            "mean_diameter_pred", "diameter_error", "diameter_wasserstein")
    rows = [["all objects"] + [_f(inst.get(k)) for k in keys]]
    if len(inst.get("per_class", {})) > 1:
        rows += [[n] + [_f(v.get(k)) for k in keys] for n, v in inst["per_class"].items()]
    per_image = inst.get("mean_f1_per_image")
    note = "" if per_image is None else f" · F1 per image, averaged: {_f(per_image)}"
    source = f" · predicted objects: {inst['predicted_objects']}" if inst.get("predicted_objects") else ""
    return (f"<h3>Objects (matched at IoU ≥ 0.5; diameters in pixels{_e(note + source)})</h3>"
            + _table(["", "precision", "recall", "F1", "AP50", "mAP 0.5:0.95", "true count", "predicted count", "count error",
                      "mean diameter (true)", "mean diameter (predicted)", "diameter error", "Wasserstein-1"], rows))


def _heatmap(confusion) -> str:
    labels = [str(v) for v in confusion["true"]]
    values = confusion.drop(columns=["true"]).to_numpy(dtype=np.int64)
    cols = [c.removeprefix("pred_") for c in confusion.columns if c != "true"]
    head = "<tr><th class=\"l\">truth \\ prediction</th>" + "".join(f"<th>{_e(c)}</th>" for c in cols) + "</tr>"
    body = []
    for label, row in zip(labels, values):
        total = row.sum() or 1
        cells = []
        for v in row:
            share = v / total
            text_color = "#fff" if share > 0.55 else "#1d2430"
            cells.append(f"<td style=\"background:rgba(31,90,180,{share:.3f});color:{text_color}\">"
                         f"{v:,}<br><small>{100 * share:.1f} %</small></td>")
        body.append(f"<tr><th class=\"l\">{_e(label)}</th>{''.join(cells)}</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _gallery_section(val_dir: Path, n: int) -> str:
    """The best and worst validation images: image, truth, prediction and an error overlay (the strips
    that ``evaluate`` saved in ``gallery/``)."""
    import pandas as pd

    per_image = val_dir / "per_image.csv"
    if not per_image.is_file():
        return ""
    table = pd.read_csv(per_image).sort_values(["iou", "image"], ascending=[False, True])
    if len(table) <= 2 * n:
        picks = [("", table)]
    else:
        picks = [(f"best {n}", table.head(n)), (f"worst {n}", table.tail(n).iloc[::-1])]
    legend = (f"<p class=\"legend note\">Error overlay:<span style=\"background:rgb{FP_COLOR}\"></span>predicted but not "
              f"true (false positive)<span style=\"background:rgb{FN_COLOR}\"></span>true but missed (false negative)</p>")
    out = ["<h3>Validation images, by IoU</h3>", legend]
    for label, rows in picks:
        if label:
            out.append(f"<h3>The {label}</h3>")
        out.append("<table><tr><th class=\"l\">image</th><th>IoU</th><th class=\"l\">image · truth · prediction · errors</th></tr>")
        for _, r in rows.iterrows():
            name = str(r["image"])
            strip = val_dir / "gallery" / f"{name}.png"
            img = _img_file(strip, f"{name}: image, truth, prediction, errors") if strip.is_file() else ""
            out.append(f"<tr><td class=\"l\">{_e(name)}</td><td>{_e(_f(r['iou']))}</td><td class=\"l\">{img}</td></tr>")
        out.append("</table>")
    return "".join(out)


def _quantify_section(folder: Path) -> str:
    import pandas as pd

    q = read_json_if_any(folder / "quantify.json") or {}
    unit = q.get("unit", "px")
    out = [f"<h2>Objects measured</h2><p class=\"sub\">{_e(str(folder))} · {q.get('images', '?')} images"
           + (" · touching objects split" if q.get("split_touching") else "")
           + (f" · objects under {q['min_area']} px dropped" if q.get("min_area") else "") + "</p>"]
    rows = [[name, v.get("objects"), _f(v.get("mean_diameter")), _f(v.get("median_diameter")), _pct(v.get("mean_coverage"))]
            for name, v in q.get("classes", {}).items()]
    out.append(_table(["class", "objects", f"mean diameter ({unit})", f"median diameter ({unit})", "mean coverage"], rows))
    if (folder / "size_distribution.png").is_file():
        out.append(f"<figure>{_img_file(folder / 'size_distribution.png', 'size distribution')}"
                   "<figcaption>Equivalent diameters per class</figcaption></figure>")
    if (folder / "images.csv").is_file():
        table = pd.read_csv(folder / "images.csv")
        shown = table.head(50)
        out.append(f"<details><summary>Per image (images.csv, {len(table)} rows"
                   + (", first 50 shown" if len(table) > 50 else "") + ")</summary>"
                   + _table(list(shown.columns), [[_f(v) if isinstance(v, float) else v for v in r] for r in shown.itertuples(index=False)], left=2)
                   + "</details>")
    return "".join(out)


def _environment_section(env: dict | None, summary: dict, history) -> str:
    out = ["<h2>Timing and environment</h2>"]
    rows = [["training time", _duration(summary.get("seconds"))],
            ["seconds per epoch (mean)", _f(summary.get("seconds_per_epoch"))]]
    if history is not None and "data_seconds" in history and history["seconds"].sum() > 0:
        rows.append(["time waiting for data", _pct(float(history["data_seconds"].sum() / history["seconds"].sum()))])
    if env:
        rows.append(["seed", env.get("seed")])
        for key, value in env.get("device", {}).items():
            rows.append([f"device: {key}", ", ".join(value) if isinstance(value, list) else value])
        for key, value in env.get("versions", {}).items():
            rows.append([key, value])
        data = env.get("data", {})
        if data:
            rows.append(["data fingerprint", f"{data.get('files')} files, sha256 {str(data.get('sha256', ''))[:16]}…"])
    return "".join(out) + _table(["", ""], rows, left=2)


# ---------------------------------------------------------------------------------------------
# Small helpers


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _f(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f"{int(value):,}"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v):
        return "–"
    return f"{v:,.0f}" if v == int(v) and abs(v) >= 1000 else f"{v:.4g}"


def _pct(value) -> str:
    return "–" if value is None or value != value else f"{100 * float(value):.2f} %"


def _duration(seconds) -> str:
    if seconds is None:
        return "–"
    s = float(seconds)
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def _table(header: list[str], rows: list[list], left: int = 1) -> str:
    """An HTML table; the first ``left`` columns are left-aligned (labels)."""
    def cell(tag, i, v):
        cls = " class=\"l\"" if i < left else ""
        return f"<{tag}{cls}>{_e(v)}</{tag}>"

    head = "<tr>" + "".join(cell("th", i, h) for i, h in enumerate(header)) + "</tr>"
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table>{head}{body}</table>"


def _img_file(path: Path, alt: str) -> str:
    return f"<img alt=\"{_e(alt)}\" src=\"data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}\">"
