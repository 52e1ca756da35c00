"""Training runs: the ``train()`` API, from options to a finished run folder and its report."""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

from segfit.budget import DEFAULT_BUDGET, REPORT_TAIL_S, budget_cut, epochs_for_budget, parse_duration
from segfit.config import RunConfig
from segfit.errors import SegfitError
from segfit.io import write_json
from segfit.models import check_encoder, check_name
from segfit.fingerprint import check_device
from segfit.options import build_config, resolve, resolve_auto, resume_config
from segfit.planning import plan_for
from segfit.rundir import (
    make_run_dir,
    read_json,
    require_run_dir,
    resolve_checkpoint,
    run_dir_of,
    scored_before_best,
)


@dataclass
class TrainResult:
    """What :func:`train` produced."""

    run_dir: Path
    best_epoch: int
    best: dict[str, float]
    history: Any = field(repr=False)  # pandas.DataFrame
    config: RunConfig = field(repr=False)

    @property
    def best_checkpoint(self) -> Path:
        return self.run_dir / "checkpoints" / "best.ckpt"

    @property
    def last_checkpoint(self) -> Path:
        return self.run_dir / "checkpoints" / "last.ckpt"


SHORT_TRAINING_SHARE = 0.25  # less of the budget left to train in than this: a warning
FEW_TRAINING_IMAGES = 3  # fewer: a warning that the model will learn the images more than their kind


