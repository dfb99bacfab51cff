"""``scripts/gpu_check.sh``: its dry run composes every command it would run on a GPU,
and a failing command makes the script fail."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from conftest import BIN, ROOT

SCRIPT = ROOT / "scripts" / "gpu_check.sh"
#: 5 single-GPU runs, the speed pair, SIGTERM, 4 x (train, eval, predict), clip, FSDP compile,
#: FSDP channels-last, FSDP resume, global batch, DDP multirun, DDP sweep, SIGUSR1, parallel
#: trials, sweep
LINES = 30


def _run(tmp_path: Path, bin_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DLTRAIN_BIN": str(bin_dir), "GPU_CHECK_OUT": str(tmp_path / "out")}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        ["bash", str(SCRIPT), "--dry-run"], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip


def _table(stdout: str) -> list[list[str]]:
    rows = [line.split("|")[1:-1] for line in stdout.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row] for row in rows[1:]]  # without the header


def test_the_dry_run_composes_every_gpu_command(tmp_path: Path) -> None:
    out = _run(tmp_path, BIN)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = _table(out.stdout)
    assert len(rows) == LINES, out.stdout
    assert all(row[1] == "ok" for row in rows), out.stdout
    commands = "\n".join(row[0] for row in rows)
    for what in ("trainer=gpu", "trainer=bf16", "16-mixed", "compile=true", "channels_last=true",
                 "experiment=mnist_speed", "plain_loop.py", "SIGTERM", "trainer=ddp",
                 "trainer=fsdp", "model=resnet", "model=vit", "dl-eval", "dl-predict",
                 "-m hparams_search=mnist_optuna", "SIGTERM mid-epoch under trainer=fsdp",
                 "-m trainer=ddp data=digits optimizer.lr=0.01,0.001",
                 "-m hparams_search=digits_optuna trainer=ddp", "SIGUSR1",
                 "hydra/launcher=joblib hydra.sweeper.n_jobs=2 trainer=gpu",
                 "trainer=ddp data.global_batch_size=128 debug=fast",
                 "trainer=fsdp compile=true",
                 "trainer=fsdp channels_last=true +trainer.sync_batchnorm=true"):  # fmt: skip
        assert what in commands, what
    # Each command really was composed: its log holds the composed config.
    out_dir = tmp_path / "out"
    gpu_log = (out_dir / "gpu.log").read_text()
    assert "accelerator: gpu" in gpu_log and "max_epochs: 1" in gpu_log
    # A multirun's a,b list is composed with its first value (Hydra's --cfg is one job).
    assert "lr: 0.01\n" in (out_dir / "ddp-multirun.log").read_text()
    assert "global_batch_size: 128" in (out_dir / "global-batch.log").read_text()
    assert "every_n_train_steps: 40" in (out_dir / "fsdp-resume.log").read_text()
    fsdp_compile = (out_dir / "fsdp-compile.log").read_text()
    assert "_target_: dltrain.checkpointing.fsdp.FSDP2Strategy" in fsdp_compile
    assert "compile: true" in fsdp_compile
    assert "sync_batchnorm: true" in (out_dir / "fsdp-channels-last.log").read_text()
    # SIGUSR1's run sees SLURM's variables and a scontrol that records the requeue.
    scontrol = out_dir / "fake-slurm" / "scontrol"
    subprocess.run([str(scontrol), "requeue", "4242"], check=True)
    assert (out_dir / "scontrol.calls").read_text() == "requeue 4242\n"
    assert (tmp_path / "out" / "table.md").read_text().strip() == out.stdout.strip()


def test_a_command_that_fails_fails_the_script(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    for name in ("dl-train", "dl-eval", "dl-predict", "python"):
        tool = fake / name
        tool.write_text("#!/bin/sh\nexit 3\n")
        tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    out = _run(tmp_path, fake)
    assert out.returncode == 1
    rows = _table(out.stdout)
    assert len(rows) == LINES and all(row[1] == "FAILED (exit 3)" for row in rows), out.stdout


def test_gpu_check_only_runs_the_named_lines(tmp_path: Path) -> None:
    env = {**os.environ, "DLTRAIN_BIN": str(BIN), "GPU_CHECK_OUT": str(tmp_path / "out"),
           "GPU_CHECK_ONLY": "sigusr1,ddp-multirun"}  # fmt: skip
    out = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run"], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    rows = _table(out.stdout)
    assert [row[0].split()[0] for row in rows] == ["dl-train", "SIGUSR1"], out.stdout
    assert "-m trainer=ddp" in rows[0][0] and all(row[1] == "ok" for row in rows)
