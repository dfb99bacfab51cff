"""Hardware profiles on a machine without a GPU: the mechanisms GPU runs rely on, tested
on the CPU (state that follows the module, rank detection, precision and profile
choices, FSDP units and order), and GPU-only checks refused with clear errors."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import Tensor

from dltrain.module.classifier import Classifier
from dltrain.module.regressor import Regressor
from dltrain.nets.mlp import MLP


def _classifier() -> Classifier:
    net = MLP(in_shape=[1, 4, 4], num_classes=3, hidden=[8])
    return Classifier(net=net, num_classes=3, optimizer=partial(torch.optim.SGD, lr=0.1))


def _regressor() -> Regressor:
    net = MLP(in_shape=[1, 4, 4], num_classes=1, hidden=[8])
    return Regressor(net=net, optimizer=partial(torch.optim.SGD, lr=0.1))


def _tensors(module: torch.nn.Module) -> dict[str, Tensor]:
    """Every tensor a module holds: parameters, buffers, metric states, plain attributes."""
    out: dict[str, Tensor] = {}
    for prefix, sub in module.named_modules():
        for name, value in vars(sub).items():
            if isinstance(value, Tensor):
                out[f"{prefix}.{name}"] = value
            elif isinstance(value, list):
                out.update({f"{prefix}.{name}[{i}]": v for i, v in enumerate(value)
                            if isinstance(v, Tensor)})  # fmt: skip
    out.update(dict(module.named_parameters()))
    out.update(dict(module.named_buffers()))
    return out


def _mid_epoch(module: Classifier | Regressor) -> dict[str, list]:
    """A mid-epoch checkpoint's training sums, as loaded (on the CPU)."""
    return {"dltrain_train_sums": [torch.arange(float(module.train_sums_size)), 4]}


def _step_on(module: Classifier | Regressor, device: str) -> None:
    """One training step on a batch that lives on ``device``, as the Trainer runs it."""
    y = torch.tensor([0, 2]) if isinstance(module, Classifier) else torch.tensor([0.5, -1.0])
    module.training_step((torch.zeros(2, 1, 4, 4).to(device), y.to(device)), 0)


def _assert_all_on(module: torch.nn.Module, device: str) -> None:
    tensors = _tensors(module)
    assert "._train_sums" in tensors
    assert {k: v.device.type for k, v in tensors.items()} == {k: device for k in tensors}


@pytest.mark.parametrize("make", [_classifier, _regressor])
def test_state_restored_mid_epoch_after_the_module_moved_is_on_its_device(make) -> None:
    # FSDP's order: Lightning places the module (strategy.setup), then restores the
    # checkpoint and never moves the module again (restore_checkpoint_after_setup). The
    # restored sums must be where the step adds to them, and where the save hook and
    # the epoch-end sync reduce them, before any step.
    module = make()
    module.to("meta")
    module.on_load_checkpoint(_mid_epoch(module))
    _assert_all_on(module, "meta")
    assert module._train_sums.dtype == torch.float32
    _step_on(module, "meta")
    _assert_all_on(module, "meta")


@pytest.mark.parametrize("make", [_classifier, _regressor])
def test_state_restored_mid_epoch_before_the_module_moved_follows_it(make) -> None:
    # DDP's order: Lightning restores the checkpoint, then moves the module to its device
    # (strategy.setup): whatever the restore put on the module moves with it.
    module = make()
    module.on_load_checkpoint(_mid_epoch(module))
    module.to("meta")
    _assert_all_on(module, "meta")
    assert module._train_sums.dtype == torch.float32
    module.to(torch.float16)  # a dtype change leaves the fp32 sums as they are
    assert module._train_sums.dtype == torch.float32
    _step_on(module, "meta")
    _assert_all_on(module, "meta")


@pytest.mark.parametrize(
    "env,zero",
    [
        ({}, True),
        ({"SLURM_NTASKS": "2", "SLURM_PROCID": "1", "SLURM_JOB_NAME": "train"}, False),
        ({"SLURM_NTASKS": "2", "SLURM_PROCID": "0", "SLURM_JOB_NAME": "train"}, True),
        # torchrun sets RANK, LOCAL_RANK, GROUP_RANK and TORCHELASTIC_RUN_ID
        (
            {
                "RANK": "3",
                "LOCAL_RANK": "0",
                "GROUP_RANK": "1",
                "TORCHELASTIC_RUN_ID": "x",
                "WORLD_SIZE": "4",
                "LOCAL_WORLD_SIZE": "2",
            },
            False,
        ),  # fmt: skip
        # Lightning's own launcher: local rank 0 of the second node
        ({"LOCAL_RANK": "0", "NODE_RANK": "1"}, False),
        ({"LOCAL_RANK": "1", "NODE_RANK": "0"}, False),
    ],
)
def test_rank_zero_is_decided_as_lightning_decides_it(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], zero: bool
) -> None:
    from dltrain.runtime.process import is_rank_zero

    for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "TORCHELASTIC_RUN_ID",
                "SLURM_NTASKS", "SLURM_PROCID", "SLURM_JOB_NAME", "WORLD_SIZE"):  # fmt: skip
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert is_rank_zero() is zero