def train(data: str | os.PathLike | None = None, out: str | os.PathLike | None = None, *,
          config: RunConfig | None = None, resume: str | os.PathLike | None = None, overwrite: bool = False,
          name: str | None = None, time: str | float | None = None, plan: bool | str = "auto", verbose: bool = True,
          folds: int | None = None, split: dict | None = None, prepared: tuple | None = None,
          **options: Any) -> TrainResult | Path:
    """Train a segmentation model and write a run folder (``segfit train``).

    Args:
        data: data set folder (layouts are detected; see :func:`segfit.data.layouts.discover`).
        out: run folder (default ``Training_<date>``); an existing one is never overwritten.
        config: a ready :class:`RunConfig` instead of ``data`` and ``options``.
        resume: a checkpoint or run folder to continue from (``epochs`` may be raised).
        overwrite: replace an existing run folder at ``out``.
        name: run name: the run folder becomes ``out/name``.
        time: wall-clock budget for the whole run (``90s``, ``10m``, ``1h`` or seconds; default 10m when
            planning and ``epochs`` is not given): the plan sizes the epochs to end within it.
        plan: fingerprint the data and the machine and plan every option not given (``auto``: unless
            ``model="notebook"``, the teaching path); see :mod:`segfit.planner`.
        verbose: print the layout, a progress bar and a line per epoch.
        folds: K >= 2 trains a K-fold cross-validation ensemble (:mod:`segfit.folds`) and returns its folder.
        split: the split to use (``{"train", "val", "test"}`` names) instead of making one.
        prepared: ``(plan, fingerprint)`` already made (the folds of an ensemble share one plan).
        **options: the command line's options by their long names, e.g. ``epochs=50, size=128,
            channels=1, batch_size=32, model="unet", palette="vineyard"`` (see :func:`segfit.options.build_config`).

    Returns:
        A :class:`TrainResult` with the run folder, best epoch and history.
    """
    start = perf_counter()  # the time budget counts from here: imports, data pass, calibration, report
    options = {k: v for k, v in options.items() if v is not None}
    if folds is not None and folds > 1:
        if resume is not None or config is not None:
            raise SegfitError("--folds trains new runs: it cannot resume or take a ready config",
                              fix="resume one fold's run folder instead (segfit train --resume RUN/fold_0)")
        from segfit.folds import train_folds

        return train_folds(train, data, out, folds, planning=_planning(plan, options), time=time, plan=plan,
                           overwrite=overwrite, name=name, verbose=verbose, **options)
    if folds is not None and folds < 1:
        raise SegfitError(f"--folds must be 1 or more, not {folds}", fix="use e.g. --folds 5 (1: a single model)")
    from segfit.trainer import quiet_libraries

    quiet_libraries()
    import lightning.pytorch as pl

    from segfit.data.datamodule import SegmentationDataModule
    from segfit.module import SegmentationModule
    from segfit.trainer import build_trainer

    verbose = verbose and _env_rank() == 0
    say = print if verbose else (lambda *a, **k: None)
    if name:
        out = Path(out or ".") / name
    budget = None if time is None else parse_duration(time)
    check_device(options.get("accelerator", "auto"), options.get("devices", "auto"), options.get("precision"), say)
    if isinstance(options.get("model"), str) and not options["model"].endswith(".ckpt"):  # named before the plan
        check_name(options["model"])
    if options.get("encoder"):
        check_encoder(options["encoder"])
    planned = fingerprint = None
    if resume is not None:
        ckpt_path, cfg, run_dir, split = _resumed(resume, data, out, options, say)
    else:
        if config is None and data is None:
            raise SegfitError("no data set given", fix="segfit train DATA --out RUN (or -d DATA)")
        ckpt_path, run_dir = None, None
        if config is None and _planning(plan, options):
            budget = budget if budget is not None or "epochs" in options else DEFAULT_BUDGET
            if prepared is None:
                say("Planning from the data and the machine" + (f" (budget {budget:.0f} s)" if budget else ""))
            planned, fingerprint = prepared or plan_for(data, budget, options)
            planned = type(planned).from_dict(planned.to_dict())  # this run's copy: the epochs are sized per run
            cfg = build_config(data, **{**planned.values(), **options})
            cfg.user = sorted(options)
            for line in planned.lines()[1:] if prepared is None else []:  # a shared plan is shown where it was made
                say("  " + line)
        else:
            cfg = resolve(config) if config is not None else build_config(data, **options)
    dm = SegmentationDataModule(cfg.data, cfg.train, split=split)
    dm.prepare(verbose)
    if budget and resume is None:  # with --epochs too: at most that many, fewer when the budget ends first
        cfg.train.most_epochs = cfg.train.epochs if "epochs" in options else None
        _fit_budget(cfg, planned, fingerprint, dm.split, budget - (perf_counter() - start), say, budget)
    if resume is None:
        resolve_auto(cfg, dm.summary)
    pl.seed_everything(cfg.train.seed, workers=True, verbose=False)
    # Built before the run folder exists, so a bad model/encoder/loss name leaves nothing behind.
    module = SegmentationModule(cfg.to_dict(), pretrained=resume is None)
    if resume is None and _env_rank() > 0:
        # Another process of a distributed run: process 0 made the folder and writes the files.
        run_dir = Path(os.environ.get("SEGFIT_RUN_DIR") or out)
    elif resume is None:
        run_dir = make_run_dir(out, overwrite, say)
        os.environ["SEGFIT_RUN_DIR"] = str(run_dir)  # for the processes Lightning starts for DDP
        write_json(run_dir / "config.json", cfg.to_dict())
        write_json(run_dir / "split.json", dm.split)
        if planned is not None:
            write_json(run_dir / "plan.json", planned.to_dict())
            write_json(run_dir / "fingerprint.json", fingerprint)
    if _env_rank() == 0:
        write_json(run_dir / "data.json", dm.summary)
    n = {k: len(dm.split[k]) for k in ("train", "val", "test")}
    say(f"Data: {dm.layout.description}")
    say(f"Split ({dm.split['source']}): {n['train']} train, {n['val']} validation, {n['test']} test")
    if n["train"] < FEW_TRAINING_IMAGES:
        say(f"segfit: warning: only {n['train']} training image{'s' if n['train'] > 1 else ''}: the model learns "
            "these images more than their kind, and its figures say little; label a few more if you can", file=sys.stderr)
    say(f"Run folder: {run_dir}")

    trainer = build_trainer(cfg.train, run_dir, verbose=verbose)
    if trainer.is_global_zero:
        from segfit.record import environment

        write_json(run_dir / "environment.json", environment(dm.layout.samples, cfg.train.seed, trainer))
    fit_start = perf_counter()
    with _sigterm_as_interrupt():
        try:
            trainer.fit(module, datamodule=dm, ckpt_path=str(ckpt_path) if ckpt_path else None, weights_only=True)
        except SystemExit:  # Lightning's graceful Ctrl-C shutdown ends in sys.exit(1)
            if not trainer.interrupted:
                raise
            _interrupted(run_dir, module.history, cfg, n, perf_counter() - fit_start, say)
    if not trainer.is_global_zero:  # under DDP the other processes leave the files to process 0
        return TrainResult(run_dir, 0, {}, None, cfg)
    cut = None
    if cfg.train.max_time:  # the time budget re-sized the epochs as they were timed (or stopped them)
        done = max([int(r["epoch"]) for r in module.history] or [0])
        cut = budget_cut(done, module.cfg.train.epochs, cfg.train.scheduler)  # the epochs as TimeBudget re-sized them
        if done and done != cfg.train.epochs:
            _record_epochs(run_dir, cfg, planned, done)
    # History from the file process 0 wrote: with ddp_spawn, this process did not train.
    rows = module.history or _history_rows(run_dir)
    result = finish_run(run_dir, rows, cfg, n, perf_counter() - fit_start, say)
    if cut:
        say(f"segfit: warning: {cut}", file=sys.stderr)
        summary = read_json(run_dir / "summary.json")
        write_json(run_dir / "summary.json", {**summary, "training_warnings": [cut]})  # kept when the report re-scores
    if cfg.train.report:  # under a time budget, the seed sweep of the report stops in time for the budget's end
        deadline = start + budget - REPORT_TAIL_S if cfg.train.max_time else None
        report(run_dir, refresh=True, verbose=verbose, intro=True, deadline=deadline)
    return result


