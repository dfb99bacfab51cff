"""Issue 23's rows on multi-process runs and skipped batches: the plots cover every
test sample under DDP, each rank draws its own random numbers (augmentation, dropout)
and a DDP resume continues every rank's streams, and a batch ``nan_policy=skip`` drops
leaves no trace in the epoch's ``train/loss``.

The DDP runs spawn two gloo processes each: tiny data, a few steps.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from dltrain.data.synthetic import SyntheticDataModule
from dltrain.records.history import read_history
from test_train import train_in_process


# ---- nan_policy=skip -------------------------------------------------------------------
class PoisonedData(SyntheticDataModule):
    """Synthetic data with one +inf training input: one batch's loss is NaN."""

    def load(self):  # noqa: ANN201 - the base class's (train, test) splits
        train, test = super().load()
        train.x[7] = float("inf")
        return train, test

    def _check(self, split: Any, name: str) -> None:  # the base class refuses inf inputs
        pass


class BatchLosses(pl.Callback):
    """Keeps every training batch's loss and size (the test's own record)."""

    seen: list[tuple[float, int]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        BatchLosses.seen.append((float(outputs["loss"]), len(batch[1])))


def test_a_skipped_batch_leaves_no_trace_in_the_epoch_train_loss(tmp_path: Path) -> None:
    BatchLosses.seen = []
    _, rec = train_in_process(tmp_path, [
        "data=synthetic", "data._target_=test_ddp_rows.PoisonedData", "data.shape=[1,4,4]",
        "data.num_classes=3", "data.num_train=200", "data.num_test=20", "data.batch_size=16",
        "data.mean=0", "data.std=1", "trainer.max_epochs=1", "optimizer=sgd", "logger=none",
        "nan_policy=skip", "+callbacks.batch_losses._target_=test_ddp_rows.BatchLosses",
    ])  # fmt: skip
    assert rec["status"] == "completed"
    losses = BatchLosses.seen
    assert len(losses) == 12 and sum(not math.isfinite(loss) for loss, _ in losses) == 1
    kept = [(loss, n) for loss, n in losses if math.isfinite(loss)]
    expected = sum(loss * n for loss, n in kept) / sum(n for _, n in kept)
    history = read_history(tmp_path / "run")
    for value in (rec["metrics"]["train/loss"], history[0]["train/loss"]):
        assert math.isfinite(value) and abs(value - expected) < 1e-6, (value, expected)