# ---- precision: auto ------------------------------------------------------------------

CPUINFO = "processor\t: 0\nvendor_id\t: {vendor}\nflags\t\t: fpu sse2 avx512f avx512_bf16 {extra}\n"


@pytest.mark.parametrize(
    "extra,has_amx", [("", False), ("amx_bf16 amx_tile amx_int8", True), ("amx_tile", False)]
)
def test_amx_is_read_from_the_cpu_flags(tmp_path, extra: str, has_amx: bool) -> None:
    from dltrain.runtime.precision import cpu_has_amx

    info = tmp_path / "cpuinfo"
    info.write_text(CPUINFO.format(vendor="GenuineIntel", extra=extra))
    assert cpu_has_amx(info) is has_amx


@pytest.mark.parametrize(
    "accelerator,amx,gpu_bf16,expected",
    [
        ("cpu", False, False, "32-true"),  # AVX512-BF16 without AMX: bf16 is slower
        ("cpu", True, False, "bf16-mixed"),
        ("gpu", False, True, "bf16-mixed"),
        ("gpu", False, False, "16-mixed"),  # before Ampere: fp16 with a grad scaler
    ],
)
def test_precision_auto_picks_what_the_hardware_runs_natively(
    monkeypatch: pytest.MonkeyPatch, accelerator: str, amx: bool, gpu_bf16: bool, expected: str
) -> None:
    from dltrain.runtime import precision

    monkeypatch.setattr(precision, "cpu_has_amx", lambda: amx)
    monkeypatch.setattr(precision, "gpu_has_bf16", lambda: gpu_bf16)
    assert precision.resolve("auto", accelerator) == expected
    assert precision.resolve("bf16-mixed", accelerator) == "bf16-mixed"  # explicit stays


def _compose(*overrides: str):
    from hydra import compose, initialize_config_dir

    from conftest import ROOT

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose(config_name="train", overrides=["paths.output_dir=.", *overrides])


def test_cpu_and_gpu_profiles_and_mnist_speed_use_precision_auto() -> None:
    for overrides in ([], ["trainer=gpu"], ["trainer=ddp_cpu"], ["experiment=mnist_speed"]):
        assert _compose(*overrides).trainer.precision == "auto", overrides


def test_a_cpu_run_records_the_resolved_precision(tmp_path) -> None:
    from test_train import SMALL, train_in_process

    _, results = train_in_process(tmp_path, [*SMALL, "trainer.max_epochs=1"])
    from dltrain.runtime.precision import cpu_has_amx

    assert results["precision"] == ("bf16-mixed" if cpu_has_amx() else "32-true")


# ---- GPU profiles, checked without a GPU ------------------------------------------------


def _fake_gpu(monkeypatch: pytest.MonkeyPatch, bf16: bool, name: str = "Tesla V100") -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: name)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (7, 0))


BF16_PROFILES = [["trainer=bf16"], ["trainer=gpu", "trainer.precision=bf16-mixed"],
                 ["trainer=fsdp"]]  # fmt: skip


@pytest.mark.parametrize("overrides", BF16_PROFILES)
def test_bf16_on_a_gpu_without_native_bf16_is_refused_naming_16_mixed(
    monkeypatch: pytest.MonkeyPatch, overrides: list[str]
) -> None:
    from dltrain.config.checks import check_hardware
    from dltrain.errors import ConfigError

    cfg = _compose(*overrides)
    _fake_gpu(monkeypatch, bf16=False)
    with pytest.raises(ConfigError) as info:
        check_hardware(cfg)
    assert str(info.value) == (
        "trainer.precision=bf16-mixed needs a GPU with native bf16 (compute capability 8.0+, "
        "Ampere or newer), but this Tesla V100 has 7.0 — use trainer.precision=16-mixed "
        "(fp16 with a grad scaler), or trainer.precision=auto"
    )
    _fake_gpu(monkeypatch, bf16=True, name="A100")
    check_hardware(cfg)  # an Ampere GPU takes it
    check_hardware(_compose("trainer=gpu"))  # auto never asks for what is missing


