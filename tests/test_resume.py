"""Runs survive kill -9, SIGTERM and corrupt files, and reproduce bit for bit."""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from conftest import BIN
from dltrain.checkpointing.checkpoint_io import SafeCheckpointIO
from dltrain.errors import DataError
from test_train import train_in_process

# ~250 steps per epoch of a tiny MLP: long enough to stop inside an epoch.
RUN = [
    "data=synthetic",
    "data.shape=[1,6,6]",
    "data.num_classes=4",
    "data.num_train=4000",
    "data.batch_size=16",
    "model.hidden=[32]",
    "model.dropout=0.2",  # draws random numbers: a resumed run must draw the same ones
    "trainer.max_epochs=2",
    "trainer.deterministic=true",
    "logger=csv",
]
STEPS_PER_EPOCH = -(-3600 // 16)
SECRET = "wandb-secret-0123456789"
# Tiny models run fastest on one thread, and several OpenMP threads spinning on a
# shared, busy machine slow each step down many times over.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
EVERY_25 = (
    "callbacks.mid_epoch_checkpoint.train_time_interval=null",
    "callbacks.mid_epoch_checkpoint.every_n_train_steps=25",
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def start(run_dir: Path, extra: tuple[str, ...] = ()) -> subprocess.Popen:
    env = {**os.environ, "WANDB_API_KEY": SECRET, **ONE_THREAD}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.Popen(
        [str(BIN / "dl-train"), *RUN, *extra, f"hydra.run.dir={run_dir}"],
        cwd=run_dir.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def wait_for_saves(proc: subprocess.Popen, run_dir: Path, count: int) -> None:
    """Return once ``last.ckpt`` has been (re)written ``count`` times."""
    last = run_dir / "checkpoints" / "last.ckpt"
    seen, stamp = 0, None
    while proc.poll() is None and seen < count:
        now = last.stat().st_mtime_ns if last.exists() else None
        if now is not None and now != stamp:
            seen, stamp = seen + 1, now
        time.sleep(0.001)
    assert proc.poll() is None, "the run ended before it could be stopped"


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def epoch_rows(run_dir: Path) -> list[str]:
    """The per-epoch rows of ``metrics.csv`` (the learning-rate rows logged at an epoch's
    start are written lazily and may be missing for the interrupted epoch)."""
    lines = (run_dir / "csv" / "metrics.csv").read_text().splitlines()
    return [line for line in lines[1:] if not line.startswith(",")]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One uninterrupted run, as a process (the same code path as the stopped ones)."""
    run_dir = tmp_path_factory.mktemp("ref") / "run"
    rc, _, err = finish(start(run_dir, ("+tracker.api_key=${oc.env:WANDB_API_KEY}",)))
    assert rc == 0, err
    return {"dir": run_dir, **results(run_dir)}


def test_uninterrupted_run_records_how_to_rerun_it_and_no_secret(reference: dict) -> None:
    run_dir = reference["dir"]
    assert reference["steps"] == 2 * STEPS_PER_EPOCH
    overrides = (run_dir / ".hydra" / "overrides.yaml").read_text()
    assert "trainer.deterministic=true" in overrides
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert {"torch", "lightning", "python", "git_commit"} <= set(reference["versions"])
    # The key was resolved for the run, but is written nowhere.
    written = [p for p in run_dir.rglob("*") if p.is_file() and p.suffix != ".ckpt"]
    assert any(p.name == "hparams.yaml" for p in written)
    for path in written:
        assert SECRET not in path.read_text(errors="replace"), path


def kill_9_then_rerun(run_dir: Path, seed: int, reference: dict) -> None:
    rng = random.Random(seed)
    # A checkpoint every 25 steps; the kill lands after a random number of them, at a
    # random moment (inside a batch, a save, validation...).
    proc = start(run_dir, EVERY_25)
    wait_for_saves(proc, run_dir, rng.randint(1, 15))
    time.sleep(rng.uniform(0, 0.05))
    proc.send_signal(signal.SIGKILL)
    assert finish(proc)[0] == -signal.SIGKILL
    assert not (run_dir / "results.json").exists()
    torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)  # never half written

    rc, out, err = finish(start(run_dir, EVERY_25))  # the same command again
    assert rc == 0, err
    assert "resuming from" in out
    again = results(run_dir)
    assert again["status"] == "completed"
    assert again["metrics"] == reference["metrics"]
    assert again["steps"] == reference["steps"]
    # The history logged before the kill is kept, and nothing is logged twice.
    assert epoch_rows(run_dir) == epoch_rows(reference["dir"])


@pytest.mark.parametrize("seed", [1, 2])
def test_kill_9_at_a_random_point_then_rerun_gives_the_same_metrics(
    tmp_path: Path, reference: dict, seed: int
) -> None:
    kill_9_then_rerun(tmp_path / "run", seed, reference)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3, 13))
def test_kill_9_at_more_random_points(tmp_path: Path, reference: dict, seed: int) -> None:
    kill_9_then_rerun(tmp_path / "run", seed, reference)


def test_sigterm_mid_epoch_saves_and_the_printed_command_resumes(
    tmp_path: Path, reference: dict
) -> None:
    run_dir = tmp_path / "run"
    every_100 = (EVERY_25[0], "callbacks.mid_epoch_checkpoint.every_n_train_steps=100")
    proc = start(run_dir, every_100)
    # Saves at steps 100, 200, 225 (end of epoch 0), 300: stop inside epoch 1.
    wait_for_saves(proc, run_dir, 4)
    proc.send_signal(signal.SIGTERM)
    rc, _, err = finish(proc)
    assert rc == 128 + signal.SIGTERM
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    last = run_dir / "checkpoints" / "last.ckpt"
    assert lines[0].startswith(f"error: stopped by SIGTERM; saved {last} — resume with: dl-train ")
    assert results(run_dir)["status"] == "interrupted"
    state = torch.load(last, weights_only=True)
    assert 300 <= state["global_step"] < 2 * STEPS_PER_EPOCH  # inside epoch 1

    command = shlex.split(lines[0].split("resume with: ", 1)[1])
    assert command[-1] == f"hydra.run.dir={run_dir}"
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"} | ONE_THREAD
    done = subprocess.run(
        [str(BIN / command[0]), *command[1:]], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert results(run_dir)["metrics"] == reference["metrics"]
    assert epoch_rows(run_dir) == epoch_rows(reference["dir"])


SMALL = ["data=synthetic", "data.shape=[1,6,6]", "data.num_classes=4", "trainer.max_epochs=2",
         "trainer.deterministic=true", "model.dropout=0.1", "logger=none"]  # fmt: skip


def _state(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def _net_weights(run: Path) -> list[torch.Tensor]:
    return [t for k, t in _state(run).items() if k.startswith("net.")]


def test_same_seed_same_numbers_and_weights_other_seed_differs(tmp_path: Path) -> None:
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        _, runs[name] = train_in_process(tmp_path / name, [f"seed={seed}", *SMALL])
    assert runs["a"]["metrics"] == runs["b"]["metrics"]
    assert runs["a"]["metrics"] != runs["c"]["metrics"]
    a, b, c = (_state(tmp_path / n / "run") for n in "abc")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_ckpt_path_resumes_from_a_given_file(tmp_path: Path) -> None:
    _, full = train_in_process(tmp_path / "full", ["trainer.max_epochs=3", *SMALL[:3], *SMALL[4:]])
    _, short = train_in_process(tmp_path / "short", SMALL)  # 2 epochs
    ckpt = tmp_path / "short" / "run" / "checkpoints" / "last.ckpt"
    _, resumed = train_in_process(
        tmp_path / "other", [f"ckpt_path={ckpt}", "trainer.max_epochs=3", *SMALL[:3], *SMALL[4:]]
    )
    assert short["epochs"] == 2 and resumed["epochs"] == 3
    assert resumed["metrics"] == full["metrics"]


def test_resume_auto_continues_and_resume_never_starts_fresh(tmp_path: Path, capsys) -> None:
    train_in_process(tmp_path, SMALL)
    capsys.readouterr()
    train_in_process(tmp_path, ["resume=never", *SMALL])
    assert "resuming from" not in capsys.readouterr().out
    _, again = train_in_process(tmp_path, SMALL)
    assert (
        f"resuming from {tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}" in capsys.readouterr().out
    )
    assert again["status"] == "completed" and again["epochs"] == 2


def test_truncated_last_checkpoint_is_refused_on_resume(tmp_path: Path) -> None:
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="is truncated or corrupt"):
        train_in_process(tmp_path, SMALL)
    assert results(tmp_path / "run")["status"] == "failed"


def test_a_failing_save_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    io = SafeCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": torch.tensor(1)}, path)

    def dies_halfway(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt  # what a kill during the write looks like to the file

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": torch.tensor(2)}, path)
    monkeypatch.undo()
    assert io.load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


class Payload:
    """Not a tensor: a weights_only load must refuse to build it."""

    def __reduce__(self):
        return (os.getcwd, ())


def test_checkpoints_with_arbitrary_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": Payload()}, path)
    with pytest.raises(DataError, match="not a plain-tensor checkpoint"):
        SafeCheckpointIO().load_checkpoint(path)


def test_nan_loss_stops_and_keeps_a_finite_last_checkpoint(tmp_path: Path) -> None:
    from dltrain.errors import RunError

    every = ["callbacks.mid_epoch_checkpoint.train_time_interval=null",
             "callbacks.mid_epoch_checkpoint.every_n_train_steps=1"]  # fmt: skip
    with pytest.raises(RunError) as info:
        train_in_process(tmp_path, ["optimizer=sgd", "optimizer.lr=1e30", *every, *SMALL])
    assert "became NaN/inf" in str(info.value)
    assert str(info.value).endswith("or set nan_policy=skip to drop such batches")
    assert results(tmp_path / "run")["status"] == "failed"
    # Saved after every step: last.ckpt is the last step whose weights were finite,
    # before the step the error names.
    bad_step = int(re.search(r"(?:by|at) step (\d+)", str(info.value)).group(1))
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert 0 < last["global_step"] <= bad_step
    weights = _net_weights(tmp_path / "run")
    assert weights and all(t.isfinite().all() for t in weights)


def test_nan_policy_skip_drops_bad_batches_and_finishes(tmp_path: Path) -> None:
    _, rec = train_in_process(tmp_path, ["nan_policy=skip", "optimizer=sgd", "optimizer.lr=1e30",
                                         *SMALL])  # fmt: skip
    assert rec["status"] == "completed"
    weights = _net_weights(tmp_path / "run")
    assert weights and all(t.isfinite().all() for t in weights)
