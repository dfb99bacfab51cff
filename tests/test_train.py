"""Training runs end to end: in-process for speed, and as CLI processes as users run them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from conftest import BIN, ROOT, run_cli, run_dir_of
from dltrain.commands.train import run

CONFIGS = ROOT / "configs"


def train_in_process(tmp_path: Path, overrides: list[str]) -> tuple[float | None, dict]:
    """Compose like the CLI does and call the recipe; returns (metric, results.json)."""
    out = tmp_path / "run"
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"paths.output_dir={out}", *overrides])
    value = run(cfg)
    return value, json.loads((out / "results.json").read_text())


SMALL = ["data=synthetic", "data.shape=[1,12,12]", "data.num_classes=4", "trainer.max_epochs=2"]


@pytest.mark.parametrize("model,logger", [("mlp", "tensorboard"), ("cnn", "csv")])
def test_each_model_trains_and_records(tmp_path: Path, model: str, logger: str) -> None:
    value, results = train_in_process(tmp_path, [f"model={model}", f"logger={logger}", *SMALL])
    assert results["status"] == "completed"
    metrics = results["metrics"]
    for key in (
        "train/loss",
        "train/acc",
        "val/loss",
        "val/acc",
        "val/acc_best",
        "test/loss",
        "test/acc",
    ):
        assert key in metrics, key
    assert value == metrics["val/acc_best"]
    assert results["epochs"] == 2 and results["steps"] > 0
    assert results["train_samples_per_s"] > 0
    # Every epoch saw the same training split: a whole, equal number of samples each.
    assert results["train_samples"] > 0 and results["train_samples"] % 2 == 0
    # Time inside the training epochs: part of fit_s (which adds setup and validation).
    assert 0 < results["train_s"] < results["fit_s"]
    assert {"python", "torch", "lightning"} <= set(results["versions"])
    ckpt_dir = tmp_path / "run" / "checkpoints"
    assert (ckpt_dir / "last.ckpt").is_file()
    assert Path(results["best_checkpoint"]).parent == ckpt_dir
    for ckpt in ckpt_dir.glob("*.ckpt"):  # plain tensors and values only
        state = torch.load(ckpt, weights_only=True)
        assert state["dltrain_config"]["model"]["_target_"].endswith(model.upper())
    log_dir = tmp_path / "run" / logger
    assert log_dir.is_dir() and any(log_dir.iterdir())


def test_bf16_mixed_precision_on_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The net's forward runs under CPU autocast in bfloat16 (its logits are bf16)."""
    from dltrain.nets.mlp import MLP

    seen: list[tuple[bool, torch.dtype]] = []
    forward = MLP.forward

    def recording(self: MLP, x: torch.Tensor) -> torch.Tensor:
        out = forward(self, x)
        if self.training:
            seen.append((torch.is_autocast_enabled("cpu"), out.dtype))
        return out

    monkeypatch.setattr(MLP, "forward", recording)
    _, results = train_in_process(tmp_path, ["trainer.precision=bf16-mixed", *SMALL])
    assert results["status"] == "completed"
    assert len(seen) == results["steps"] > 0
    assert set(seen) == {(True, torch.bfloat16)}


def test_no_validation_split_tests_last_weights(tmp_path: Path) -> None:
    value, results = train_in_process(tmp_path, ["data.val_fraction=0", *SMALL])
    assert value is None
    assert "val/acc" not in results["metrics"] and "test/acc" in results["metrics"]
    assert results["best_checkpoint"].endswith("last.ckpt")