@pytest.mark.parametrize(
    "overrides,benchmark",
    [
        (["trainer=gpu"], True),
        (["trainer=ddp"], True),
        (["trainer=gpu", "trainer.deterministic=true"], False),
        (["trainer=gpu", "trainer.benchmark=false"], None),  # the user's choice stays
        (["trainer=cpu"], None),
    ],
)
def test_gpu_profiles_turn_cudnn_autotuning_on_unless_deterministic(
    overrides: list[str], benchmark: bool | None
) -> None:
    from dltrain.commands.build import hardware_settings

    assert hardware_settings(_compose(*overrides)).get("benchmark") is benchmark


@pytest.mark.parametrize("profile,tuned", [("cpu", True), ("ddp_cpu", True), ("gpu", False)])
def test_malloc_is_tuned_on_cpu_profiles_only(
    monkeypatch: pytest.MonkeyPatch, profile: str, tuned: bool
) -> None:
    from dltrain.runtime import process

    calls: list[bool] = []
    monkeypatch.setattr(process, "tune_malloc", lambda: calls.append(True))
    process.process_settings(_compose(f"trainer={profile}"))
    assert calls == ([True] if tuned else [])


def test_channels_last_turns_image_batches_channels_last_as_they_are_normalised() -> None:
    from dltrain.commands.build import datamodule

    overrides = ["data=synthetic", "data.shape=[3,8,8]", "data.num_classes=3"]
    for channels_last in (True, False):
        dm = datamodule(_compose(*overrides, f"channels_last={str(channels_last).lower()}"))
        dm.setup("fit")
        x, y = next(iter(dm.train_dataloader()))
        x, _ = dm.on_after_batch_transfer((x, y), 0)
        assert x.is_contiguous(memory_format=torch.channels_last) is channels_last
        assert x.is_contiguous() is not channels_last


# ---- trainer=fsdp: units, precision and order, checked in-process -----------------------
# (tests/test_fsdp.py trains, resumes and evaluates with trainer=fsdp_cpu: 2 processes.)


@pytest.mark.parametrize(
    "overrides,blocks",
    [
        (["model=vit", "data=synthetic", "data.shape=[1,8,8]"], {"TransformerEncoderLayer"}),
        (["model=transformer_seq", "data=mnist1d"], {"TransformerEncoderLayer"}),
        (["model=vit_b16", "data=synthetic", "data.shape=[3,8,8]"], {"EncoderBlock"}),
        (["model=resnet", "data=synthetic", "data.shape=[3,8,8]"], {"BasicBlock"}),
        (
            ["model=resnet", "model.arch=resnet50", "data=synthetic", "data.shape=[3,8,8]"],
            {"Bottleneck"},
        ),  # fmt: skip
        (["model=hf_classifier", "data=text_files"], {"BertLayer"}),
    ],
)
def test_fsdp_units_are_each_model_familys_blocks(overrides: list[str], blocks: set[str]) -> None:
    from hydra.utils import instantiate

    from dltrain.checkpointing.fsdp import NORMS, units

    net = instantiate(_compose(*overrides).model)
    found = units(net)
    assert found and {type(m).__name__ for m in found} <= blocks | {"BertEmbeddings"}
    assert {type(m).__name__ for m in found} >= blocks
    assert not any(isinstance(m, NORMS) for m in found)


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_small_nets_without_blocks_are_one_fsdp_unit(model: str) -> None:
    from hydra.utils import instantiate

    from dltrain.checkpointing.fsdp import units

    assert units(instantiate(_compose(f"model={model}").model)) == []  # the root only


def test_a_norm_layer_is_never_its_own_fsdp_unit_however_large() -> None:
    """FSDP1 here wrapped every norm apart (fp32 norms) and sized subtrees: a norm with
    2M parameters was a unit. Now a large layer is; the norm stays in the root."""
    from torch import nn

    from dltrain.checkpointing.fsdp import units

    big, norm = nn.Linear(1024, 1024), nn.LayerNorm(1_000_000)
    net = nn.Sequential(nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)), big, norm)
    assert units(net) == [big]


def test_fsdp_precision_gathers_in_bf16_and_reduces_gradients_in_fp32() -> None:
    from dltrain.checkpointing.fsdp import precision_policy

    policy = precision_policy("bf16-mixed")
    assert (policy.param_dtype, policy.reduce_dtype) == (torch.bfloat16, torch.float32)
    assert precision_policy("16-mixed").param_dtype == torch.float16
    assert precision_policy("32-true").param_dtype is None


