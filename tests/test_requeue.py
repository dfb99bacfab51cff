"""SLURM's requeue signal (SIGUSR1) under ``trainer=ddp_cpu``, launched as ``srun`` does:
one ``dl-train`` process per task, with SLURM's variables, so Lightning detects SLURM
and would install its own requeue handler (which saves inside the handler).

The signal only sets a flag; the ranks decide together at a batch boundary, save one
``last.ckpt``, rank 0 runs ``scontrol requeue`` (a fake one, first on ``PATH``), and
the requeued job (the same command again) continues exactly.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import torch

from conftest import BIN

# A tiny MLP on synthetic data: 600 samples = 300 per rank = 38 steps of 8 per epoch.
RUN = ["trainer=ddp_cpu", "data=synthetic", "data.shape=[1,4,4]", "data.num_classes=3",
       "data.num_train=600", "data.num_test=101", "data.val_fraction=0", "data.batch_size=8",
       "model.hidden=[16]", "trainer.deterministic=true", "logger=none", "trainer.max_epochs=1",
       "model.dropout=0.3", "data._target_=usr1data.SignalledData"]  # fmt: skip

SIGNALLED = '''
import os
import signal

from dltrain.data.sources.synthetic import SyntheticDataModule


class SignalledData(SyntheticDataModule):
    """Synthetic data whose training batches send SIGUSR1 to this process at the steps
    named by USR1_AT ("rank:step,..."): each rank at its own step, as SLURM's signal
    reaches the tasks at whatever point each is."""

    def on_before_batch_transfer(self, batch, dataloader_idx):
        trainer = self.trainer
        at = dict(p.split(":") for p in os.environ.get("USR1_AT", "").split(",") if p)
        if trainer.training and str(trainer.global_step) == at.get(str(trainer.global_rank)):
            os.kill(os.getpid(), signal.SIGUSR1)
        return batch
'''

SCONTROL = '#!/bin/sh\necho "$@" >> "$SCONTROL_LOG"\n'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _srun(tmp_path: Path, run_dir: Path, usr1_at: str = "") -> list[subprocess.CompletedProcess]:
    """Both tasks of a 2-task SLURM job step, started as srun starts them."""
    (tmp_path / "usr1data.py").write_text(SIGNALLED)
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "scontrol").write_text(SCONTROL)
    (fake / "scontrol").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env.update(
        OMP_NUM_THREADS="1", USR1_AT=usr1_at,
        PYTHONPATH=os.pathsep.join(p for p in (str(tmp_path), env.get("PYTHONPATH")) if p),
        PATH=f"{fake}{os.pathsep}{env['PATH']}", SCONTROL_LOG=str(tmp_path / "scontrol.log"),
        SLURM_JOB_ID="4242", SLURM_JOB_NAME="train", SLURM_NTASKS="2",
        SLURM_NTASKS_PER_NODE="2", SLURM_NNODES="1", SLURM_NODEID="0",
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()),
    )  # fmt: skip
    procs = [
        subprocess.Popen(
            [str(BIN / "dl-train"), *RUN, f"hydra.run.dir={run_dir}"], cwd=tmp_path,
            env={**env, "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        for rank in (0, 1)
    ]
    done = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=180)  # a hang fails here
            done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return done


def test_sigusr1_at_different_steps_saves_once_requeues_once_and_resumes_exactly(
    tmp_path: Path,
) -> None:
    ref = _srun(tmp_path, tmp_path / "ref")
    assert [p.returncode for p in ref] == [0, 0], ref[0].stderr + ref[1].stderr
    expected = json.loads((tmp_path / "ref" / "results.json").read_text())
    assert expected["world_size"] == 2 and expected["steps"] == 38

    run_dir = tmp_path / "run"
    stopped = _srun(tmp_path, run_dir, usr1_at="0:3,1:9")  # rank 0 at step 3, rank 1 at 9
    assert [p.returncode for p in stopped] == [128 + signal.SIGUSR1] * 2, stopped[0].stderr
    last = run_dir / "checkpoints" / "last.ckpt"
    errors = [line for p in stopped for line in p.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: stopped by SIGUSR1; saved {last} — requeued SLURM job 4242; it continues "
        "from there (resume=auto)"
    ], stopped[0].stderr + stopped[1].stderr
    assert (tmp_path / "scontrol.log").read_text() == "requeue 4242\n"  # once, by rank 0
    # One checkpoint, no hpc_ckpt_*.ckpt of Lightning's handler; both ranks stopped after
    # the first common check (step 16) that saw rank 1's step-9 signal.
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]
    assert not list(run_dir.glob("hpc_ckpt_*"))
    assert torch.load(last, weights_only=True)["global_step"] == 16

    again = _srun(tmp_path, run_dir)  # the requeued job: the same command, resume=auto
    assert [p.returncode for p in again] == [0, 0], again[0].stderr + again[1].stderr
    assert "resuming from" in again[0].stdout
    resumed = json.loads((run_dir / "results.json").read_text())
    assert resumed["steps"] == expected["steps"]
    for key, value in expected["metrics"].items():
        assert abs(resumed["metrics"][key] - value) <= 1e-6, (key, resumed["metrics"], value)
    assert (tmp_path / "scontrol.log").read_text() == "requeue 4242\n"


def test_one_process_on_slurm_takes_sigusr1_from_lightning_and_requeues_after_the_save(
    tmp_path: Path, monkeypatch
) -> None:
    import lightning.pytorch as pl
    from lightning.pytorch.demos.boring_classes import BoringModel
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from dltrain.checkpointing.signals import StopOnSignal, interruption

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "scontrol").write_text(SCONTROL)
    (fake / "scontrol").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SCONTROL_LOG", str(tmp_path / "scontrol.log"))
    for key, value in {"SLURM_JOB_ID": "77", "SLURM_JOB_NAME": "train", "SLURM_NTASKS": "1",
                       "SLURM_NTASKS_PER_NODE": "1", "SLURM_NNODES": "1", "SLURM_NODEID": "0",
                       "SLURM_PROCID": "0", "SLURM_LOCALID": "0"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    before = signal.getsignal(signal.SIGUSR1)
    seen = []

    class Signal(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append(signal.getsignal(signal.SIGUSR1))
            if trainer.global_step == 2:
                os.kill(os.getpid(), signal.SIGUSR1)  # as SLURM's --signal=USR1@...

    stop = StopOnSignal(tmp_path / "run" / "checkpoints" / "last.ckpt")
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=20, logger=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path / "run", callbacks=[stop, Signal()])  # fmt: skip
    try:
        trainer.fit(BoringModel())
    except SIGTERMException as ex:
        stopped = interruption(ex, tmp_path / "run")
    else:
        raise AssertionError("SIGUSR1 did not stop training")
    assert seen[0] == stop._on_requeue_signal  # Lightning's saving handler never installed
    assert signal.getsignal(signal.SIGUSR1) == before  # put back after the run
    assert str(stopped) == (
        f"stopped by SIGUSR1; saved {tmp_path / 'run' / 'checkpoints' / 'last.ckpt'} — "
        "requeued SLURM job 77; it continues from there (resume=auto)"
    )
    assert stopped.exit_code == 128 + signal.SIGUSR1
    assert torch.load(stop.last_path, weights_only=True)["global_step"] == 3
    assert not list((tmp_path / "run").glob("hpc_ckpt_*"))
    assert (tmp_path / "scontrol.log").read_text() == "requeue 77\n"
