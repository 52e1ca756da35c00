"""Lightning plug-ins: the per-epoch line and history.csv kept current while training runs, the
progress bar, named checkpoints, and atomic, safe checkpoint files."""

from __future__ import annotations

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
        line = (f"epoch {row['epoch']}/{self.epochs}  train_loss {row['train_loss']:.4f}  val_loss {row['val_loss']:.4f}  "
                f"val_iou {row['val_iou']:.4f}  mIoU {row['val_miou']:.4f}  {row['seconds']:.1f} s "
                f"(data {100 * row.get('data_seconds', 0) / max(row['seconds'], 1e-9):.0f} %){mark}")
        bar = trainer.progress_bar_callback
        if bar is not None and hasattr(bar, "print"):
            bar.print(line)
        else:
            print(line, flush=True)


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
