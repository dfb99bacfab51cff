"""Multi-process paths under ``trainer=ddp_cpu`` (two gloo processes): every decision that
can differ per rank is collective, nothing hangs, one error line, exact resumes.

Each test spawns processes, so they stay few and small (a tiny MLP, a few hundred steps).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import torch

from conftest import BIN, run_cli

# A tiny MLP on synthetic data, two processes; 600 samples = 300 per rank per epoch
# = 38 steps of 8; no dropout, so only the data order draws random numbers.
DDP = ["trainer=ddp_cpu", "data=synthetic", "data.shape=[1,4,4]", "data.num_classes=3",
       "data.num_train=600", "data.num_test=101", "data.val_fraction=0", "data.batch_size=8",
       "model.hidden=[16]", "trainer.deterministic=true", "logger=none"]  # fmt: skip
ONE_THREAD = {"OMP_NUM_THREADS": "1"}

POISONED = '''
import json
import os
import traceback

import torch
from dltrain.data.sources.synthetic import SyntheticDataModule

CALLS = {}  # "function file" -> calls while a training epoch runs
TRAINER = []


def _counted(fn):
    """Counts the Python-level collectives made while training, by caller's file."""
    def call(*args, **kwargs):
        if TRAINER and TRAINER[0].training and not TRAINER[0].sanity_checking:
            caller = os.path.basename(traceback.extract_stack()[-2].filename)
            key = f"{fn.__name__} {caller}"
            CALLS[key] = CALLS.get(key, 0) + 1
        return fn(*args, **kwargs)
    return call


for _name in ("all_reduce", "broadcast", "barrier", "all_gather"):
    setattr(torch.distributed, _name, _counted(getattr(torch.distributed, _name)))


class PoisonedData(SyntheticDataModule):
    """Synthetic data with one +inf training sample, where epoch 0 gives it to rank 1
    (odd positions of the epoch's order) in its 4th batch: step 3."""

    def load(self):
        train, test = super().load()
        gen = torch.Generator().manual_seed(self.seed * 100_003)  # epoch 0's order
        order = torch.randperm(len(train.y), generator=gen)
        train.x[int(order[2 * self.batch_size * 3 + 1])] = float("inf")
        return train, test

    def _check(self, split, name):  # the base class refuses non-finite inputs
        pass

    def setup(self, stage):
        TRAINER[:] = [self.trainer]
        super().setup(stage)

    def teardown(self, stage):
        if stage == "fit" and os.environ.get("COUNT_DIR"):
            path = os.path.join(os.environ["COUNT_DIR"], f"rank{self.trainer.global_rank}.json")
            with open(path, "w") as f:
                json.dump(CALLS, f)
