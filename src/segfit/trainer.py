"""The Lightning Trainer of a run: callbacks, checkpoints, loggers, and quiet libraries.

:data:`LOGGERS` is the table of logger names; Lightning loads only when a trainer is built.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Any

from segfit.config import TrainConfig
from segfit.errors import SegfitError


def _csv_logger(run_dir: Path):
    from lightning.pytorch.loggers import CSVLogger

    return CSVLogger(run_dir, name="logs")


def _tensorboard_logger(run_dir: Path):
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None and importlib.util.find_spec("tensorboardX") is None:
        raise SegfitError("--logger tensorboard needs the tensorboard package", fix="pip install tensorboard, or use --logger csv")
    from lightning.pytorch.loggers import TensorBoardLogger

    return TensorBoardLogger(run_dir, name="logs", default_hp_metric=False)


# name -> builder(run folder); each writes to RUN/logs/version_N/ (a new version on each resume).
LOGGERS = {"csv": _csv_logger, "tensorboard": _tensorboard_logger, "none": None}


def create_logger(name: str, run_dir: Path):
    """Lightning's logger called ``name``, or ``False`` for ``none``."""
    if name not in LOGGERS:
        raise SegfitError(f"unknown logger {name!r}", fix=f"use one of {', '.join(LOGGERS)}")
    build = LOGGERS[name]
    return False if build is None else build(run_dir)


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


def build_trainer(t: TrainConfig, run_dir: Path, verbose: bool = True):
    """A Lightning Trainer with segfit's checkpoints, progress and epoch lines."""
    import lightning.pytorch as pl
    from segfit.callbacks import AtomicCheckpointIO, ProgressBar, RunCheckpoint, RunRecorder, TimeBudget

    ckpts = run_dir / "checkpoints"
    show_bar = verbose and sys.stderr.isatty()
    recorder = RunRecorder(run_dir, t.epochs, verbose)
    callbacks = [
        recorder,
        TimeBudget(t.max_time, recorder, t.most_epochs, t.budget_epoch_s, t.budget_report_s) if t.max_time else None,
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
        max_time=None if t.max_time is None else {"seconds": max(1, int(t.max_time))},
        limit_train_batches=t.epoch_batches or None,
    )