@pytest.mark.parametrize("profile", ["fsdp", "fsdp_cpu"])
def test_the_fsdp_profiles_build_a_data_parallel_fsdp2_strategy(profile: str) -> None:
    from hydra.utils import instantiate

    from dltrain.checkpointing.fsdp import FSDP2Strategy

    cfg = _compose(f"trainer={profile}", "compile=true")
    strategy = instantiate(cfg.trainer.strategy)
    assert isinstance(strategy, FSDP2Strategy) and strategy.compile is True
    assert strategy._save_distributed_checkpoint is False  # one file, loadable weights_only
    assert strategy._tensor_parallel_size == 1
    assert strategy.process_group_backend == ("gloo" if profile == "fsdp_cpu" else None)


def test_under_fsdp_the_net_is_compiled_by_the_strategy_not_before_sharding() -> None:
    """``compile=true`` used to compile the whole net before FSDP wrapped it."""
    from dltrain.commands.build import module

    cfg = _compose("trainer=fsdp_cpu", "compile=true", "model=vit", "data=synthetic",
                   "data.shape=[1,8,8]")  # fmt: skip
    assert module(cfg).net._compiled_call_impl is None
    cfg = _compose("trainer=cpu", "compile=true", "model=vit", "data=synthetic",
                   "data.shape=[1,8,8]")  # fmt: skip
    assert module(cfg).net._compiled_call_impl is not None


def test_shard_compiles_each_block_after_sharding_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """One process, world size 1 (gloo): the units are FSDP modules, then compiled;
    the root is sharded but not compiled as a whole; no norm is a unit."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import FSDPModule

    from dltrain.checkpointing.fsdp import NORMS, shard
    from dltrain.nets.vit import ViT

    order: list[tuple[str, bool]] = []
    original = torch.nn.Module.compile

    def compile_spy(self: torch.nn.Module, *args, **kwargs) -> None:
        order.append((type(self).__name__, isinstance(self, FSDPModule)))
        original(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "compile", compile_spy)
    net = ViT(in_shape=[1, 8, 8], num_classes=3, patch_size=4, width=8, depth=2, heads=2)
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        found = shard(net, init_device_mesh("cpu", (1,)), "bf16-mixed", compile=True)
    finally:
        dist.destroy_process_group()
    assert found[-1] is net and len(found) == 3
    assert order == [("FSDPTransformerEncoderLayer", True)] * 2  # after sharding, per block
    assert net._compiled_call_impl is None
    assert not any(isinstance(m, FSDPModule) for m in net.modules() if isinstance(m, NORMS))


def test_fsdp_gathers_blocks_in_bf16_but_batch_norm_units_in_fp32() -> None:
    """World size 1 (gloo), a forward under bf16 autocast: the transformer layers run on
    bf16 weights (norms included, inside their block); a residual block holding
    BatchNorm gathers fp32 (bf16 weights beside fp32 statistics fail in batch_norm)."""
    import torch.distributed as dist
    from torch import nn
    from torch.distributed.device_mesh import init_device_mesh
    from torchvision.models.resnet import BasicBlock

    from dltrain.checkpointing.fsdp import shard
    from dltrain.nets.vit import ViT

    seen: dict[str, set[torch.dtype]] = {}

    def record(module: nn.Module, args: tuple) -> None:
        seen.setdefault(type(module).__name__, set()).add(module.weight.dtype)

    vit = ViT(in_shape=[1, 8, 8], num_classes=3, patch_size=4, width=8, depth=2, heads=2)
    residual = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), BasicBlock(4, 4))
    for net in (vit, residual):
        for m in net.modules():
            if isinstance(m, nn.LayerNorm | nn.BatchNorm2d | nn.Conv2d | nn.Linear):
                m.register_forward_pre_hook(record)
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        mesh = init_device_mesh("cpu", (1,))
        shard(vit, mesh, "bf16-mixed")
        shard(residual, mesh, "bf16-mixed")
        with torch.autocast("cpu", dtype=torch.bfloat16):
            vit(torch.randn(2, 1, 8, 8)).float().sum().backward()
            vit_seen, seen = seen, {}
            out = residual(torch.randn(2, 1, 8, 8))
    finally:
        dist.destroy_process_group()
    assert vit_seen["LayerNorm"] == vit_seen["Linear"] == {torch.bfloat16}
    assert seen["BatchNorm2d"] == seen["Conv2d"] == {torch.float32}
    assert out.dtype == torch.bfloat16  # autocast still computes the convolutions in bf16


def test_fsdp_refuses_a_checkpoint_that_carries_objects(tmp_path) -> None:
    from dltrain.checkpointing.fsdp import FSDP2Strategy
    from dltrain.errors import DataError

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _Payload()}, path)
    with pytest.raises(DataError, match="not a plain-tensor checkpoint"):
        FSDP2Strategy().load_checkpoint(path)


class _Payload:
    def __reduce__(self):
        return (print, ("this must not run",))
