"""The LightningModule: network, loss, metrics and optimiser of a run."""

from __future__ import annotations

import time

import lightning.pytorch as pl
import torch
from torchmetrics import MeanMetric

from segfit.config import ModelConfig, RunConfig
from segfit.errors import SegfitError
from segfit.losses import create_loss, distance_loss
from segfit.epoch_metrics import SegmentationMetrics, flatten
from segfit.models import create_model
from segfit.nets import logits_to_classes, set_head_prior
from segfit.optim import create_optimizer, create_scheduler, stretch_onecycle


class SegmentationModule(pl.LightningModule):
    """Trains a segmentation network and records a history row per epoch.

    Args:
        config: ``RunConfig.to_dict()``: plain data, stored once in every checkpoint (``"segfit"``).
        pretrained: load ``encoder_weights`` (False when the weights come from a checkpoint).
    """

    def __init__(self, config: dict, pretrained: bool = True):
        super().__init__()
        self.cfg = RunConfig.from_dict(config)
        model_cfg = self.cfg.model if pretrained else ModelConfig(**{**vars(self.cfg.model), "encoder_weights": None})
        self.net = create_model(model_cfg).to(memory_format=torch.channels_last)
        n = self.cfg.data.num_classes
        weights = None if self.cfg.train.class_weights == "none" else self.cfg.train.class_weights  # --class-weights none
        if pretrained and isinstance(self.cfg.train.head_prior, list):  # a fresh start (a checkpoint brings its own)
            set_head_prior(self.net, self.cfg.train.head_prior, weights)
        self.loss_fn = create_loss(self.cfg.train.loss, n, weights, self.cfg.data.ignore_value is not None)
        self.train_metrics, self.val_metrics = SegmentationMetrics(n), SegmentationMetrics(n)
        self.train_loss, self.val_loss = MeanMetric(), MeanMetric()
        self.history: list[dict] = []
        self._epoch_start, self._epoch_lr = 0.0, float("nan")
        self._batch_end, self._data_wait = 0.0, 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.contiguous(memory_format=torch.channels_last))

    def _step(self, batch, loss_meter: MeanMetric, metrics: SegmentationMetrics, stage: str, batch_idx: int):
        x, y = batch[0], batch[1]
        logits = self(x)
        if self.cfg.model.instances:  # the last channel: each object's normalised distance map
            logits, distance = logits[:, :-1], logits[:, -1]
            loss = self.loss_fn(logits, y) + distance_loss(distance, batch[2])
        else:
            loss = self.loss_fn(logits, y)
        if not torch.isfinite(loss):
            raise SegfitError(f"the {stage} loss became {loss.item()} at epoch {self.current_epoch + 1}, batch {batch_idx + 1}",
                              fix="lower the learning rate (--lr) and resume from the last checkpoint")
        loss_meter.update(loss.detach(), weight=x.shape[0])
        metrics.update(logits_to_classes(logits.detach()), y)
        return loss

    def on_train_batch_start(self, batch, batch_idx) -> None:
        # Time since the previous step ended: waiting for the data loader (and loop overhead).
        self._data_wait += time.perf_counter() - self._batch_end

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self._batch_end = time.perf_counter()

    def training_step(self, batch, batch_idx):
        return self._step(batch, self.train_loss, self.train_metrics, "training", batch_idx)

    def validation_step(self, batch, batch_idx):
        self._step(batch, self.val_loss, self.val_metrics, "validation", batch_idx)

    def on_train_epoch_start(self) -> None:
        self._epoch_start = self._batch_end = time.perf_counter()
        self._data_wait = 0.0
        self._epoch_lr = float(self.trainer.optimizers[0].param_groups[0]["lr"]) if self.trainer.optimizers else float("nan")

    def on_validation_epoch_end(self) -> None:
        """Training batches are done and validation too: compute the epoch's record."""
        if self.trainer.sanity_checking:
            self.val_loss.reset()
            self.val_metrics.reset()
            return
        names = self.cfg.data.class_names
        row = {"epoch": self.current_epoch + 1}
        row["train_loss"] = float(self.train_loss.compute()) if self.train_loss.update_count else float("nan")
        row["val_loss"] = float(self.val_loss.compute())
        val = flatten(self.val_metrics.compute(), names, "val_")
        row.update({k: val[k] for k in ("val_iou", "val_dice", "val_accuracy", "val_miou")})
        row["lr"] = self._epoch_lr  # the learning rate the epoch started with
        row["seconds"] = round(time.perf_counter() - self._epoch_start, 3)
        row["data_seconds"] = round(self._data_wait, 3)
        if self.train_metrics.update_count:
            row.update(flatten(self.train_metrics.compute(), names, "train_"))
        row.update(val)
        for meter in (self.train_loss, self.val_loss, self.train_metrics, self.val_metrics):
            meter.reset()
        self.history = [r for r in self.history if r["epoch"] < row["epoch"]] + [row]
        # Logged for checkpoint selection (val_loss) and the epoch_N file names (ep).
        self.log("val_loss", row["val_loss"], sync_dist=False, logger=False)
        self.log("ep", float(row["epoch"]), sync_dist=False, logger=False)
        if self.logger is not None:  # the --logger (CSV or TensorBoard): every figure of the row, per epoch
            self.logger.log_metrics({k: v for k, v in row.items() if k != "epoch" and v == v}, step=row["epoch"])

    def configure_optimizers(self):
        t = self.cfg.train
        opt = create_optimizer(t.optimizer, self.parameters(), t.lr, t.weight_decay)
        sched = create_scheduler(t.scheduler, opt, t.lr, t.epochs, int(self.trainer.estimated_stepping_batches))
        return opt if sched is None else {"optimizer": opt, "lr_scheduler": sched}

    def on_train_start(self) -> None:
        """A resumed one-cycle schedule is stretched to the (possibly larger) new number of epochs."""
        config = self.trainer.lr_scheduler_configs[0] if self.trainer.lr_scheduler_configs else None
        if config is not None:
            config.scheduler = stretch_onecycle(config.scheduler, self.trainer.optimizers[0], self.cfg.train.lr,
                                                int(self.trainer.estimated_stepping_batches))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["segfit"] = {"config": self.cfg.to_dict(), "history": self.history}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.history = list(checkpoint.get("segfit", {}).get("history", []))
