"""Lightning plug-ins: the per-epoch line and history.csv kept current while training runs, the
progress bar, named checkpoints, and atomic, safe checkpoint files."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.plugins.io import TorchCheckpointIO

from segfit.checkpoint import load_checkpoint
from segfit.io import atomic_path, write_csv


class RunRecorder(pl.Callback):
    """After each epoch's validation: rewrite ``history.csv`` (so a crash loses nothing) and print
    one line with the losses, IoU, mean class IoU and the epoch's time."""

    def __init__(self, run_dir: Path, epochs: int, verbose: bool = True):
        self.run_dir, self.epochs, self.verbose = Path(run_dir), epochs, verbose
        self.budgeted = False  # a time budget sizes the epochs as it goes: their count is an estimate (~N)

    def on_validation_end(self, trainer: pl.Trainer, module) -> None:
        if trainer.sanity_checking or not module.history or not trainer.is_global_zero:
            return
        import pandas as pd

        write_csv(self.run_dir / "history.csv", pd.DataFrame(module.history))
        row = module.history[-1]
        if not self.verbose:
            return
        earlier = [r["val_loss"] for r in module.history[:-1]]
        mark = "  *best*" if not earlier or row["val_loss"] < min(earlier) else ""
        of = f"~{self.epochs}" if self.budgeted else str(self.epochs)  # the budget may still add or drop epochs
        line = (f"epoch {row['epoch']}/{of}  train_loss {row['train_loss']:.4f}  val_loss {row['val_loss']:.4f}  "
                f"val_iou {row['val_iou']:.4f}  mIoU {row['val_miou']:.4f}  {row['seconds']:.1f} s "
                f"(data {100 * row.get('data_seconds', 0) / max(row['seconds'], 1e-9):.0f} %){mark}")
        bar = trainer.progress_bar_callback
        if bar is not None and hasattr(bar, "print"):
            bar.print(line)
        else:
            print(line, flush=True)


class TimeBudget(pl.Callback):
    """Fits the epochs to a time budget: at the end of every epoch the measured time per epoch (training
    and validation; the first epoch, with its warm-up, only until the second is timed) says how many
    epochs fit in ``seconds``; the epoch count and a one-cycle schedule follow, so training ends annealed
    when the time is up (Lightning's ``max_time`` is the hard stop). Deciding at the end of an epoch, a
    plan that was too short (a calibration slowed by another job) grows as well as shrinks.

    A machine that runs slower than calibrated (another job started) makes the report after training slower
    too: with the calibrated epoch (``epoch_s``) and report (``report_s``) seconds, training ends that much
    earlier, so the whole command still ends within its budget."""

    SLOWER = 1.1  # epochs this much slower than calibrated keep back more time for the report
    MOST_SLOWDOWN = 4.0  # ... up to this slowdown (the report's reserve at most 4 times what was calibrated)

    def __init__(self, seconds: float, recorder: RunRecorder, most: int | None = None, epoch_s: float = 0.0,
                 report_s: float = 0.0):
        self.seconds, self.recorder, self.most, self.start, self.first_end = seconds, recorder, most, None, None
        self.epoch_s, self.report_s = epoch_s, report_s
        recorder.budgeted = True

    def training_seconds(self, per_epoch: float, timed: bool) -> float:
        """The seconds training may take, once ``per_epoch`` is ``timed`` (past the first epoch's warm-up):
        the budget's, less the report's extra time when epochs run slower than calibrated."""
        slowdown = per_epoch / self.epoch_s if timed and self.epoch_s > 0 else 1.0
        if slowdown < self.SLOWER:
            return self.seconds
        return self.seconds - self.report_s * (min(slowdown, self.MOST_SLOWDOWN) - 1)

    def on_train_start(self, trainer: pl.Trainer, module) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, module) -> None:
        from segfit.optim import stretch_onecycle

        done, now = trainer.current_epoch + 1, time.perf_counter()
        if self.start is None:
            return
        if self.first_end is None:
            self.first_end = now
        first = self.first_end - self.start
        per_epoch = first if done == 1 else (now - self.first_end) / (done - 1)
        seconds = self.training_seconds(per_epoch, timed=done > 1)
        epochs = max(done, min(int((seconds - first) / max(per_epoch, 1e-6)) + 1, self.most or 1000))
        if epochs == trainer.fit_loop.max_epochs:
            return
        trainer.fit_loop.max_epochs = epochs
        module.cfg.train.epochs = self.recorder.epochs = epochs
        config = trainer.lr_scheduler_configs[0] if trainer.lr_scheduler_configs else None
        if config is not None and config.interval == "step" and epochs > done:
            config.scheduler = stretch_onecycle(config.scheduler, trainer.optimizers[0], module.cfg.train.lr,
                                                epochs * int(trainer.num_training_batches))


class ProgressBar(TQDMProgressBar):
    """A training progress bar per epoch; validation runs without a bar of its own."""

    def __init__(self):
        super().__init__(leave=False)

    def init_validation_tqdm(self):
        bar = super().init_validation_tqdm()
        bar.disable = True
        return bar


class RunCheckpoint(ModelCheckpoint):
    """A ModelCheckpoint with its own name in the checkpoint's callback states, so several
    (best, last, every N epochs) can live side by side and resume independently."""

    def __init__(self, role: str, **kwargs):
        super().__init__(**kwargs)
        self.role = role

    @property
    def state_key(self) -> str:
        return self._generate_state_key(role=self.role)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO: atomic writes, safe reads."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        return load_checkpoint(path, map_location="cpu")
