"""Sharded training for real: ``trainer=fsdp_cpu`` (FSDP2's ``fully_shard`` on two gloo
processes) trains a transformer (``model=vit``) and a residual net (``model=resnet``),
clips gradients, saves, resumes mid-epoch, and its checkpoint evaluates (``dl-eval``)
and predicts (``dl-predict``); the metrics are a single process's (``trainer=cpu``, the
same global batch) to ``TOL_BF16`` (ViT) and ``TOL_BN`` (ResNet; DDP's to ``TOL_DDP``).

What happens inside the processes is recorded by a callback (``PROBE``, given with
``+callbacks.probe``): the modules that became FSDP units, the dtypes the units compute
in and FSDP's collectives carry, the gradient norm before and after clipping, and the
memory format of convolution outputs. The runs are shared by module-scoped fixtures
(each is a pair of processes; the file costs about 8 such runs).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_cli

#: One xdist worker builds the shared ViT/ResNet runs (make test: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("fsdp")

#: ViT in bf16-mixed, two shards vs one process: the same samples per step and the same
#: bf16 weights, but each shard's weight gradients are summed over half a batch (and
#: rounded) before the fp32 reduction (measured: at most 0.0078, train/acc: 1 sample in 128).
TOL_BF16 = 2e-2
#: ResNet in fp32, FSDP vs DDP: the same model (BatchNorm over each process's half
#: batch, rank 0's statistics), gradients averaged in another order.
TOL_DDP = 1e-4
#: ResNet vs one process: BatchNorm's batch statistics over 8 samples instead of 16
#: change every step (SyncBatchNorm needs GPUs) (measured: at most 0.061, train/loss).
TOL_BN = 0.1
CLIP = 0.05
# 128 samples, global batch 16: 8 steps (each rank 8 of them, half a batch each).
BASE = ["data=synthetic", "data.shape=[3,8,8]", "data.num_classes=3", "data.num_train=128",
        "data.num_test=48", "data.val_fraction=0", "data.global_batch_size=16",
        "trainer.max_epochs=1", "trainer.deterministic=true", "logger=none",
        f"trainer.gradient_clip_val={CLIP}",
        "callbacks.mid_epoch_checkpoint.train_time_interval=null",
        "callbacks.mid_epoch_checkpoint.every_n_train_steps=3",
        "+callbacks.probe._target_=fsdpprobe.Probe"]  # fmt: skip
VIT = ["model=vit", "model.width=16", "model.depth=2", "model.heads=2", "model.patch_size=4",
       "trainer.precision=bf16-mixed", "channels_last=true"]  # fmt: skip
# ResNet-18 costs more a step: 64 samples, 4 steps; fp32 and contiguous, so that DDP's is
# the same computation (bf16 with BatchNorm: tests/test_hardware.py, scripts/gpu_check.sh;
# channels-last weights under DDP take other kernels than FSDP's contiguous ones).
RESNET = ["model=resnet", "model.small_input=true", "data.num_train=64"]
STEPS = {"vit": 8, "resnet": 4}

PROBE = '''
import json
import os

import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import Callback

SEEN = {"reduce_scatter": set(), "all_gather": set()}


def _spy(name, fn):
    def call(*args, **kwargs):
        tensor = kwargs.get("input", args[1] if len(args) > 1 else None)
        if tensor is not None:
            SEEN[name].add(str(tensor.dtype))
        return fn(*args, **kwargs)
    return call


dist.reduce_scatter_single = _spy("reduce_scatter", dist.reduce_scatter_single)
dist.all_gather_single = _spy("all_gather", dist.all_gather_single)


def _norm(params):
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads)
    return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)


class Probe(Callback):
    """Records what FSDP did (see tests/test_fsdp.py); stops the process at EXIT_AT."""

    def __init__(self):
        self.found = {"weight_dtypes": set(), "output_dtypes": set(), "conv_channels_last": set(),
                      "norms": []}

    def on_fit_start(self, trainer, pl_module):
        from torch.distributed.fsdp import FSDPModule
        from torch.distributed.tensor import DTensor

        net = pl_module.net
        self.found["units"] = sorted(n for n, m in net.named_modules() if isinstance(m, FSDPModule))
        self.found["unit_classes"] = sorted({type(m).__name__ for m in net.modules()
                                             if isinstance(m, FSDPModule)})
        self.found["all_dtensor"] = all(isinstance(p, DTensor) for p in net.parameters())
        self.found["param_dtypes"] = sorted({str(p.dtype) for p in net.parameters()})
        for module in net.modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                module.register_forward_hook(self._seen)

    def _seen(self, module, args, output):
        if module.training:
            self.found["weight_dtypes"].add(str(module.weight.dtype))
            self.found["output_dtypes"].add(str(output.dtype))
        if isinstance(module, torch.nn.Conv2d):
            self.found["conv_channels_last"].add(
                output.is_contiguous(memory_format=torch.channels_last))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if str(trainer.global_step) == os.environ.get("EXIT_AT") and trainer.global_rank == 0:
            for proc in trainer.strategy.launcher.procs:  # rank 1, started by rank 0
                proc.kill()
            os._exit(3)  # before the step: kill -9 of the whole job, mid-epoch

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.found["norms"].append([_norm(pl_module.parameters())])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.found["norms"][-1].append(_norm(pl_module.parameters()))  # after clipping

    def on_fit_end(self, trainer, pl_module):
        out = {k: sorted(v) if isinstance(v, set) else v for k, v in self.found.items()}
        out.update({k: sorted(v) for k, v in SEEN.items()})
        path = os.path.join(os.environ["PROBE_DIR"], f"rank{trainer.global_rank}.json")
        with open(path, "w") as f:
            json.dump(out, f)
'''


def _env(base: Path, probe_dir: Path, **extra: str) -> dict[str, str]:
    probe_dir.mkdir(parents=True, exist_ok=True)
    path = os.pathsep.join(p for p in (str(base), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path, "PROBE_DIR": str(probe_dir), "OMP_NUM_THREADS": "1", **extra}


def _train(base: Path, name: str, overrides: list[str], **env: str) -> dict:
    """One ``dl-train`` run in ``base/name``: its results and each rank's probe record."""
    run_dir = base / name
    out = run_cli([*BASE, *overrides, f"hydra.run.dir={run_dir}"], cwd=base,
                  env=_env(base, run_dir / "probe", **env))  # fmt: skip
    records = [json.loads(p.read_text()) for p in sorted((run_dir / "probe").glob("*.json"))]
    results = run_dir / "results.json"
    return {"out": out, "dir": run_dir, "probe": records,
            "results": json.loads(results.read_text()) if results.exists() else None}  # fmt: skip


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fsdp")
    (folder / "fsdpprobe.py").write_text(PROBE)
    return folder


