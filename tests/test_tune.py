"""dl-train tune=lr|batch_size|lr,batch_size: Lightning's finders print usable overrides,
train=true trains exactly as the printed overrides do, and what cannot work is refused
in one line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from conftest import SHARED_DATA, run_cli
from test_train import train_in_process

ONE_THREAD = {"OMP_NUM_THREADS": "1"}
LINE = re.compile(r"^(optimizer\.lr|data\.batch_size)=(\S+)$", re.M)


def _overrides(stdout: str) -> dict[str, str]:
    return dict(LINE.findall(stdout))


def test_tune_lr_and_batch_size_on_digits_print_overrides_and_a_plot(tmp_path: Path) -> None:
    run = tmp_path / "run"
    done = run_cli(["tune=lr,batch_size", f"hydra.run.dir={run}"], tmp_path, env=ONE_THREAD)
    assert done.returncode == 0, done.stderr
    found = _overrides(done.stdout)
    assert found.keys() == {"optimizer.lr", "data.batch_size"}, done.stdout
    lr, batch = float(found["optimizer.lr"]), int(found["data.batch_size"])
    assert 1e-6 < lr < 1.0
    # digits: 1,294 training samples; on a CPU nothing runs out of memory, so the
    # finder's answer is the whole split, never more.
    assert batch == 1294
    assert (run / "plots" / "lr_find.png").stat().st_size > 0
    record = json.loads((run / "results.json").read_text())
    assert record["status"] == "completed"
    assert record["tuned"] == {"data.batch_size": batch, "optimizer.lr": lr}
    assert not (run / "checkpoints").exists()  # no train=true: nothing trained
    assert not list(run.glob(".*.ckpt")) and not list(run.glob("*.ckpt"))  # finders' temp files


def test_train_true_trains_as_the_printed_overrides_do(tmp_path: Path, capsys) -> None:
    small = ["trainer.max_epochs=1", "logger=none", "trainer.deterministic=true"]
    _, tuned = train_in_process(tmp_path / "a", ["tune=[lr]", "train=true", *small])
    found = _overrides(capsys.readouterr().out)
    assert list(found) == ["optimizer.lr"]
    _, plain = train_in_process(tmp_path / "b", [f"optimizer.lr={found['optimizer.lr']}", *small])
    assert tuned["status"] == "completed" and tuned["epochs"] == 1
    assert tuned["metrics"] == plain["metrics"]
    ckpt = torch.load(tuned["best_checkpoint"], weights_only=True)
    assert ckpt["dltrain_config"]["optimizer"]["lr"] == float(found["optimizer.lr"])


@pytest.mark.skipif(not (SHARED_DATA / "MNIST").is_dir(), reason="no MNIST in ../shared")
def test_tune_on_mnist(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["data=mnist", f"paths.data_dir={SHARED_DATA}", "tune=lr,batch_size",
            "tune.lr.num_training=30", "tune.batch_size.max_val=512",
            f"hydra.run.dir={run}"]  # fmt: skip
    done = run_cli(args, tmp_path, env=ONE_THREAD)
    assert done.returncode == 0, done.stderr
    found = _overrides(done.stdout)
    assert 1e-6 < float(found["optimizer.lr"]) < 1.0
    assert int(found["data.batch_size"]) == int(512 * 0.95)  # the cap, less the margin


@pytest.mark.parametrize(
    "args,line",
    [
        (["tune=lr", "trainer=ddp_cpu"],
         "error: tune=lr runs in one process, and this hardware profile starts 2 — run the "
         "finder with trainer=cpu or trainer=gpu (one device), then train on the profile "
         "with the printed overrides"),
        (["tune=lr,batch_size", "experiment=credit_xgboost"],
         "error: tune=lr,batch_size runs Lightning's finders, and model=xgboost is a boosted "
         "tree that Lightning does not train — tune a net (e.g. model=mlp), or sweep the "
         "trees' settings with -m"),
        (["tune=batch_size", "data.global_batch_size=128"],
         "error: tune=batch_size finds data.batch_size, and data.global_batch_size is set — "
         "leave data.global_batch_size=null while tuning"),
    ],
    ids=["multi-process", "trees", "global-batch"],
)  # fmt: skip
def test_refusals_are_one_line(tmp_path: Path, args: list[str], line: str) -> None:
    done = run_cli([*args, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path, env=ONE_THREAD)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [line]
