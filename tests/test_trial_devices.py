"""Parallel jobs (joblib launcher) on a one-GPU profile spread over the GPUs, each with
its share of its GPU's data budget; checked in process with a faked GPU count."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import torch
from omegaconf import DictConfig, open_dict

from dltrain.commands.build import datamodule, hardware_settings

#: A parallel Optuna sweep on one-GPU runs: 4 trials at a time, 4 joblib workers.
PARALLEL = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=4", "hydra/sweeper=dltrain_optuna",
            "hydra.sweeper.n_jobs=4", "hydra.mode=MULTIRUN"]  # fmt: skip
GPU = ["data=digits", "trainer=gpu", "trainer.precision=32-true"]


def _job(*overrides: str, num: int = 0) -> DictConfig:
    """The config a job sees, with Hydra's config set as in a running job number ``num``."""
    return _as_job(_compose(*overrides), num)


def _compose(*overrides: str) -> DictConfig:
    from hydra import compose

    return compose("train", overrides=["paths.output_dir=.", *overrides],
                   return_hydra_config=True)  # fmt: skip


def _as_job(composed: DictConfig, num: int) -> DictConfig:
    from hydra.core.hydra_config import HydraConfig

    cfg = copy.deepcopy(composed)  # Hydra makes its part read-only once set
    with open_dict(cfg):
        cfg.hydra.job.num = num
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.fixture(scope="module", autouse=True)
def _configs() -> Iterator[None]:
    """One Hydra initialisation for the module (each costs about as much as a compose)."""
    from hydra import initialize_config_dir

    from conftest import ROOT

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        yield


@pytest.fixture(autouse=True)
def _no_hydra_left() -> Iterator[None]:
    from hydra.core.hydra_config import HydraConfig

    yield
    HydraConfig.instance().cfg = None


def _gpus(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


@pytest.mark.parametrize(
    "count,devices", [(2, [0, 1, 0, 1, 0, 1]), (4, [0, 1, 2, 3, 0, 1]), (1, [0] * 6)]
)
def test_parallel_trial_k_takes_gpu_k_mod_the_gpu_count(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], count: int,
    devices: list[int],
) -> None:  # fmt: skip
    _gpus(monkeypatch, count)
    cfg = _compose(*GPU, *PARALLEL)
    # job k of a sweep: hydra.job.num = the trial number
    got = [hardware_settings(_as_job(cfg, k))["devices"][0] for k in range(6)]
    assert got == devices
    lines = capsys.readouterr().out.splitlines()
    share = {1: "4 parallel jobs (data.device_budget 0.25 -> 0.0625 each)",
             2: "2 parallel jobs (data.device_budget 0.25 -> 0.125 each)"}  # fmt: skip
    expected = [f"job {k}: cuda:{d} of {count} GPUs" for k, d in enumerate(devices)]
    if count in share:
        expected = [f"{line}, shared by up to {share[count]}" for line in expected]
    assert lines == expected  # one line per job


@pytest.mark.parametrize(
    "count,extra,budget",
    [(2, [], 0.125), (4, [], 0.25), (1, [], 0.0625), (2, ["data.device_budget=0.5"], 0.25)],
)
def test_a_parallel_trials_data_budget_is_its_share_of_its_gpu(
    monkeypatch: pytest.MonkeyPatch, count: int, extra: list[str], budget: float
) -> None:
    _gpus(monkeypatch, count)
    cfg = _job(*GPU, *PARALLEL, *extra, num=3)
    assert datamodule(cfg).device_budget == budget
    assert cfg.data.device_budget == (0.5 if extra else 0.25)  # the config stays as given


@pytest.mark.parametrize(
    "overrides",
    [
        ["trainer.devices=[1]"],  # the user's device
        ["trainer.devices='1,'"],  # Lightning's index string
        ["trainer=cpu"],
        ["trainer=ddp_cpu"],
        ["trainer=ddp"],  # one process per GPU: the run takes them all
        ["trainer.devices=2"],
        ["trainer.num_nodes=2"],
    ],
)
def test_explicit_devices_cpu_and_multi_process_profiles_are_left_alone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], overrides: list[str]
) -> None:
    _gpus(monkeypatch, 4)
    cfg = _job(*GPU, *PARALLEL, *overrides, num=3)
    assert "devices" not in hardware_settings(cfg)
    assert datamodule(cfg).device_budget == 0.25
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    "launch",
    [
        ["hydra.mode=MULTIRUN"],  # Hydra's basic launcher: one job at a time
        ["hydra/launcher=joblib", "hydra.launcher.n_jobs=1", "hydra.mode=MULTIRUN"],
        [*PARALLEL[:4], "hydra.sweeper.n_jobs=1", "hydra.mode=MULTIRUN"],
        PARALLEL[:4],  # a single run (hydra.mode=RUN)
    ],
)
def test_jobs_that_do_not_run_side_by_side_keep_the_profiles_device(
    monkeypatch: pytest.MonkeyPatch, launch: list[str]
) -> None:
    _gpus(monkeypatch, 4)
    cfg = _job(*GPU, *launch, num=3)
    assert "devices" not in hardware_settings(cfg)
    assert datamodule(cfg).device_budget == 0.25


def test_the_share_bounds_any_order_in_which_workers_start_jobs() -> None:
    from dltrain.runtime.trial_devices import spread

    # 8 jobs a batch, 2 workers, 4 GPUs: jobs k and k+4 share a GPU, both may run at once.
    assert [spread(k, 2, 8, 4).index for k in range(8)] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert spread(5, 2, 8, 4).sharers == 2
    assert spread(5, 3, 12, 2).sharers == 3  # never more than the workers
    assert spread(5, 3, None, 2).sharers == 3  # batch unknown: every worker on one GPU
    assert spread(0, 4, 2, 4).sharers == 1


def test_a_basic_sweepers_batch_bounds_the_share(monkeypatch: pytest.MonkeyPatch) -> None:
    _gpus(monkeypatch, 2)
    joblib = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=8", "hydra.mode=MULTIRUN"]
    cfg = _job(*GPU, *joblib, "hydra.sweeper.max_batch_size=4", num=1)
    assert hardware_settings(cfg)["devices"] == [1]
    assert datamodule(cfg).device_budget == 0.125  # 4 at once, 2 on each GPU
    cfg = _job(*GPU, *joblib, num=1)  # all jobs in one batch: up to 8 side by side
    assert datamodule(cfg).device_budget == 0.25 / 8