@pytest.fixture(scope="module")
def vit(base: Path) -> dict:
    """ViT, bf16-mixed: two shards, and one process with the same global batch."""
    runs = {"fsdp": _train(base, "vit_fsdp", ["trainer=fsdp_cpu", *VIT]),
            "single": _train(base, "vit_cpu", ["trainer=cpu", *VIT])}  # fmt: skip
    for run in runs.values():
        assert run["out"].returncode == 0, run["out"].stderr[-3000:]
    return runs


@pytest.fixture(scope="module")
def resnet(base: Path) -> dict:
    """ResNet-18, channels-last: two shards, two DDP processes (the same BatchNorm over
    each process's half-batch) and one process."""
    runs = {"fsdp": _train(base, "resnet_fsdp", ["trainer=fsdp_cpu", *RESNET]),
            "ddp": _train(base, "resnet_ddp", ["trainer=ddp_cpu", *RESNET]),
            "single": _train(base, "resnet_cpu", ["trainer=cpu", *RESNET])}  # fmt: skip
    for run in runs.values():
        assert run["out"].returncode == 0, run["out"].stderr[-3000:]
    return runs


def _close(got: dict, want: dict, tol: float) -> dict[str, float]:
    """The metrics' differences, asserted within ``tol``."""
    diffs = {k: abs(got["metrics"][k] - v) for k, v in want["metrics"].items()}
    assert max(diffs.values()) <= tol, diffs
    return diffs


# ---- units, precision, clipping, layout -------------------------------------------------


def test_each_transformer_layer_is_a_unit_and_no_norm_is(vit: dict) -> None:
    for record in vit["fsdp"]["probe"]:
        assert record["units"] == ["", "encoder.encoder.layers.0", "encoder.encoder.layers.1"]
        assert record["unit_classes"] == ["FSDPTransformerEncoderLayer", "FSDPViT"]
        assert record["all_dtensor"] and record["param_dtypes"] == ["torch.float32"]
    assert len(vit["fsdp"]["probe"]) == 2


def test_each_residual_block_is_a_unit_and_batchnorm_stays_inside(resnet: dict) -> None:
    blocks = [f"backbone.layer{i}.{j}" for i in range(1, 5) for j in range(2)]  # resnet18: 8
    for record in resnet["fsdp"]["probe"]:
        assert record["units"] == ["", *blocks]
        assert record["unit_classes"] == ["FSDPBasicBlock", "FSDPResNet"]


def test_bf16_mixed_gathers_in_bf16_and_reduces_gradients_in_fp32(vit: dict) -> None:
    for record in vit["fsdp"]["probe"]:
        assert record["param_dtypes"] == ["torch.float32"]  # the sharded master weights
        assert record["weight_dtypes"] == record["all_gather"] == ["torch.bfloat16"]
        assert record["output_dtypes"] == ["torch.bfloat16"]
        assert record["reduce_scatter"] == ["torch.float32"]


def test_fp32_runs_gather_and_reduce_in_fp32(resnet: dict) -> None:
    record = resnet["fsdp"]["probe"][0]
    assert record["weight_dtypes"] == record["all_gather"] == ["torch.float32"]
    assert record["reduce_scatter"] == record["output_dtypes"] == ["torch.float32"]


