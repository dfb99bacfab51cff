"""Many workers on one study: a real PostgreSQL server (three `dl-train -m` workers, a
killed worker's trial failed by the heartbeat) and submitit's job machinery (the path
`hydra/launcher=submitit_slurm` takes, run with its local executor).

The PostgreSQL tests start a throwaway server (Debian's `postgresql` package: `initdb`
and `pg_ctl`, as the `postgres` user when the tests run as root) on a free loopback
port in a temporary folder, and stop it afterwards. `.ci/run` installs the package
when it is missing; without the binaries these tests skip and say why.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from conftest import BIN, run_cli

# Debug-sized trials whose pruning is certain: a threshold pruner stops every trial
# below 50% validation accuracy after its first epoch, which lr=1e-5 never reaches
# and lr=3e-2 always passes on the digits.
SEARCH = """\
# @package _global_
defaults:
  - override /hydra/sweeper: dltrain_optuna
optimized_metric: val/acc_best
test: false
trainer: {max_epochs: 2}
model: {hidden: [64]}
callbacks: {plots: null}
hydra:
  sweep:
    dir: ${paths.log_dir}/${task_name}/sweeps/${hydra.sweeper.study_name}
    subdir: trial_${trial.number}
  sweeper:
    study_name: shared
    n_trials: 6
    sampler: grid
    pruner: {_target_: optuna.pruners.ThresholdPruner, lower: 0.5}
    params:
      optimizer.lr: {type: categorical, choices: [1.0e-5, 3.0e-2]}
      model.dropout: {type: categorical, choices: [0.0, 0.1, 0.2]}
"""
NO_SERVER = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found — .ci/run installs Debian's "
    "postgresql package; locally: apt-get install postgresql"
)


def search_args(tmp_path: Path) -> list[str]:
    extra = tmp_path / "extra_configs" / "hparams_search"
    extra.mkdir(parents=True, exist_ok=True)
    (extra / "shared.yaml").write_text(SEARCH)
    return ["-m", "hparams_search=shared", f"hydra.searchpath=[file://{extra.parent}]"]


def server_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return versions[-1] if versions else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server on 127.0.0.1; its URL (SQLAlchemy, psycopg2)."""
    initdb, pg_ctl = server_binary("initdb"), server_binary("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip(NO_SERVER)
    pytest.importorskip("psycopg2", reason="no PostgreSQL driver: pip install 'dl-train[postgres]'")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="dltrain-pg-"))
    if os.geteuid() == 0:  # the server refuses to run as root
        import pwd

        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(folder)
            pytest.skip("running as root needs a 'postgres' user (Debian's postgresql creates it)")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", free_port()
    run = dict(check=True, capture_output=True, text=True, timeout=120)
    subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "postgres"], **run)
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    start = [pg_ctl, "-D", str(data), "-l", str(folder / "server.log"), "-o", options, "-w"]
    subprocess.run([*as_user, *start, "start"], **run)
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], **run)
        shutil.rmtree(folder, ignore_errors=True)


def load(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=optuna.storages.RDBStorage(url))


def test_three_workers_share_one_postgresql_study(tmp_path: Path, postgres_url: str) -> None:
    """Each worker in its own folder, as on its own machine: exactly n_trials trials, no
    trial run twice, pruning works, and every worker's summary and dl-report show the
    whole study (a worker waits for the trials the others are still running)."""
    args = [*search_args(tmp_path), f"hydra.sweeper.storage={postgres_url}"]
    workers = [tmp_path / f"worker{i}" for i in range(3)]
    procs = []
    for folder in workers:
        folder.mkdir()
        procs.append(
            subprocess.Popen(
                [str(BIN / "dl-train"), *args],
                cwd=folder,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-2000:] for _, err in outputs]
    ran = [  # "trial N: complete/pruned/failed" lines: which worker ran which trial
        int(line.split(":")[0].split()[1])
        for out, _ in outputs
        for line in out.splitlines()
        if line.startswith("trial ") and ": " in line
    ]
    assert sorted(ran) == list(range(6))  # every trial once, by one worker

    study = load(postgres_url, "shared")
    trials = [t for t in study.trials if t.state != optuna.trial.TrialState.WAITING]
    assert sorted(t.number for t in trials) == list(range(6))
    by_lr = {1e-5: set(), 3e-2: set()}
    for t in trials:
        by_lr[t.params["optimizer.lr"]].add(t.state.name)
    assert by_lr == {1e-5: {"PRUNED"}, 3e-2: {"COMPLETE"}}, by_lr
    for folder in workers:
        summary = json.loads(
            (folder / "outputs/train/sweeps/shared/sweep_summary.json").read_text()
        )
        assert [t["number"] for t in summary["trials"]] == list(range(6))
        assert summary["counts"] == {"COMPLETE": 3, "PRUNED": 3}
        report = run_cli(["outputs/train/sweeps/shared"], cwd=folder, cmd="dl-report")
        assert report.returncode == 0, report.stderr
        table = (folder / "outputs/train/sweeps/shared/report.md").read_text()
        assert table.count("| completed |") == 3 and table.count("| pruned |") == 3, table


