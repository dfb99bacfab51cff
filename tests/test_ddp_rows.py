"""Issue 23's rows on multi-process runs and skipped batches: the plots cover every
test sample under DDP, each rank draws its own random numbers (augmentation, dropout)
and a DDP resume continues every rank's streams, and a batch ``nan_policy=skip`` drops
leaves no trace in the epoch's ``train/loss``.

The DDP runs spawn two gloo processes each: tiny data, a few steps.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import run_cli
from dltrain.data.synthetic import SyntheticDataModule
from dltrain.records.history import read_history
from test_train import train_in_process

ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def plotted_samples(png: Path) -> int:
    """How many samples a plot shows (its PNG's ``Samples`` text field)."""
    with Image.open(png) as image:
        return int(image.text["Samples"])


# ---- DDP: plots, each rank's random numbers, exact resume ---------------------------------
# Two processes, flip augmentation and dropout; 64 training samples = 4 steps of 8 per
# rank and epoch; 101 test samples: rank 0 scores 51, rank 1 50 and one padding sample.
DDP = ["trainer=ddp_cpu", "data=synthetic", "data._target_=ddp_probe.ProbedData",
       "data.shape=[1,4,4]", "data.num_classes=3", "data.num_train=64", "data.num_test=101",
       "data.val_fraction=0", "data.batch_size=8", "augment=flip", "model.hidden=[16]",
       "model.dropout=0.3", "trainer.max_epochs=2", "trainer.deterministic=true",
       "logger=none", "callbacks.mid_epoch_checkpoint.train_time_interval=null"]  # fmt: skip

PROBE = """
import json, os, signal
from pathlib import Path
import lightning.pytorch as pl
from dltrain.data.synthetic import SyntheticDataModule


class ProbedData(SyntheticDataModule):
    \"\"\"Writes which samples of each rank's first training batch were flipped.\"\"\"

    def on_after_batch_transfer(self, batch, dataloader_idx):
        out = super().on_after_batch_transfer(batch, dataloader_idx)
        trainer = self.trainer
        if trainer.training and trainer.global_step == 0:
            plain = self.normalize(batch[0])
            flipped = [bool((o == p.flip(-1)).all()) for o, p in zip(out[0], plain)]
            Path(f"flips_rank{trainer.global_rank}.json").write_text(json.dumps(flipped))
        return out


class StopAt(pl.Callback):
    \"\"\"SIGTERM to rank 0 after the given step, as `kill <pid>` would.\"\"\"

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step and trainer.is_global_zero:
            os.kill(os.getpid(), signal.SIGTERM)
"""


def ddp_run(base: Path, name: str, extra: list[str] = ()) -> Any:
    """One ``trainer=ddp_cpu`` run in ``base/name`` (its own working directory)."""
    cwd = base / name
    cwd.mkdir(exist_ok=True)
    env = {
        **ONE_THREAD,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(base), os.environ.get("PYTHONPATH")])),
    }
    return run_cli([*DDP, *extra, f"hydra.run.dir={cwd}/run"], cwd=cwd, env=env)


@pytest.fixture(scope="module")
def ddp_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted two-process run."""
    base = tmp_path_factory.mktemp("ddp")
    (base / "ddp_probe.py").write_text(PROBE)
    out = ddp_run(base, "ref")
    assert out.returncode == 0, out.stderr[-3000:]
    return base


def test_ddp_roc_shows_every_test_sample(ddp_reference: Path) -> None:
    run = ddp_reference / "ref" / "run"
    assert json.loads((run / "results.json").read_text())["world_size"] == 2
    assert plotted_samples(run / "plots" / "roc.png") == 101  # not rank 0's 51


def test_ddp_ranks_draw_their_own_augmentation(ddp_reference: Path) -> None:
    flips = [
        json.loads((ddp_reference / "ref" / f"flips_rank{r}.json").read_text()) for r in (0, 1)
    ]
    assert all(len(f) == 8 and 0 < sum(f) < 8 for f in flips)  # drawn per sample
    assert flips[0] != flips[1]  # not the same flips on every rank


def test_ddp_resume_continues_every_ranks_random_streams(ddp_reference: Path) -> None:
    """Stopped after step 5 (epoch 1, batch 2), then resumed: with dropout and
    augmentation drawn per rank, the metrics are the uninterrupted run's exactly."""
    stop = ["+callbacks.stop_at._target_=ddp_probe.StopAt", "+callbacks.stop_at.step=5"]
    out = ddp_run(ddp_reference, "stopped", stop)
    assert out.returncode == 143, out.stderr[-3000:]
    last = ddp_reference / "stopped" / "run" / "checkpoints" / "last.ckpt"
    state = torch.load(last, weights_only=True)
    assert state["global_step"] == 5
    out = ddp_run(ddp_reference, "stopped")  # resume=auto continues from last.ckpt
    assert out.returncode == 0, out.stderr[-3000:]
    assert "resuming from" in out.stdout
    ref, resumed = (json.loads((ddp_reference / d / "run" / "results.json").read_text())
                    for d in ("ref", "stopped"))  # fmt: skip
    assert resumed["steps"] == ref["steps"] == 8
    assert set(resumed["metrics"]) == set(ref["metrics"])
    for key, value in ref["metrics"].items():
        assert abs(resumed["metrics"][key] - value) <= 1e-6, (key, resumed["metrics"], value)


@pytest.mark.slow  # its faster twin: test_ddp_roc_shows_every_test_sample
def test_ddp_predicted_vs_true_shows_every_test_row(tmp_path: Path) -> None:
    """Two processes, 21 test rows: rank 0 scores 11, rank 1 10 (its shard padded with a
    NaN target the Regressor drops). The plot shows all 21, as the metrics score them."""
    x = np.random.default_rng(0).normal(size=81)
    split = ["train"] * 60 + ["test"] * 21
    rows = "".join(f"{a},{2 * a + 1},{s}\n" for a, s in zip(x, split, strict=True))
    (tmp_path / "t.csv").write_text("x,y,split\n" + rows)
    out = run_cli(["trainer=ddp_cpu", "data=tabular", "data.path=t.csv", "data.target=y",
                   "data.split_column=split", "data.batch_size=16", "model=mlp",
                   "trainer.max_epochs=1", "logger=none", f"hydra.run.dir={tmp_path}/run"],
                  cwd=tmp_path, env=ONE_THREAD)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert plotted_samples(tmp_path / "run" / "plots" / "predicted_vs_true.png") == 21


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