'''


def _poisoned_env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "poisoned.py").write_text(POISONED)
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path, **ONE_THREAD}


POISON = ["data._target_=poisoned.PoisonedData", "data.mean=0", "data.std=1",
          "trainer.max_epochs=1", "optimizer=sgd"]  # fmt: skip


def test_nan_on_one_rank_skip_drops_the_same_step_on_every_rank(tmp_path: Path) -> None:
    env = {**_poisoned_env(tmp_path), "COUNT_DIR": str(tmp_path)}
    out = run_cli([*DDP, *POISON, "nan_policy=skip", f"hydra.run.dir={tmp_path}/run"],
                  cwd=tmp_path, env=env, timeout=240)  # fmt: skip
    assert out.returncode == 0, out.stderr
    # One collective per step, the skip decision's all-reduce (38 steps); the signal
    # check every 16 steps and at the epoch's last (3); no barrier and no broadcast per
    # step (there were 4 a step: Lightning's SIGTERM broadcast, the signal all-reduce,
    # the skip decision's barrier and all-reduce).
    calls = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert calls[0] == calls[1], calls
    assert {k: n for k, n in calls[0].items() if n >= 38} == {"all_reduce nan_guard.py": 38}
    assert calls[0]["all_reduce signals.py"] == 3, calls[0]
    # Rank 0's own loss was finite: it skipped because rank 1's was not (else rank 0
    # steps with the all-reduced NaN gradients and the weights turn NaN).
    assert "warning: skipped 1 batches with a NaN/inf loss" in out.stdout
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    weights = [t for k, t in state["state_dict"].items() if k.startswith("net.")]
    assert weights and all(t.isfinite().all() for t in weights)
    assert state["global_step"] == 38
    # Both ranks' share of the skipped step left out: the epoch's train/loss is finite.
    metrics = json.loads((tmp_path / "run" / "results.json").read_text())["metrics"]
    assert torch.isfinite(torch.tensor(metrics["train/loss"])), metrics


def test_nan_on_one_rank_stop_stops_every_rank_with_one_error(tmp_path: Path) -> None:
    out = run_cli([*DDP, *POISON, "nan_policy=stop", f"hydra.run.dir={tmp_path}/run"],
                  cwd=tmp_path, env=_poisoned_env(tmp_path), timeout=240)  # fmt: skip
    assert out.returncode == 1, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: the training loss became NaN/inf at step 3 (epoch 0); the last good "
        "checkpoint was kept — lower optimizer.lr, add trainer.gradient_clip_val=1.0, "
        "check the inputs, or set nan_policy=skip to drop such batches"
    ], out.stderr
    assert "Traceback" not in out.stderr


def _start(run_dir: Path, extra: list[str]) -> subprocess.Popen:
    env = {**os.environ, **ONE_THREAD}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.Popen(
        [str(BIN / "dl-train"), *DDP, *extra, f"hydra.run.dir={run_dir}"],
        cwd=run_dir.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_sigterm_stops_every_rank_and_the_printed_command_resumes_exactly(tmp_path: Path) -> None:
    # Dropout and augmentation: each rank draws its own numbers, so every rank's RNG
    # state must come back for the resume to be exact.
    every_10 = ["trainer.max_epochs=2", "callbacks.mid_epoch_checkpoint.train_time_interval=null",
                "callbacks.mid_epoch_checkpoint.every_n_train_steps=10", "model.dropout=0.3",
                "augment=flip"]  # fmt: skip
    reference = _start(tmp_path / "ref", every_10)
    ref_out, ref_err = reference.communicate(timeout=300)
    assert reference.returncode == 0, ref_err
    ref = json.loads((tmp_path / "ref" / "results.json").read_text())
    assert ref["world_size"] == 2 and ref["steps"] == 2 * 38  # each rank its own half

    run_dir = tmp_path / "run"
    proc = _start(run_dir, every_10)
    last = run_dir / "checkpoints" / "last.ckpt"
    while not last.exists() and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)  # to rank 0 only, as `kill <pid>` does
    _, err = proc.communicate(timeout=120)  # returns once every rank has closed stderr
    assert proc.returncode == 128 + signal.SIGTERM, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert errors[0].startswith(f"error: stopped by SIGTERM; saved {last} — resume with: ")
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]  # one checkpoint
    assert 10 <= torch.load(last, weights_only=True)["global_step"] < 2 * 38

    command = shlex.split(errors[0].split("resume with: ", 1)[1])
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"} | ONE_THREAD
    done = subprocess.run([str(BIN / command[0]), *command[1:]], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    resumed = json.loads((run_dir / "results.json").read_text())
    assert resumed["steps"] == ref["steps"]
    for key, value in ref["metrics"].items():
        assert abs(resumed["metrics"][key] - value) <= 1e-6, (key, resumed["metrics"], value)


def test_a_ddp_sweep_on_a_parallel_launcher_is_refused_before_any_trial(tmp_path: Path) -> None:
    # The basic launcher runs DDP trials (tests/test_ddp_multirun.py); joblib's workers
    # are not dl-train and would run several process groups at once: refused.
    sweep_dir = tmp_path / "sweep"
    sweep = ["-m", "hparams_search=digits_optuna", "trainer=ddp_cpu", "hydra.sweeper.n_trials=2",
             "hydra/launcher=joblib"]  # fmt: skip
    out = run_cli([*sweep, f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [
        "error: -m with the JoblibLauncher cannot run trainer=ddp_cpu runs: it runs jobs in "
        "worker processes, and each job would start 2 processes of its own — run the jobs one "
        "at a time (Hydra's default launcher, hydra/launcher=basic), or give every job one "
        "process (trainer=cpu or trainer=gpu)"
    ]
    assert not list(sweep_dir.glob("trial_*")) and not (sweep_dir / "study.journal").exists()


def test_evaluation_shards_cover_every_sample_once_for_any_world_size() -> None:
    from dltrain.data.loading.batches import PAD_LABEL, TensorBatches

    x, y = torch.arange(7.0).unsqueeze(1), torch.arange(7)
    for world in (1, 2, 3, 4, 8):
        shards = [
            list(TensorBatches(x, y, 2, shuffle=False, rank=r, world_size=world, pad=True))
            for r in range(world)
        ]
        assert len({len(s) for s in shards}) == 1, world  # the same batch count everywhere
        labels = torch.cat([b[1] for s in shards for b in s])
        assert sorted(labels[labels != PAD_LABEL].tolist()) == list(range(7)), world
        assert int((labels == PAD_LABEL).sum()) == -(-7 // world) * world - 7
    # Float (regression) targets: -100.0 is a real value there, padding is NaN.
    targets = torch.tensor([-100.0, 0.5, 1.5, 2.5, 3.5])
    shards = [list(TensorBatches(x[:5], targets, 2, shuffle=False, rank=r, world_size=3,
                                 pad=True)) for r in range(3)]  # fmt: skip
    values = torch.cat([b[1] for s in shards for b in s])
    assert sorted(values[~values.isnan()].tolist()) == targets.tolist()
    assert int(values.isnan().sum()) == 1
    # Training shards stay equal by dropping the tail (each epoch a different one).
    train = TensorBatches(x, y, 2, shuffle=True, rank=1, world_size=2)
    assert sum(len(b[1]) for b in train) == 3