def _resumed(resume, data, out, options: dict, say):
    """Checkpoint, config, run folder and split of a run to resume."""
    from segfit.checkpoint import load_checkpoint

    ckpt_path = resolve_checkpoint(resume, "last")
    stored = load_checkpoint(ckpt_path)
    cfg, ignored = resume_config(stored["segfit"]["config"], data, **options)
    cfg.train.max_time = None  # a time budget was the first session's
    own = run_dir_of(ckpt_path)
    if out and own is not None and Path(out).resolve() != own.resolve():
        raise SegfitError("a resumed run goes on in its own folder", own,
                          "drop --out (to keep the run as it is, copy its folder and resume the copy)")
    run_dir = own or (Path(out) if out else None)
    if run_dir is None:
        raise SegfitError("cannot tell which run folder this checkpoint belongs to", ckpt_path, "give the run folder with --out")
    split = read_json(run_dir / "split.json")
    done = stored.get("epoch", 0) + 1
    if done >= cfg.train.epochs:
        raise SegfitError(f"the run has trained all its {cfg.train.epochs} epochs already", ckpt_path,
                          f"give --epochs {done + max(5, done // 2)} (say) to train it further")
    for stale in [*run_dir.glob(".*.tmp"), *run_dir.glob("checkpoints/.*.tmp")]:
        stale.unlink(missing_ok=True)  # half-written files of a killed run (the real ones are whole)
    write_json(run_dir / "config.json", cfg.to_dict())
    say(f"Resuming {run_dir} from {ckpt_path.name} (epoch {stored.get('epoch', 0) + 1} done), up to epoch {cfg.train.epochs}")
    if ignored:
        say("Note: a resumed run keeps its own " + ", ".join("--" + k.replace("_", "-") for k in sorted(ignored))
            + " (only epochs, hardware, records and --preload can change)")
    return ckpt_path, cfg, run_dir, split


def _planning(plan, options: dict) -> bool:
    """Plan when asked, or (``auto``) unless the network is the notebook's: ``--model notebook`` is the
    teaching path and keeps its own flags; any other run gets what the user did not say from the plan."""
    if plan in (True, False):
        return plan
    return options.get("model") != "notebook"