@pytest.mark.parametrize("net", ["vit", "resnet"])
def test_clipping_bounds_the_norm_over_every_shard(net: str, request) -> None:
    runs = request.getfixturevalue(net)
    sharded, single = runs["fsdp"]["probe"], runs["single"]["probe"][0]
    norms = sharded[0]["norms"]
    assert norms == sharded[1]["norms"]  # one norm over all shards, the same on each rank
    assert len(norms) == STEPS[net] and all(before > CLIP for before, _ in norms)  # it acted
    assert all(after == pytest.approx(CLIP, rel=1e-3) for _, after in norms)
    # Same weights, same samples: the first step's norm is one process's (ViT, to bf16
    # rounding), or with BatchNorm over half-batches, DDP's (ResNet).
    same, tol = (single, 1e-2) if net == "vit" else (runs["ddp"]["probe"][0], 1e-4)
    assert norms[0][0] == pytest.approx(same["norms"][0][0], rel=tol)


def test_channels_last_survives_sharding(vit: dict) -> None:
    """FSDP2 gathers weights contiguous; the channels-last batches keep the patch
    convolution's output channels-last."""
    for record in vit["fsdp"]["probe"]:
        assert record["conv_channels_last"] == [True]


# ---- the same metrics as one process ----------------------------------------------------


def test_sharded_vit_matches_a_single_process(vit: dict) -> None:
    fsdp, single = vit["fsdp"]["results"], vit["single"]["results"]
    assert (fsdp["world_size"], single["world_size"]) == (2, 1)
    assert fsdp["steps"] == single["steps"] == STEPS["vit"]
    assert fsdp["precision"] == single["precision"] == "bf16-mixed"
    _close(fsdp, single, TOL_BF16)


def test_sharded_resnet_matches_ddp_and_a_single_process(resnet: dict) -> None:
    """BatchNorm normalises over each process's half-batch (SyncBatchNorm needs GPUs):
    that is DDP's model (``TOL_DDP``), one process's to ``TOL_BN``."""
    fsdp, ddp = resnet["fsdp"]["results"], resnet["ddp"]["results"]
    single = resnet["single"]["results"]
    assert fsdp["steps"] == ddp["steps"] == single["steps"] == STEPS["resnet"]
    _close(fsdp, ddp, TOL_DDP)
    _close(fsdp, single, TOL_BN)


# ---- checkpoints: resume mid-epoch, dl-eval, dl-predict ---------------------------------


def test_a_kill_mid_epoch_then_the_same_command_resumes_exactly(base: Path, vit: dict) -> None:
    killed = _train(base, "vit_resumed", ["trainer=fsdp_cpu", *VIT], EXIT_AT="5")
    assert killed["out"].returncode != 0 and killed["results"] is None
    last = killed["dir"] / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["global_step"] == 3  # saved at step 3, killed before step 5
    assert "encoder.encoder.layers.0.linear1.weight" in "".join(checkpoint["state_dict"])
    resumed = _train(base, "vit_resumed", ["trainer=fsdp_cpu", *VIT])
    assert resumed["out"].returncode == 0, resumed["out"].stderr[-3000:]
    assert resumed["results"]["steps"] == 8
    _close(resumed["results"], vit["fsdp"]["results"], 1e-6)


def test_dl_eval_of_a_sharded_checkpoint_gives_the_runs_test_metrics(base: Path, vit: dict) -> None:
    ckpt = vit["fsdp"]["dir"] / "checkpoints" / "last.ckpt"
    eval_dir = base / "vit_eval"
    out = run_cli([f"ckpt_path={ckpt}", f"hydra.run.dir={eval_dir}"], cwd=base, cmd="dl-eval",
                  env=_env(base, eval_dir / "probe"))  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads((eval_dir / "results.json").read_text())["metrics"]
    trained = vit["fsdp"]["results"]["metrics"]
    for key in ("test/acc", "test/loss", "test/auroc", "test/f1_macro"):
        assert got[key] == pytest.approx(trained[key], abs=1e-6), key


def test_dl_predict_of_a_sharded_checkpoint_matches_the_single_process_one(
    base: Path, vit: dict
) -> None:
    from PIL import Image

    images = base / "images"
    images.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(images / f"{i}.png")
    predictions = []
    for name in ("fsdp", "single"):
        ckpt = vit[name]["dir"] / "checkpoints" / "last.ckpt"
        out_dir = base / f"predict_{name}"
        out = run_cli([f"ckpt_path={ckpt}", f"inputs={images}", f"hydra.run.dir={out_dir}"],
                      cwd=base, cmd="dl-predict", env=_env(base, out_dir))  # fmt: skip
        assert out.returncode == 0, out.stderr[-3000:]
        predictions.append(json.loads((out_dir / "predictions.json").read_text())["predictions"])
    sharded, single = predictions
    assert len(sharded) == 4
    for a, b in zip(sharded, single, strict=True):
        assert a["top"][0]["class"] == b["top"][0]["class"]
        assert a["top"][0]["prob"] == pytest.approx(b["top"][0]["prob"], abs=TOL_BF16)