def test_default_make_train_reaches_90_percent_on_digits(tmp_path: Path) -> None:
    out = run_cli([], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    results = json.loads((run_dir_of(tmp_path) / "results.json").read_text())
    assert results["metrics"]["test/acc"] >= 0.90
    assert "test/acc=" in out.stdout
    assert "Traceback" not in out.stderr


def test_eval_reproduces_test_metrics_of_its_checkpoint(tmp_path: Path) -> None:
    out = run_cli(["model=cnn", "trainer.max_epochs=3"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    train_results = json.loads((run_dir_of(tmp_path) / "results.json").read_text())
    ckpt = train_results["best_checkpoint"]
    out = run_cli([f"ckpt_path={ckpt}"], cwd=tmp_path, cmd="dl-eval")
    assert out.returncode == 0, out.stderr
    eval_results = json.loads((run_dir_of(tmp_path, "eval") / "results.json").read_text())
    for key in ("test/acc", "test/loss"):
        assert eval_results["metrics"][key] == pytest.approx(
            train_results["metrics"][key], abs=1e-6
        )
    # Validation on the same split as training, with the best checkpoint's weights.
    assert eval_results["metrics"]["val/acc"] == pytest.approx(
        train_results["metrics"]["val/acc_best"], abs=1e-6
    )
    # Two processes: the 359 test digits (odd) split 180 + 179, the short shard padded
    # and the padding ignored, so the metrics are the single process's exactly.
    ddp_dir = tmp_path / "eval_ddp"
    out = run_cli([f"ckpt_path={ckpt}", "trainer=ddp_cpu", f"hydra.run.dir={ddp_dir}"],
                  cwd=tmp_path, cmd="dl-eval")  # fmt: skip
    assert out.returncode == 0, out.stderr
    ddp_metrics = json.loads((ddp_dir / "results.json").read_text())["metrics"]
    for key in ("test/acc", "test/loss", "test/auroc", "test/f1_macro", "val/acc", "val/loss"):
        assert ddp_metrics[key] == pytest.approx(eval_results["metrics"][key], abs=1e-6), key


@pytest.mark.parametrize("profile", ["gpu", "bf16", "ddp", "fsdp"])
def test_gpu_profiles_fail_cleanly_without_cuda(tmp_path: Path, profile: str) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    out = run_cli(["model=cnn", "data=mnist", f"trainer={profile}"], cwd=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: this trainer profile needs a CUDA GPU")
    assert "use trainer=cpu" in lines[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_with_torchrun_on_loopback(tmp_path: Path) -> None:
    port = _free_port()
    procs, logs = [], []
    for node in range(2):
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes=2",
            "--nproc-per-node=1",
            f"--node-rank={node}",
            "--master-addr=127.0.0.1",
            f"--master-port={port}",
            str(BIN / "dl-train"),
            "trainer=ddp_cpu",
            "trainer.devices=1",
            "trainer.num_nodes=2",
            f"hydra.run.dir={tmp_path}/node{node}",
            *SMALL,
        ]
        # Output to files, not pipes: waiting on one node while the other fills its pipe
        # would deadlock both (they wait for each other in collectives).
        log = open(tmp_path / f"node{node}.log", "w")  # noqa: SIM115 - closed below
        procs.append(
            subprocess.Popen(cmd, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, text=True)
        )
        logs.append(log)
    for p in procs:
        p.wait(timeout=300)
    for log in logs:
        log.close()
    outputs = [(tmp_path / f"node{n}.log").read_text()[-3000:] for n in range(2)]
    assert [p.returncode for p in procs] == [0, 0], outputs
    results = json.loads((tmp_path / "node0" / "results.json").read_text())
    assert results["status"] == "completed" and results["world_size"] == 2
    assert not (tmp_path / "node1" / "results.json").exists()  # rank 0 writes the record


def test_a_cpu_run_hides_gpus_for_its_duration(monkeypatch: pytest.MonkeyPatch) -> None:
    from omegaconf import OmegaConf

    from dltrain.runtime.process import gpus_hidden_on_cpu

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    cpu = OmegaConf.create({"trainer": {"accelerator": "cpu"}})

    # torch's NVML-based device count (what Lightning makes is_available() use) must
    # return 0 without opening NVML while the GPUs are hidden, and ask NVML otherwise.
    def nvml(*_: object) -> int:
        raise AssertionError("NVML opened")

    monkeypatch.setattr(torch.cuda, "_raw_device_count_nvml", nvml)
    with gpus_hidden_on_cpu(cpu):
        assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
        assert torch.cuda._device_count_nvml() == 0
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    with pytest.raises(AssertionError, match="NVML opened"):
        torch.cuda._device_count_nvml()
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    with gpus_hidden_on_cpu(OmegaConf.create({"trainer": {"accelerator": "gpu"}})):
        assert "CUDA_VISIBLE_DEVICES" not in os.environ
    with gpus_hidden_on_cpu(cpu):
        pass
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
