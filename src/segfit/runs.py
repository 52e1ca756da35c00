"""Training runs: config from options, the run folder, the Trainer and the ``train()`` API."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segfit.config import IMAGENET_MEAN, IMAGENET_STD, DataConfig, ModelConfig, RunConfig, TrainConfig
from segfit.errors import SegfitError
from segfit.io import write_csv, write_json

LOGGERS = ("csv", "tensorboard", "none")

# Option names that differ from the config field they set.
ALIASES = {"model": ("model", "name"), "classes": ("data", "num_classes"), "encoder": ("model", "encoder")}


def quiet_libraries() -> None:
    """Silence library chatter (tips, device banners, deprecation warnings); keep real problems."""
    import lightning.pytorch  # noqa: F401  (it sets its own log level on import)

    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    for pattern in (".*does not have many workers.*", ".*number of training batches.*", ".*LeafSpec.*",
                    ".*sync_dist.*", ".*litlogger.*", ".*torch.tensor results.*", ".*Checkpoint directory.*exists.*",
                    ".*ShiftScaleRotate.*", ".*is deprecated.*", ".*weights_only.*", ".*srun.*"):
        warnings.filterwarnings("ignore", message=pattern)


def build_config(data: str | os.PathLike | None = None, **options: Any) -> RunConfig:
    """A resolved :class:`RunConfig` from a data folder and flat options.

    Options are config field names (``epochs=30``, ``size=128``, ``lr=1e-3``, ``channels=1``) plus
    ``model`` (the network name), ``classes`` and ``encoder``; ``seed`` sets both the split and the
    initialisation. Unknown names raise a ``TypeError`` listing the valid ones.
    """
    cfg = RunConfig()
    sections = {"data": cfg.data, "model": cfg.model, "train": cfg.train}
    fields = {name: section for section, obj in sections.items() for name in (f.name for f in dataclasses.fields(obj))}
    for key, value in options.items():
        if value is None:
            continue
        if key in ALIASES:
            section, name = ALIASES[key]
            setattr(sections[section], name, value)
        elif key == "seed":
            cfg.data.seed = cfg.train.seed = value
        elif key in fields:
            setattr(sections[fields[key]], key, value)
        else:
            valid = sorted(set(fields) | set(ALIASES))
            raise TypeError(f"unknown option {key!r}; valid options: {', '.join(valid)}")
    if data is not None:
        cfg.data.root = str(Path(data).resolve())
    return resolve(cfg)


def resolve(cfg: RunConfig) -> RunConfig:
    """Fill derived values: model channels/classes from the data, normalisation, validation of names."""
    cfg.data.resolve()
    cfg.model.in_channels, cfg.model.num_classes = cfg.data.channels, cfg.data.num_classes
    if cfg.data.mean is None and cfg.model.name != "notebook" and cfg.data.channels == 3:
        cfg.data.mean, cfg.data.std = list(IMAGENET_MEAN), list(IMAGENET_STD)
    if cfg.train.epochs < 1 or cfg.train.batch_size < 1:
        raise SegfitError("--epochs and --batch-size must be at least 1", fix="use e.g. --epochs 20 --batch-size 16")
    if cfg.train.lr <= 0:
        raise SegfitError(f"--lr must be positive, got {cfg.train.lr}", fix="use e.g. --lr 1e-3")
    if cfg.train.logger not in LOGGERS:
        raise SegfitError(f"unknown logger {cfg.train.logger!r}", fix=f"use one of {', '.join(LOGGERS)}")
    return cfg


def make_run_dir(out: str | os.PathLike | None, overwrite: bool = False) -> Path:
    """Create the run folder. An existing non-empty folder is never mixed into: a suffixed new one
    is made instead, unless ``overwrite`` (which replaces a previous segfit run only)."""
    out = Path(out or f"Training_{datetime.datetime.now():%Y-%m-%d_%H-%M-%S}")
    if out.exists() and not out.is_dir():
        raise SegfitError("output path is a file", out, "give a folder name with --out")
    if out.is_dir() and any(out.iterdir()):
        if overwrite:
            if not (out / "config.json").is_file():
                raise SegfitError("--overwrite only replaces a segfit run folder, and this one holds other files", out,
                                  "choose another --out")
            shutil.rmtree(out)
        else:
            n = 2
            while Path(f"{out}-{n}").exists():
                n += 1
            out = Path(f"{out}-{n}")
    out.mkdir(parents=True, exist_ok=True)
    return out


@dataclass
class TrainResult:
    """What :func:`train` produced."""

    run_dir: Path
    best_epoch: int
    best: dict[str, float]
    history: Any  # pandas.DataFrame
    config: RunConfig

    @property
    def best_checkpoint(self) -> Path:
        return self.run_dir / "checkpoints" / "best.ckpt"

    @property
    def last_checkpoint(self) -> Path:
        return self.run_dir / "checkpoints" / "last.ckpt"


def train(data: str | os.PathLike | None = None, out: str | os.PathLike | None = None, *,
          config: RunConfig | None = None, resume: str | os.PathLike | None = None, overwrite: bool = False,
          verbose: bool = True, **options: Any) -> TrainResult:
    """Train a segmentation model and write a run folder.

    Args:
        data: data set folder (layouts are detected; see :func:`segfit.data.formats.discover`).
        out: run folder (default ``Training_<date>``); an existing one is never overwritten.
        config: a ready :class:`RunConfig` instead of ``data`` and ``options``.
        resume: a checkpoint or run folder to continue from (``epochs`` may be raised).
        overwrite: replace an existing run folder at ``out``.
        verbose: print the layout, a progress bar and a line per epoch.
        **options: config fields, e.g. ``epochs=50, size=128, channels=1, batch_size=32``.

    Returns:
        A :class:`TrainResult` with the run folder, best epoch and history.
    """
    import lightning.pytorch as pl

    quiet_libraries()

    from segfit.checkpoint import load_checkpoint, resolve_checkpoint, run_dir_of
    import numpy as np

    from segfit.data.datamodule import SegmentationDataModule
    from segfit.losses import inverse_frequency_weights
    from segfit.module import SegmentationModule

    verbose = verbose and _env_rank() == 0
    say = print if verbose else (lambda *a, **k: None)
    ckpt_path = None
    if resume is not None:
        ckpt_path = resolve_checkpoint(resume, "last")
        stored = load_checkpoint(ckpt_path)
        cfg = RunConfig.from_dict(stored["segfit"]["config"])
        for key in ("epochs", "save_every", "num_workers", "accelerator", "devices", "num_nodes", "strategy", "precision",
                    "logger", "report"):
            if options.get(key) is not None:
                setattr(cfg.train, key, options[key])
        if options.get("preload") is not None:
            cfg.data.preload = options["preload"]
        if data is not None:
            cfg.data.root = str(Path(data).resolve())
        run_dir = Path(out) if out else run_dir_of(ckpt_path)
        if run_dir is None:
            raise SegfitError("cannot tell which run folder this checkpoint belongs to", ckpt_path, "give the run folder with --out")
        split = _read_json(run_dir / "split.json")
        for stale in [*run_dir.glob(".*.tmp"), *run_dir.glob("checkpoints/.*.tmp")]:
            stale.unlink(missing_ok=True)  # half-written files of a killed run (the real ones are whole)
        write_json(run_dir / "config.json", cfg.to_dict())
        say(f"Resuming {run_dir} from {ckpt_path.name} (epoch {stored.get('epoch', 0) + 1} done), up to epoch {cfg.train.epochs}")
    else:
        cfg = resolve(config) if config is not None else build_config(data, **options)
        split = None
    dm = SegmentationDataModule(cfg.data, cfg.train, split=split)
    dm.prepare(verbose)
    if resume is None:
        if cfg.train.class_weights == "auto" or (cfg.train.class_weights is None and cfg.data.num_classes > 2):
            # the pixel counts of the data pass that dm.prepare just made (no second pass over the masks)
            counts = np.asarray(dm.summary["splits"]["train"]["class_pixels"])
            cfg.train.class_weights = inverse_frequency_weights(counts)
    pl.seed_everything(cfg.train.seed, workers=True, verbose=False)
    # Built before the run folder exists, so a bad model/encoder/loss name leaves nothing behind.
    module = SegmentationModule(cfg.to_dict(), pretrained=resume is None)
    if resume is None and _env_rank() > 0:
        # Another process of a distributed run: process 0 made the folder and writes the files.
        run_dir = Path(os.environ.get("SEGFIT_RUN_DIR") or out)
    elif resume is None:
        run_dir = make_run_dir(out, overwrite)
        os.environ["SEGFIT_RUN_DIR"] = str(run_dir)  # for the processes Lightning starts for DDP
        write_json(run_dir / "config.json", cfg.to_dict())
        write_json(run_dir / "split.json", dm.split)
    if _env_rank() == 0:
        write_json(run_dir / "data.json", dm.summary)
    n = {k: len(dm.split[k]) for k in ("train", "val", "test")}
    say(f"Data: {dm.layout.description}")
    say(f"Split ({dm.split['source']}): {n['train']} train, {n['val']} validation, {n['test']} test")
    say(f"Run folder: {run_dir}")

    trainer = build_trainer(cfg.train, run_dir, verbose=verbose)
    if trainer.is_global_zero:
        from segfit.record import environment

        write_json(run_dir / "environment.json", environment(dm.layout.samples, cfg.train.seed, trainer))
    start = time.perf_counter()
    with _sigterm_as_interrupt():
        try:
            trainer.fit(module, datamodule=dm, ckpt_path=str(ckpt_path) if ckpt_path else None, weights_only=True)
        except SystemExit:  # Lightning's graceful Ctrl-C shutdown ends in sys.exit(1)
            if not trainer.interrupted:
                raise
            _interrupted(run_dir, module.history, cfg, n, time.perf_counter() - start, say)
    if not trainer.is_global_zero:  # under DDP the other processes leave the files to process 0
        return TrainResult(run_dir, 0, {}, None, cfg)
    # History from the file process 0 wrote: with ddp_spawn, this process did not train.
    rows = module.history or _history_rows(run_dir)
    result = finish_run(run_dir, rows, cfg, n, time.perf_counter() - start, say)
    if cfg.train.report:
        from segfit.report import report_after_training

        report_after_training(run_dir, cfg.data.size, verbose=verbose)
    return result


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


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (a scheduler stopping the job, ``kill``) stops training like Ctrl-C does."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupted(run_dir: Path, rows: list[dict], cfg: RunConfig, counts: dict, seconds: float, say) -> None:
    from segfit.errors import Interrupted

    if not rows:
        raise Interrupted(f"training interrupted before its first epoch ended; nothing to resume ({run_dir})")
    finish_run(run_dir, rows, cfg, counts, seconds, say)
    done = rows[-1]["epoch"]
    raise Interrupted(f"training interrupted during epoch {done + 1}; checkpoints/last.ckpt holds epoch {done}. "
                      f"Resume with: segfit train --resume {run_dir}")


def finish_run(run_dir: Path, rows: list[dict], cfg: RunConfig, counts: dict, seconds: float, say) -> TrainResult:
    """Write history.csv, curves, metrics panels and summary.json; report the best epoch."""
    import pandas as pd

    from segfit.viz import plot_class_metrics, plot_curves

    history = pd.DataFrame(rows)
    if history.empty:
        raise SegfitError("training ended before the first epoch finished", run_dir, "run it again or lower --batch-size")
    best_row = history.loc[history["val_loss"].idxmin()]
    best_epoch = int(best_row["epoch"])
    write_csv(run_dir / "history.csv", history)
    plot_curves(history, run_dir / "curves.png", best_epoch)
    plot_class_metrics(history, cfg.data.class_names, run_dir / "metrics.png")
    best = {k: float(v) for k, v in best_row.items() if k.startswith("val_")}
    previous = _read_json(run_dir / "summary.json") if (run_dir / "summary.json").is_file() else {}
    summary = {
        "best_epoch": best_epoch,
        "best": best,
        "epochs": int(history["epoch"].max()),
        "images": counts,
        "seconds": round(float(previous.get("seconds", 0.0)) + seconds, 2),
        "seconds_per_epoch": round(float(history["seconds"].mean()), 3),
        "checkpoints": {"best": "checkpoints/best.ckpt", "last": "checkpoints/last.ckpt"},
    }
    write_json(run_dir / "summary.json", summary)
    say(f"Best epoch: {best_epoch} of {summary['epochs']} (val_loss {best['val_loss']:.4f}, val_iou {best['val_iou']:.4f}, "
        f"val_dice {best['val_dice']:.4f}, val_accuracy {best['val_accuracy']:.4f})")
    say(f"Wrote {run_dir}/: checkpoints/best.ckpt, checkpoints/last.ckpt, history.csv, curves.png, metrics.png, summary.json")
    return TrainResult(run_dir, best_epoch, best, history, cfg)


def _read_json(path: Path) -> dict:
    import json

    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SegfitError("file missing from the run folder", path, "give a complete run folder") from None
    except ValueError:
        raise SegfitError("file is not valid JSON", path, "restore it or start a new run") from None


def build_trainer(t: TrainConfig, run_dir: Path, verbose: bool = True):
    """A Lightning Trainer with segfit's checkpoints, progress and epoch lines."""
    import lightning.pytorch as pl
    from segfit.callbacks import ProgressBar, RunCheckpoint, RunRecorder
    from segfit.checkpoint import AtomicCheckpointIO

    ckpts = run_dir / "checkpoints"
    show_bar = verbose and sys.stderr.isatty()
    callbacks = [
        RunRecorder(run_dir, t.epochs, verbose),
        ProgressBar() if show_bar else None,
        RunCheckpoint("best", dirpath=ckpts, filename="best", monitor="val_loss", mode="min", save_top_k=1,
                        enable_version_counter=False, auto_insert_metric_name=False),
        # Every epoch (save_last would only write when the best checkpoint is written too).
        RunCheckpoint("last", dirpath=ckpts, filename="last", monitor=None, save_top_k=1,
                        enable_version_counter=False, auto_insert_metric_name=False),
    ]
    if t.save_every > 0:
        callbacks.append(RunCheckpoint("every", dirpath=ckpts, filename="epoch_{ep:.0f}", every_n_epochs=t.save_every,
                                         save_top_k=-1, auto_insert_metric_name=False, enable_version_counter=False))
    devices: Any = int(t.devices) if str(t.devices).isdigit() else t.devices
    return pl.Trainer(
        default_root_dir=run_dir, max_epochs=t.epochs, accelerator=t.accelerator, devices=devices,
        num_nodes=t.num_nodes, strategy=t.strategy, precision=t.precision, deterministic=t.deterministic,
        logger=create_logger(t.logger, run_dir), callbacks=[c for c in callbacks if c is not None], enable_model_summary=False,
        use_distributed_sampler=False,  # segfit's samplers shard by rank themselves (no repeated val images)
        enable_progress_bar=show_bar, num_sanity_val_steps=0, plugins=[AtomicCheckpointIO()],
    )


def create_logger(name: str, run_dir: Path):
    """Lightning's CSV or TensorBoard logger, writing to ``RUN/logs/version_N/`` (a new version on
    each resume, so earlier logs are kept), or ``False`` for ``none``."""
    if name == "none":
        return False
    if name == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(run_dir, name="logs")
    if name == "tensorboard":
        import importlib.util

        if importlib.util.find_spec("tensorboard") is None and importlib.util.find_spec("tensorboardX") is None:
            raise SegfitError("--logger tensorboard needs the tensorboard package", fix="pip install tensorboard, or use --logger csv")
        from lightning.pytorch.loggers import TensorBoardLogger

        return TensorBoardLogger(run_dir, name="logs", default_hp_metric=False)
    raise SegfitError(f"unknown logger {name!r}", fix=f"use one of {', '.join(LOGGERS)}")
