"""callbacks=ema / callbacks=swa: the averaged weights are what validation, the test,
checkpoints and dl-eval use, and a run killed mid-epoch resumes to the same averages."""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import pytest
import torch

from conftest import run_cli
from test_resume import EVERY_25, finish, start, wait_for_saves

SMALL = ["data=synthetic", "data.shape=[1,6,6]", "data.num_classes=4", "data.num_train=600",
         "trainer.max_epochs=2", "trainer.deterministic=true", "logger=none",
         "callbacks.weight_averaging.decay=0.9"]  # fmt: skip
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def _last(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)


def _eval(ckpt: Path, cwd: Path) -> dict[str, float]:
    cwd.mkdir()
    done = run_cli([f"ckpt_path={ckpt}", f"hydra.run.dir={cwd / 'eval'}"], cwd, "dl-eval",
                   env=ONE_THREAD)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads((cwd / "eval" / "results.json").read_text())["metrics"]


def test_ema_is_what_the_test_checkpoints_and_dl_eval_score(tmp_path: Path) -> None:
    run = tmp_path / "run"
    done = run_cli(["callbacks=ema", *SMALL, f"hydra.run.dir={run}"], tmp_path, env=ONE_THREAD)
    assert done.returncode == 0, done.stderr
    trained = json.loads((run / "results.json").read_text())["metrics"]
    ckpt = _last(run)
    averaged, raw = ckpt["state_dict"], ckpt["current_model_state"]
    assert averaged.keys() == raw.keys()
    assert not all(torch.equal(averaged[k], raw[k]) for k in averaged)
    assert int(ckpt["averaging_state"]["n_averaged"]) == ckpt["global_step"]

    # The same checkpoint with the raw weights as its state_dict: what scoring the
    # raw weights gives.
    raw_file = tmp_path / "raw.ckpt"
    torch.save({**{k: v for k, v in ckpt.items() if k not in ("current_model_state",
                "averaging_state")}, "state_dict": raw}, raw_file)  # fmt: skip
    scored = _eval(run / "checkpoints" / "last.ckpt", tmp_path / "a")
    scored_raw = _eval(raw_file, tmp_path / "b")
    assert scored["test/loss"] == pytest.approx(trained["test/loss"], abs=1e-6)
    assert scored["val/loss"] == pytest.approx(trained["val/loss"], abs=1e-6)
    assert scored_raw["test/loss"] != pytest.approx(scored["test/loss"], abs=1e-4)


def _tensors(ckpt: dict) -> dict[str, torch.Tensor]:
    keys = ("state_dict", "current_model_state", "averaging_state")
    return {f"{part}.{k}": v for part in keys for k, v in ckpt[part].items()}


@pytest.mark.parametrize(
    "averaging", [("callbacks=ema", "callbacks.weight_averaging.decay=0.99"),
                  ("callbacks=swa", "callbacks.weight_averaging.start_epoch=0")],
    ids=["ema", "swa"],
)  # fmt: skip
def test_kill_9_mid_epoch_then_rerun_restores_the_average_exactly(
    tmp_path: Path, averaging: tuple[str, str]
) -> None:
    # 1440 training samples: 90 steps an epoch, saves at 25, 50, 75, 90 (epoch end), ...
    extra = (*averaging, *EVERY_25, "data.num_train=1600", "trainer.max_epochs=3")
    reference = tmp_path / "ref"
    rc, _, err = finish(start(reference, extra))
    assert rc == 0, err

    run = tmp_path / "run"
    proc = start(run, extra)
    wait_for_saves(proc, run, random.Random(3).randint(5, 7))  # inside epoch 1
    time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert finish(proc)[0] == -signal.SIGKILL
    stopped = _last(run)
    assert 90 < stopped["global_step"] < 180 and "averaging_state" in stopped
    rc, out, err = finish(start(run, extra))
    assert rc == 0, err
    assert "resuming from" in out

    want, got = _tensors(_last(reference)), _tensors(_last(run))
    assert want.keys() == got.keys()
    assert all(torch.equal(want[k], got[k]) for k in want), [
        k for k in want if not torch.equal(want[k], got[k])
    ]
    ref_metrics = json.loads((reference / "results.json").read_text())["metrics"]
    assert json.loads((run / "results.json").read_text())["metrics"] == ref_metrics