def _fit_budget(cfg: RunConfig, planned, fingerprint, split: dict, remaining: float, say, budget: float) -> None:
    """Epochs (and Lightning's hard stop) that fit the time left after the data pass; a warning when that
    left little of the budget to train in."""
    n_train, n_val = len(split["train"]), len(split["val"])
    if planned is not None:
        d, scale = fingerprint["data"], cfg.data.scale or 1.0
        pixels = d["height"]["median"] * d["width"]["median"] * scale**2
        fit = epochs_for_budget(planned, remaining, n_train, n_val, pixels, cfg.train.report)
        if fit.repeats != cfg.train.repeats:
            say(f"  repeats {fit.repeats}  ({planned.entries['repeats']['reason']})")
        cfg.train.epochs, cfg.train.max_time, cfg.train.epoch_batches, cfg.train.repeats = fit[:4]
        cfg.train.budget_epoch_s, cfg.train.budget_report_s = round(fit.epoch_s, 2), round(fit.report_s, 1)
        if cfg.train.most_epochs:
            cfg.train.epochs = min(cfg.train.most_epochs, fit.epochs)
            say(f"  epochs  {cfg.train.epochs}  (--epochs {cfg.train.most_epochs} within --time {budget:.0f} s: about "
                f"{fit.epochs} epochs fit, and training stops when the time is up)")
        else:
            say(f"  epochs  {cfg.train.epochs}  ({planned.entries['epochs']['reason']})")
    else:
        cfg.train.max_time = max(1.0, 0.9 * remaining)
    if cfg.train.max_time < SHORT_TRAINING_SHARE * budget:
        say(f"segfit: warning: only {cfg.train.max_time:.0f} s of the {budget:.0f} s budget are left to train in (planning "
            f"and reading the data took {budget - remaining:.0f} s; validation and the report keep back the rest): the "
            "model will be weak; give a larger --time", file=sys.stderr)


def _record_epochs(run_dir: Path, cfg: RunConfig, planned, epochs: int) -> None:
    planned_epochs, cfg.train.epochs = cfg.train.epochs, epochs
    write_json(run_dir / "config.json", cfg.to_dict())
    if planned is not None:
        entry = planned.entries["epochs"]
        entry["value"] = epochs
        entry["reason"] += f"; re-sized from {planned_epochs} to {epochs} by the measured epoch time"
        write_json(run_dir / "plan.json", planned.to_dict())


def report(run: str | os.PathLike, refresh: bool = False, verbose: bool = True, intro: bool = False,
           deadline: float | None = None) -> Path:
    """(Re)build ``RUN/report.html`` (``segfit report``); returns its path.

    The best checkpoint is scored on the validation split first (``eval_val/``, at the training size)
    when ``refresh`` is set or that has not been done yet; ``deadline`` (``perf_counter()``) bounds the
    seed-level sweep of a model that learns instances.
    """
    from segfit.backends import ENSEMBLE_FILE
    from segfit.report_page import build_report

    if (Path(run) / ENSEMBLE_FILE).is_file():  # a cross-validation ensemble: its folds' table and evaluations
        from segfit.ensemble_page import ensemble_report

        path = ensemble_report(run)
        if verbose:
            print(f"Wrote {path}" + (" (each fold's own report: segfit report RUN/fold_N --refresh)" if refresh else ""))
        return path
    run_dir = require_run_dir(run)
    cfg = RunConfig.from_dict(read_json(run_dir / "config.json"))
    split = read_json(run_dir / "split.json") if (run_dir / "split.json").is_file() else {}
    if split.get("val") and (refresh or not (run_dir / "eval_val" / "metrics.json").is_file()
                             or scored_before_best(run_dir / "eval_val", run_dir)):  # a resumed run's newer best
        from segfit.evaluation import evaluate

        if not (run_dir / "checkpoints" / "best.ckpt").is_file():
            raise SegfitError("the run has no checkpoint: it stopped before its first epoch ended", run_dir,
                              "train it again (segfit train DATA --out ...)")
        if verbose:
            print(f"Report: scoring the best checkpoint on the {len(split['val'])} validation images"
                  if intro else "Evaluating the best checkpoint on the validation split for the report")
        metrics = evaluate(run_dir, split="val", size=cfg.data.size, overlays=False, report=False, verbose=False,
                           calibrate_seeds=True, deadline=deadline)
        if (run_dir / "summary.json").is_file():  # a model that learned nothing says so in its summary too
            import pandas as pd

            from segfit.ensemble import review_calibration
            from segfit.novelty import run_stats_range

            per_image = pd.read_csv(run_dir / "eval_val" / "per_image.csv")
            calibration = review_calibration(per_image, "validation images")
            write_json(run_dir / "summary.json", {**read_json(run_dir / "summary.json"), "warnings": metrics["warnings"],
                                                  "uncertainty": calibration, "inputs": run_stats_range(cfg, split),
                                                  "instances": metrics.get("seed_calibration")})
    path = build_report(run_dir)
    if verbose:
        print(f"Report: {path}" if intro else f"Wrote {path}")
    return path


