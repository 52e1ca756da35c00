"""A run folder: where it is made, which checkpoint a path means, and its record of outputs.

``segfit train`` writes a run folder (``config.json``, ``split.json``, ``checkpoints/``, ...).
Evaluations and quantifications of its model are recorded in ``outputs.json``, which the report reads.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
from pathlib import Path

from segfit.errors import SegfitError, require
from segfit.io import write_json

OUTPUT_KINDS = ("evaluations", "quantifications")


def make_run_dir(out: str | os.PathLike | None, overwrite: bool = False, say=print) -> Path:
    """Create the run folder. An existing non-empty folder is never mixed into: a suffixed new one
    is made instead (and said), unless ``overwrite`` (which replaces a previous segfit run only)."""
    out = Path(out or f"Training_{datetime.datetime.now():%Y-%m-%d_%H-%M-%S}")
    if out.exists() and not out.is_dir():
        raise SegfitError("output path is a file", out, "give a folder name with --out")
    if out.is_dir() and any(out.iterdir()) and _unfinished(out):
        say(f"{out} holds an earlier run that stopped before its first checkpoint (nothing to resume): replaced")
        shutil.rmtree(out)
    if out.is_dir() and any(out.iterdir()):
        if overwrite:
            if not ((out / "config.json").is_file() or (out / "ensemble.json").is_file()):
                raise SegfitError("--overwrite only replaces a segfit run folder, and this one holds other files", out,
                                  "choose another --out")
            if others := foreign_entries(out):
                raise SegfitError(f"--overwrite would delete files segfit did not write ({', '.join(others[:3])}"
                                  + (", ..." if len(others) > 3 else "") + ")", out, "move them out of the run folder first, "
                                  "or choose another --out")
            shutil.rmtree(out)
        else:
            n = 2
            while Path(f"{out}-{n}").exists():
                n += 1
            what = "an earlier run" if (out / "config.json").is_file() or (out / "ensemble.json").is_file() else "other files"
            say(f"{out} holds {what}, left as it is: this run goes to {out}-{n}"
                + (" (--overwrite replaces the earlier run)" if what == "an earlier run" else ""))
            out = Path(f"{out}-{n}")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _unfinished(out: Path) -> bool:
    """A run folder (not an ensemble's) holding nothing but segfit's files and no checkpoint, marked as stopped
    (Ctrl-C) before its first epoch ended (a run still in its first epoch is not marked)."""
    summary = read_json_if_any(out / "summary.json") if (out / "summary.json").is_file() else None
    return (isinstance(summary, dict) and "interrupted" in summary and not (out / "ensemble.json").exists()
            and not any((out / "checkpoints").glob("*.ckpt")) and not foreign_entries(out)
            and not any(p.is_dir() and p.name.startswith(RUN_PATTERNS) for p in out.iterdir()))


# What a run folder (or an ensemble's) holds of segfit's making: --overwrite deletes these only.
RUN_ENTRIES = {"config.json", "split.json", "plan.json", "fingerprint.json", "environment.json", "data.json",
               "summary.json", "history.csv", "curves.png", "metrics.png", "checkpoints", "logs", "report.html",
               "outputs.json", "ensemble.json", "cv_metrics.json"}
RUN_PATTERNS = ("eval_", "fold_")


def foreign_entries(run: Path) -> list[str]:
    """The entries of the run folder ``run`` that segfit did not write there (a user's notes, analyses): the
    names not in :data:`RUN_ENTRIES`, not ``eval_*``/``fold_*`` folders, not output folders segfit made."""
    return sorted(p.name + ("/" if p.is_dir() else "") for p in run.iterdir()
                  if p.name not in RUN_ENTRIES and not (p.is_dir() and p.name.startswith(RUN_PATTERNS))
                  and not (p / OUTPUT_MARK).is_file())


OUTPUT_MARK = ".segfit"  # in every folder of outputs segfit makes: it may write there again


def output_dir(out: str | os.PathLike, say=print, create: bool = True) -> Path:
    """The folder a command writes its outputs into (``predict``, ``quantify``, ``evaluate --out``):
    made when missing; one that segfit made before (it holds ``.segfit``) is written into again, a new
    prediction replacing the previous one; a folder holding anything else is never written into: ``OUT-2``
    (``-3``, ...) is made instead, and said, so nothing of the user's is overwritten. ``create=False``
    only chooses the folder (a command that may still fail on its inputs makes it when it writes)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SegfitError("output path is a file", out, "give a folder name with --out")
    if out.is_dir() and any(out.iterdir()) and not (out / OUTPUT_MARK).is_file():
        n = 2
        while Path(f"{out}-{n}").exists() and not (Path(f"{out}-{n}") / OUTPUT_MARK).is_file():
            n += 1
        say(f"{out} holds other files: writing to {out}-{n} instead")
        out = Path(f"{out}-{n}")
    if not create:
        return out
    out.mkdir(parents=True, exist_ok=True)
    (out / OUTPUT_MARK).write_text("segfit writes its outputs here (it may replace them when run again)\n")
    return out


def previous_outputs(out: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """The files an earlier ``predict`` wrote into ``out`` (a folder segfit made): each image's ``NAME.png``
    and its maps (``NAME<suffix>.png``), found by its overlay, which every prediction writes."""
    found = []
    for overlay in out.glob("*_overlay.png"):
        stem = overlay.name[: -len("_overlay.png")]
        found += [p for p in (out / f"{stem}.png", *(out / f"{stem}{s}.png" for s in suffixes)) if p.is_file()]
    return found


def remove_stale(previous: list[Path], written: list[Path], made: tuple[str, ...]) -> list[Path]:
    """Remove the earlier prediction's files that this one (masks ``written``, maps ``NAME<made>.png``) did not
    write again: images not predicted again, maps it does not make. Returns them."""
    kept = {p.name for p in written} | {f"{p.stem}{s}.png" for p in written for s in made}
    stale = [p for p in previous if p.name not in kept]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def new_file(path: str | os.PathLike, say=print) -> Path:
    """``path``, or ``NAME-2.ext`` (``-3``, ...) when a file is there already: never overwritten."""
    path = Path(path)
    n = 2
    target = path
    while target.exists():
        target = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    if target != path:
        say(f"{path} exists: writing to {target} instead")
    return target


def require_run_dir(run: str | os.PathLike) -> Path:
    """``run`` when it is a run folder (it has ``config.json``); else a clear error."""
    run = Path(run)
    if not (run / "config.json").is_file():
        raise SegfitError("not a run folder (no config.json)", run, "give the folder that segfit train wrote")
    return run


def resolve_checkpoint(path: str | os.PathLike, which: str = "best") -> Path:
    """A checkpoint file, or ``RUN/checkpoints/<which>.ckpt`` for a run folder."""
    path = Path(path)
    if path.is_dir():
        candidate = path / "checkpoints" / f"{which}.ckpt"
        if not candidate.is_file() and (path / "config.json").is_file() and not any((path / "checkpoints").glob("*.ckpt")):
            raise SegfitError("the run has no checkpoint: it stopped before its first epoch ended", path,
                              "train it again (segfit train DATA --out ...)")
        if not candidate.is_file():
            raise SegfitError(f"run folder has no checkpoints/{which}.ckpt", path, "give a finished run folder or a .ckpt file")
        return candidate
    require(path, "checkpoint or run folder")
    return path


def run_dir_of(checkpoint: Path) -> Path | None:
    """The run folder a checkpoint lives in (``RUN/checkpoints/x.ckpt``), if it looks like one."""
    parent = checkpoint.resolve().parent
    if parent.name == "checkpoints" and (parent.parent / "config.json").is_file():
        return parent.parent
    return None


def run_dir_of_model(path: str | os.PathLike | None) -> Path | None:
    """The run folder of a model file, if it is a checkpoint inside one (exported files have none)."""
    return run_dir_of(Path(path)) if path is not None and str(path).endswith(".ckpt") else None


def read_json(path: str | os.PathLike) -> dict:
    """A JSON file of the run folder; a clear error when it is missing or damaged."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SegfitError("file missing from the run folder", path, "give a complete run folder") from None
    except ValueError:
        raise SegfitError("file is not valid JSON", path, "restore it or start a new run") from None


def read_json_if_any(path: str | os.PathLike) -> dict | None:
    """A JSON file's content, or None when it is missing or damaged (for optional records)."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, ValueError):
        return None


def record_output(run_dir: str | os.PathLike, kind: str, path: str | os.PathLike) -> None:
    """Record an output folder (``kind``: ``evaluations`` or ``quantifications``) in the run's
    ``outputs.json`` (relative to the run folder when inside it), last written last."""
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"unknown output kind {kind!r}; use one of {', '.join(OUTPUT_KINDS)}")
    run_dir = Path(run_dir)
    record = read_json_if_any(run_dir / "outputs.json") or {}
    target = Path(path).resolve()
    try:
        entry = str(target.relative_to(run_dir.resolve()))
    except ValueError:
        entry = str(target)
    record[kind] = [e for e in record.get(kind, []) if e != entry] + [entry]
    write_json(run_dir / "outputs.json", record)


def outputs(run_dir: str | os.PathLike, kind: str) -> list[Path]:
    """The recorded output folders of one kind, as paths."""
    run_dir = Path(run_dir)
    entries = (read_json_if_any(run_dir / "outputs.json") or {}).get(kind, [])
    return [Path(e) if Path(e).is_absolute() else run_dir / e for e in entries]


def scored_before_best(folder: str | os.PathLike, run_dir: str | os.PathLike) -> bool:
    """Whether the evaluation in ``folder`` scored the run's best checkpoint before training (resumed) replaced
    it: its ``metrics.json`` is older than ``checkpoints/best.ckpt``."""
    metrics, best = Path(folder) / "metrics.json", Path(run_dir) / "checkpoints" / "best.ckpt"
    return metrics.is_file() and best.is_file() and metrics.stat().st_mtime < best.stat().st_mtime
