"""Regression around any network with one output: MSE (or Huber) on a standardised
target; RMSE, MAE and R2 reported on the scale the target was fitted on (the data's
``target_transform`` applied, the standardisation undone)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanAbsoluteError, MeanMetric, MeanSquaredError, MinMetric, R2Score

from dltrain.errors import ConfigError
from dltrain.module.base import OptimizerFactory, RunModule, SchedulerFactory

LOSSES = ("mse", "huber")


class Regressor(RunModule):
    """Logs ``{train,val,test}/{loss,rmse,mae,r2}`` and ``val/rmse_best``.

    Args:
        net: any ``nn.Module`` mapping inputs to ``(N, 1)`` (or ``(N,)``) values.
        target_mean, target_std: the standardisation of the training target; metrics
            are computed on ``value * std + mean``.
        loss: ``mse`` or ``huber`` (``huber_delta`` in standardised units).
        Other arguments as ``RunModule``.
    """

    # loss*n, squared error, absolute error, y, y^2 (original scale): RMSE, MAE and R2
    # of the training epoch from five sums.
    train_sums_size = 5

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerFactory,
        target_mean: float = 0.0,
        target_std: float = 1.0,
        loss: str = "mse",
        huber_delta: float = 1.0,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        monitor: str = "val/rmse",
    ) -> None:
        super().__init__(net, optimizer, scheduler, scheduler_interval, monitor)
        if loss not in LOSSES:
            raise ConfigError(f"regression_loss={loss} is unknown", "use mse or huber")
        self.loss_name, self.huber_delta = loss, float(huber_delta)
        self.target_mean, self.target_std = float(target_mean), float(target_std)
        for stage in ("val", "test"):
            setattr(self, f"{stage}_loss", MeanMetric())
            setattr(self, f"{stage}_rmse", MeanSquaredError(squared=False))
            setattr(self, f"{stage}_mae", MeanAbsoluteError())
            setattr(self, f"{stage}_r2", R2Score())
        self.val_rmse_best = MinMetric()
        self.val_rmse_best.persistent(True)

    def _step(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        x, y = batch
        return self._loss(self.net(x).reshape(-1).float(), y)

    def _loss(self, pred: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if self.loss_name == "huber":
            loss = F.huber_loss(pred, y, delta=self.huber_delta)
        else:
            loss = F.mse_loss(pred, y)
        return loss, pred, y

    def unscale(self, values: Tensor) -> Tensor:
        """Standardised values -> the scale the target was fitted on."""
        return values * self.target_std + self.target_mean

    # ---- train ------------------------------------------------------------------------
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss, pred, y = self._step(batch)
        n = y.shape[0]
        self.samples_seen += n
        self._train_count += n
        with torch.no_grad():
            err = (pred - y) * self.target_std
            yo = self.unscale(y)
            self._train_sums.add_(
                torch.stack(
                    (loss * n, (err * err).sum(), err.abs().sum(), yo.sum(), (yo * yo).sum())
                )
            )
        return loss

    def on_train_epoch_end(self) -> None:
        self._end_train_timing()
        n = self._train_count or float("nan")  # none counted (all skipped): NaN, not 0
        loss, se, ae, ys, yy = self._train_sums.double() / n
        variance = (yy - ys * ys).clamp_min(1e-12)
        self.log("train/loss", loss.float(), sync_dist=True)
        self.log("train/rmse", se.sqrt().float(), sync_dist=True)
        self.log("train/mae", ae.float(), sync_dist=True)
        self.log("train/r2", (1 - se / variance).float(), sync_dist=True)

    # ---- validate and test -------------------------------------------------------------
    def _update(self, stage: str, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """Feed the stage's metrics one batch, without its padding rows: under DDP the
        evaluation shards are padded to equal length with NaN targets
        (``data/loading/batches.py``), so every sample counts once for any world size."""
        x, y = batch
        real = ~y.isnan()
        pred, y = self.net(x).reshape(-1).float()[real], y[real]
        if not len(y):  # a batch of padding only
            return pred, y
        loss, pred, y = self._loss(pred, y)
        pred, y = self.unscale(pred), self.unscale(y)
        getattr(self, f"{stage}_loss").update(loss, weight=len(y))
        for name in ("rmse", "mae", "r2"):
            getattr(self, f"{stage}_{name}").update(pred, y)
        return pred, y

    def _log_stage(self, stage: str) -> Tensor:
        values = {name: getattr(self, f"{stage}_{name}") for name in ("loss", "rmse", "mae", "r2")}
        rmse = values["rmse"].compute()
        for name, metric in values.items():
            self.log(f"{stage}/{name}", rmse if name == "rmse" else metric.compute(),
                     prog_bar=stage == "val" and name in ("rmse", "r2"))  # fmt: skip
            metric.reset()
        return rmse

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._update("val", batch)

    def on_validation_epoch_end(self) -> None:
        rmse = self._log_stage("val")
        if not self.trainer.sanity_checking:  # the sanity check must not count as best
            self.val_rmse_best.update(rmse)
        if self.val_rmse_best.update_called:
            self.log("val/rmse_best", self.val_rmse_best.compute())

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> dict[str, Tensor]:
        pred, y = self._update("test", batch)
        # For callbacks (the predicted-vs-true plot); Lightning does not keep them.
        return {"values": pred, "target": y}

    def on_test_epoch_end(self) -> None:
        self._log_stage("test")

    def predict_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self.unscale(self.net(batch[0]).reshape(-1).float())