def _history_rows(run_dir: Path) -> list[dict]:
    import pandas as pd

    path = run_dir / "history.csv"
    return pd.read_csv(path).to_dict("records") if path.is_file() else []


def _env_rank() -> int:
    """This process's rank in a distributed run, from the launcher's environment (0 otherwise)."""
    for var in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 0


_STOPPED_BY: dict[str, int] = {}  # the signal that stopped training, when it was SIGTERM (exit 143, not Ctrl-C's 130)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (a scheduler stopping the job, ``kill``) stops training like Ctrl-C does."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        _STOPPED_BY["signal"] = signum
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupted(run_dir: Path, rows: list[dict], cfg: RunConfig, counts: dict, seconds: float, say) -> None:
    from segfit.errors import Interrupted

    code = 128 + _STOPPED_BY.pop("signal", 2)  # 130 for Ctrl-C, 143 for SIGTERM, as shells report them
    if not rows:
        if not any((run_dir / "checkpoints").glob("*.ckpt")):  # marked, so a next run into this folder replaces it
            write_json(run_dir / "summary.json", {"interrupted": "before the first epoch ended: nothing to resume"})
        raise Interrupted(f"training interrupted before its first epoch ended; nothing to resume ({run_dir}: a next "
                          "run with this --out replaces it)", code)
    finish_run(run_dir, rows, cfg, counts, seconds, say)
    done = rows[-1]["epoch"]
    raise Interrupted(f"training interrupted during epoch {done + 1}; checkpoints/last.ckpt holds epoch {done}. "
                      f"Resume with: segfit train --resume {shlex.quote(str(run_dir))}", code)


def finish_run(run_dir: Path, rows: list[dict], cfg: RunConfig, counts: dict, seconds: float, say) -> TrainResult:
    """Write history.csv, curves, metrics panels and summary.json; report the best epoch."""
    import pandas as pd

    from segfit.viz import plot_class_metrics, plot_curves

    history = pd.DataFrame(rows)  # history.csv itself is written after every epoch (callbacks.RunRecorder)
    if history.empty:
        raise SegfitError("training ended before the first epoch finished", run_dir, "run it again or lower --batch-size")
    best_row = history.loc[history["val_loss"].idxmin()]
    best_epoch = int(best_row["epoch"])
    plot_curves(history, run_dir / "curves.png", best_epoch)
    plot_class_metrics(history, cfg.data.class_names, run_dir / "metrics.png", cfg.data.class_colors)
    best = {k: float(v) for k, v in best_row.items() if k.startswith("val_")}
    previous = read_json(run_dir / "summary.json") if (run_dir / "summary.json").is_file() else {}
    summary = {
        "best_epoch": best_epoch,
        "best": best,
        "epochs": int(history["epoch"].max()),
        "images": counts,
        "seconds": round(float(previous.get("seconds", 0.0)) + seconds, 2),
        "seconds_per_epoch": round(float(history["seconds"].mean()), 3),
        "checkpoints": {"best": "checkpoints/best.ckpt", "last": "checkpoints/last.ckpt"},
    }
    if not cfg.train.report and (run_dir / "data.json").is_file():  # else the report's evaluation says it, exactly
        from segfit.metrics import history_warnings

        present = [f > 0 for f in read_json(run_dir / "data.json")["splits"]["val"]["class_fractions"]]
        summary["warnings"] = history_warnings(best_row.to_dict(), cfg.data.class_names, present, cfg)
    write_json(run_dir / "summary.json", summary)
    say(f"Best epoch: {best_epoch} of {summary['epochs']} (val_loss {best['val_loss']:.4f}, val_iou {best['val_iou']:.4f}, "
        f"val_dice {best['val_dice']:.4f}, val_accuracy {best['val_accuracy']:.4f})")
    say(f"Wrote {run_dir}/: checkpoints/best.ckpt, checkpoints/last.ckpt, history.csv, curves.png, metrics.png, summary.json")
    for line in summary.get("warnings", []):
        say(f"segfit: warning: {line}", file=sys.stderr)
    return TrainResult(run_dir, best_epoch, best, history, cfg)