def test_a_killed_workers_trial_is_failed_by_the_heartbeat(
    tmp_path: Path, postgres_url: str
) -> None:
    """A worker SIGKILLed mid-trial can record nothing. Its trial's owner is set to
    another machine here, so only Optuna's heartbeat check can end it: after
    grace_period without a heartbeat, the next worker fails it, and it does not count."""
    args = [
        *search_args(tmp_path),
        f"hydra.sweeper.storage={postgres_url}",
        "hydra.sweeper.study_name=killed",
        "hydra.sweeper.n_trials=1",
        "hydra.sweeper.heartbeat_interval=1",
        "hydra.sweeper.grace_period=2",
        "optimizer.lr=0.03",  # a trial that completes
    ]
    first = subprocess.Popen(
        [str(BIN / "dl-train"), *args, "trainer.max_epochs=100000", "hydra.sweeper.pruner=none"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert first.stdout is not None
    for line in first.stdout:
        if line.startswith("epoch 1:"):  # trial 0 is training, its heartbeat beating
            break
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    storage = optuna.storages.RDBStorage(postgres_url)
    study = optuna.load_study(study_name="killed", storage=storage)
    (running,) = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    storage.set_trial_user_attr(running._trial_id, "owner", "another-machine:1")
    time.sleep(3)  # > grace_period

    out = run_cli([*args, "trainer.max_epochs=1"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (
        "trial 0 was left running by a sweep process that stopped sending heartbeats: "
        "recorded as failed, it does not count toward n_trials"
    ) in out.stdout
    summary = json.loads((tmp_path / "outputs/train/sweeps/killed/sweep_summary.json").read_text())
    states = [(t["number"], t["state"], t["reason"]) for t in summary["trials"]]
    assert states[0] == (0, "FAIL", "interrupted: its sweep process stopped sending heartbeats")
    assert [s[1] for s in states[1:]] == ["COMPLETE"]  # n_trials=1: one counted trial


def test_a_pruning_sweep_through_submitits_job_machinery(tmp_path: Path) -> None:
    """hydra/launcher=submitit_local: every trial is a submitit job in its own process,
    as on SLURM (submitit_slurm differs only in the executor); pruned trials come back
    as pruned."""
    pytest.importorskip(
        "hydra_plugins.hydra_submitit_launcher", reason="pip install 'dl-train[slurm]'"
    )
    out = run_cli(
        [
            *search_args(tmp_path),
            "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=10",
            "hydra.sweeper.n_jobs=2",
            "hydra.sweeper.n_trials=4",
            "hydra.sweeper.study_name=submitit",
            "model.dropout=choice(0.0,0.1)",
        ],
        cwd=tmp_path,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    sweep = tmp_path / "outputs/train/sweeps/submitit"
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    states = {(t["params"]["optimizer.lr"], t["state"]) for t in summary["trials"]}
    assert states == {(1e-5, "PRUNED"), (3e-2, "COMPLETE")}
    assert summary["counts"] == {"COMPLETE": 2, "PRUNED": 2}
    assert len(list((sweep / ".submitit").glob("*/*_result.pkl"))) == 4  # submitit's own jobs
    for t in summary["trials"]:
        results = json.loads((Path(t["run_dir"]) / "results.json").read_text())
        assert results["status"] == {"PRUNED": "pruned", "COMPLETE": "completed"}[t["state"]]


def test_a_submitit_launcher_without_its_extra_names_the_extra() -> None:
    from hydra.errors import MissingConfigException

    from dltrain.errors import describe

    missing = MissingConfigException(
        "Could not find 'hydra/launcher/submitit_slurm'",
        missing_cfg_file="hydra/launcher/submitit_slurm",
        options=["basic", "joblib"],
    )
    assert describe(missing) == (
        2,
        "hydra/launcher=submitit_slurm needs the slurm extra (hydra-submitit-launcher) — "
        "pip install 'dl-train[slurm]'",
    )
