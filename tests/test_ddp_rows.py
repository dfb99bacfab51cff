"""Issue 23's rows on multi-process runs and skipped batches: the plots cover every
test sample under DDP, each rank applies its own augmentation (exact DDP resumes with
dropout and augmentation: test_multiprocess.py's SIGTERM test), and a batch that
``nan_policy=skip`` drops leaves no trace in the epoch's ``train/loss``.

The DDP run spawns two gloo processes: tiny data, a few steps.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import run_cli
from dltrain.data.sources.synthetic import SyntheticDataModule
from dltrain.records.history import read_history
from test_train import train_in_process

ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def plotted_samples(png: Path) -> int:
    """How many samples a plot shows (its PNG's ``Samples`` text field)."""
    with Image.open(png) as image:
        return int(image.text["Samples"])


# ---- DDP: plots, each rank's augmentation -------------------------------------------------
# Two processes with flip augmentation; 64 training samples = 4 steps of 8 per rank;
# 101 test samples: rank 0 scores 51, rank 1 50 and one padding sample.
DDP = ["trainer=ddp_cpu", "data=synthetic", "data._target_=ddp_probe.ProbedData",
       "data.shape=[1,4,4]", "data.num_classes=3", "data.num_train=64", "data.num_test=101",
       "data.val_fraction=0", "data.batch_size=8", "augment=flip", "model.hidden=[16]",
       "trainer.max_epochs=1", "logger=none"]  # fmt: skip

PROBE = """
import json
from pathlib import Path
from dltrain.data.sources.synthetic import SyntheticDataModule


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
"""


def ddp_run(base: Path, name: str) -> subprocess.CompletedProcess:
    """One ``trainer=ddp_cpu`` run in ``base/name`` (its own working directory)."""
    cwd = base / name
    cwd.mkdir()
    path = os.pathsep.join(filter(None, [str(base), os.environ.get("PYTHONPATH")]))
    env = {**ONE_THREAD, "PYTHONPATH": path}
    return run_cli([*DDP, f"hydra.run.dir={cwd}/run"], cwd=cwd, env=env)


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
    """Synthetic data with one +inf training input, the first of epoch 0's order: the
    first batch's loss is NaN (the first of an accumulated step's batches)."""

    def load(self):  # noqa: ANN201 - the base class's (train, test) splits
        train, test = super().load()
        order = torch.randperm(
            len(train.y), generator=torch.Generator().manual_seed(self.seed * 100_003)
        )
        train.x[int(order[0])] = float("inf")
        return train, test

    def _check(self, split: Any, name: str) -> None:  # the base class refuses inf inputs
        pass


class BatchLosses(pl.Callback):
    """Keeps every training batch's loss and size (the test's own record)."""

    seen: list[tuple[float, int]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        BatchLosses.seen.append((float(outputs["loss"]), len(batch[1])))


@pytest.mark.parametrize("accumulate", [1, 2])
def test_a_skipped_batch_leaves_no_trace_in_the_epoch_train_loss(
    tmp_path: Path, accumulate: int
) -> None:
    """The step with the NaN loss is dropped, with every batch it accumulated: the
    epoch's train/loss is the mean over the other batches, and the weights stay finite
    (the run completes: a save of NaN weights would fail it)."""
    BatchLosses.seen = []
    _, rec = train_in_process(tmp_path, [
        "data=synthetic", "data._target_=test_ddp_rows.PoisonedData", "data.shape=[1,4,4]",
        "data.num_classes=3", "data.num_train=200", "data.num_test=20", "data.batch_size=16",
        "data.val_fraction=0",
        "data.mean=0", "data.std=1", "trainer.max_epochs=1", "optimizer=sgd", "logger=none",
        f"trainer.accumulate_grad_batches={accumulate}", "nan_policy=skip",
        "+callbacks.batch_losses._target_=test_ddp_rows.BatchLosses",
    ])  # fmt: skip
    assert rec["status"] == "completed"
    losses = BatchLosses.seen
    bad = [i for i, (loss, _) in enumerate(losses) if not math.isfinite(loss)]
    assert len(losses) == 13 and bad == [0]  # 200 samples in batches of 16
    dropped = bad[0] // accumulate  # the optimizer step that batch belonged to
    kept = [(loss * accumulate, n) for i, (loss, n) in enumerate(losses)
            if i // accumulate != dropped]  # fmt: skip
    expected = sum(loss * n for loss, n in kept) / sum(n for _, n in kept)
    history = read_history(tmp_path / "run")
    for value in (rec["metrics"]["train/loss"], history[0]["train/loss"]):
        assert math.isfinite(value) and abs(value - expected) < 1e-6, (value, expected)
