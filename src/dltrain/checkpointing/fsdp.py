"""Every decision of ``trainer=fsdp`` and ``trainer=fsdp_cpu``, in one place: the
strategy, which modules become FSDP units, their precision, gradient clipping,
checkpoint loading, and the order of ``channels_last``, sharding and ``compile``.

Why FSDP2 (``torch.distributed.fsdp.fully_shard``) through Lightning's
``ModelParallelStrategy``, on GPUs too, and not Lightning's ``FSDPStrategy``:

- ``FSDPStrategy`` drives FSDP1 (``FullyShardedDataParallel``), which PyTorch has
  deprecated in favour of ``fully_shard``; ``ModelParallelStrategy`` is Lightning's
  FSDP2 path (it refuses FSDP1 modules outright).
- FSDP2 shards each parameter as a ``DTensor`` (dim 0) instead of flattening a unit's
  parameters into one buffer: parameters keep their names, dtypes and shapes, state
  dicts need no FSDP state-dict context, and the optimizer sees per-parameter state.
- Gradient clipping is ``torch.nn.utils.clip_grad_norm_`` over ``DTensor`` gradients,
  whose norm is reduced over every shard: Lightning's own clipping is right as it is
  (FSDP1 needed the root's ``clip_grad_norm_``, and Lightning refused norm clipping).
- Mixed precision is per unit (``MixedPrecisionPolicy``) and FSDP2 never casts
  buffers, so norms need no units of their own (``precision_policy``).
- ``torch.compile`` applies per unit after ``fully_shard``: each compiled region is one
  block, FSDP2's gather and reshard hooks at its edges (compiling the whole net first,
  as this runner did under FSDP1, put every unit's hooks inside one compiled graph).
- BatchNorm statistics: FSDP2 leaves buffers per rank; rank 0's are shared before any
  evaluation and every save (``share_buffers``), the model DDP would have.
- Without CUDA it runs on gloo, so the suite trains, resumes and evaluates sharded
  models on the CPU (``trainer=fsdp_cpu``) instead of mocking them.

``ModelParallelStrategy`` needs adapting in two ways (``FSDP2Strategy``): it requires a
``configure_model`` hook in the LightningModule, where the user applies
``fully_shard``; here the strategy applies the runner's policy in ``setup``, so any
LightningModule (a user's too) is sharded without writing one, and a module that does
shard itself in ``configure_model`` is left as it is. And its mesh defaults to tensor
parallelism across a node's devices; FSDP is data parallel over every process. It does
not need CUDA itself: the mesh takes the root device's type (``cpu`` on gloo).

The order (``commands/build.py`` builds the net through ``prepare_net``, the strategy
shards it in ``setup``): ``channels_last`` applies to the batches only, not the weights
(FSDP2 refuses non-contiguous parameters; a convolution whose input is channels-last
outputs channels-last, so the layout survives), then ``fully_shard`` unit by unit,
then ``compile`` of each unit (``shard``), never of the unsharded whole.

This module sits in ``checkpointing/`` because it loads checkpoints with
``weights_only`` through ``checkpoint_io`` (``runtime/`` is below that layer).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.collectives.torch_collective import default_pg_timeout
from lightning.fabric.utilities.init import _materialize_distributed_module
from lightning.fabric.utilities.optimizer import _optimizers_to_device
from lightning.pytorch.strategies import ModelParallelStrategy
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn

from dltrain.checkpointing.checkpoint_io import load_checkpoint

#: Nets without known blocks: any subtree holding at least this many parameters (not
#: already in a unit) becomes a unit; smaller nets are one unit (the root).
MIN_PARAMS_PER_UNIT = 1_000_000
#: Block classes by dotted name, so that torchvision need not be imported to check.
KNOWN_BLOCKS = frozenset({
    "torch.nn.modules.transformer.TransformerEncoderLayer",
    "torch.nn.modules.transformer.TransformerDecoderLayer",
    "torchvision.models.vision_transformer.EncoderBlock",
    "torchvision.models.resnet.BasicBlock",
    "torchvision.models.resnet.Bottleneck",
})  # fmt: skip
#: Never a unit of their own: each would add its own all-gather and reduce-scatter for
#: a few hundred parameters (FSDP1's fp32 norms did that); they stay in their block's
#: unit, or the root's.
NORMS: tuple[type[nn.Module], ...] = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)
#: Lightning precisions computed in a lower dtype: FSDP2 gathers parameters in it.
COMPUTE_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def block_types(net: nn.Module) -> set[type[nn.Module]]:
    """The classes of the net's repeated blocks: a net's own ``fsdp_blocks`` (a user's
    net can name its blocks), the known transformer and residual blocks, and the layers
    a Hugging Face model names in ``_no_split_modules``."""
    own = getattr(net, "fsdp_blocks", None)
    if own:
        return set(own)
    hf_names: set[str] = set()
    for module in net.modules():
        hf_names.update(getattr(module, "_no_split_modules", None) or ())
    found: set[type[nn.Module]] = set()
    for module in net.modules():
        cls = type(module)
        if f"{cls.__module__}.{cls.__qualname__}" in KNOWN_BLOCKS or cls.__name__ in hf_names:
            found.add(cls)
    return found - set(NORMS)


def units(net: nn.Module) -> list[nn.Module]:
    """The modules sharded as units of their own, innermost first (``fully_shard`` must
    see them before the root): the net's blocks, or, for a net without known blocks,
    subtrees above ``MIN_PARAMS_PER_UNIT`` parameters. Never a norm layer, never the
    root (the root is always a unit: it holds everything left)."""
    blocks = block_types(net)
    if blocks:
        return [m for m in net.modules() if type(m) in blocks and m is not net]
    out: list[nn.Module] = []
    taken: set[int] = set()
    for module in _post_order(net):
        if module is net or isinstance(module, NORMS):
            continue
        free = sum(p.numel() for p in module.parameters() if id(p) not in taken)
        if free >= MIN_PARAMS_PER_UNIT:
            out.append(module)
            taken.update(id(p) for p in module.parameters())
    return out


def _post_order(module: nn.Module) -> list[nn.Module]:
    out: list[nn.Module] = []
    for child in module.children():
        out.extend(_post_order(child))
    out.append(module)
    return out


def precision_policy(precision: str, batch_norm: bool = False) -> Any:
    """FSDP2's ``MixedPrecisionPolicy`` for a Lightning precision: parameters gathered
    in the compute dtype, gradients reduced in fp32 (a sum of bf16 gradients over many
    ranks loses digits). Buffers are never cast. fp32 runs: no casts.

    A unit holding BatchNorm (``batch_norm``) gathers in fp32: batch norm needs its
    weights in its statistics' dtype (fp32 buffers; bf16 weights fail on CPU and GPU
    alike), and FSDP2 casts a unit's parameters all alike. Lightning's ``bf16-mixed``
    autocast still computes its convolutions in bf16. The cost is fp32 gathers for
    residual blocks (twice the bytes), against FSDP1's way here, every norm a unit of
    its own: 53 more units and their collectives for a ResNet-50."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    compute = COMPUTE_DTYPES.get(str(precision))
    if compute is None:
        return MixedPrecisionPolicy()
    return MixedPrecisionPolicy(
        param_dtype=None if batch_norm else compute, reduce_dtype=torch.float32
    )


def holds_batch_norm(unit: nn.Module, inner: list[nn.Module]) -> bool:
    """Whether ``unit`` itself (not one of the ``inner`` units within it) holds a
    BatchNorm layer."""
    inside = {id(m) for other in inner if other is not unit for m in other.modules()}
    batch_norm = nn.modules.batchnorm._BatchNorm
    return any(isinstance(m, batch_norm) and id(m) not in inside for m in unit.modules())


def shard(root: nn.Module, mesh: Any, precision: str, compile: bool = False) -> list[nn.Module]:
    """``fully_shard`` each of ``units(root)`` and then ``root`` over ``mesh``; with
    ``compile``, each unit is compiled after it is sharded (the root itself only when it
    is the only unit). Returns the units, root last. Already sharded: left alone."""
    from torch.distributed.fsdp import FSDPModule, fully_shard

    if any(isinstance(m, FSDPModule) for m in root.modules()):
        return [m for m in root.modules() if isinstance(m, FSDPModule)]
    inner = units(root)
    for unit in [*inner, root]:
        policy = precision_policy(precision, holds_batch_norm(unit, inner))
        fully_shard(unit, mesh=mesh, mp_policy=policy)
    if compile:
        for unit in inner or [root]:
            unit.compile()  # in place: parameter names (and checkpoints) stay the same
    return [*inner, root]


def prepare_net(net: nn.Module, trainer_node: Any, channels_last: bool, compile: bool) -> nn.Module:
    """The net as the Trainer gets it. One process or DDP: channels-last weights, then
    compiled in place (parameter names and checkpoints stay the same). Under FSDP
    neither: FSDP2 refuses non-contiguous (channels-last) parameters and gathers weights
    contiguous anyway; the batches are channels-last (``data.memory_format``), and a
    convolution with channels-last input outputs channels-last, so the layout survives
    in the activations. Compiling is the strategy's, per unit after sharding (``shard``)."""
    if compiles_in_strategy(trainer_node):
        return net
    if channels_last:
        net = net.to(memory_format=torch.channels_last)  # its convs then output channels-last
    if compile:
        net.compile()
    return net


def sharded_root(module: nn.Module) -> nn.Module:
    """What is sharded of a LightningModule: its ``net`` (the built-in modules' and most
    users'), else the whole module."""
    net = getattr(module, "net", None)
    return net if isinstance(net, nn.Module) else module


def compiles_in_strategy(trainer_node: Any) -> bool:
    """Whether the trainer profile's strategy is ``FSDP2Strategy`` (or a subclass): it
    shards and compiles the net itself (``prepare_net``)."""
    from hydra.utils import get_class

    strategy = trainer_node.get("strategy") if hasattr(trainer_node, "get") else None
    target = strategy.get("_target_") if hasattr(strategy, "get") else None
    if not target:
        return False
    try:
        return issubclass(get_class(str(target)), FSDP2Strategy)
    except (ImportError, ValueError, TypeError):
        return False


class FSDP2Strategy(ModelParallelStrategy):
    """Lightning's ``ModelParallelStrategy`` as fully sharded data parallel over every
    process, sharding the module by this module's policy in ``setup`` (see the module
    docstring), with full single-file checkpoints loaded ``weights_only``.

    Args:
        compile: ``torch.compile`` each unit after sharding (the run's ``compile``).
        process_group_backend: ``nccl`` on GPUs (default), ``gloo`` on the CPU.
        timeout: of the process group's collectives.
    """

    def __init__(
        self,
        compile: bool = False,
        process_group_backend: str | None = None,
        timeout: timedelta | None = default_pg_timeout,
    ) -> None:
        super().__init__(
            data_parallel_size="auto",
            tensor_parallel_size=1,
            save_distributed_checkpoint=False,  # one file: dl-eval/dl-predict/resume read it
            process_group_backend=process_group_backend,
            timeout=timeout,
        )
        self.compile = compile

    def setup_environment(self) -> None:
        # Data parallel over every process (the parent's "auto" is the node count, with
        # tensor parallelism across each node's devices).
        if self._data_parallel_size == "auto":
            self._data_parallel_size = self.num_nodes * self.num_processes
        super().setup_environment()

    def setup(self, trainer: Any) -> None:
        """The parent's ``setup``, with this policy's sharding in place of the user's
        ``configure_model`` (the parent refuses a module without one)."""
        assert self.model is not None and self.lightning_module is not None
        self.accelerator.setup(trainer)  # type: ignore[union-attr]
        if trainer.state.fn == TrainerFn.FITTING and self._layer_sync:
            self.model = self._layer_sync.apply(self.model)  # sync_batchnorm=true (GPUs)
        precision = str(getattr(self.precision_plugin, "precision", "32-true"))
        mesh = self.device_mesh["data_parallel"]
        shard(sharded_root(self.lightning_module), mesh, precision, compile=self.compile)
        _materialize_distributed_module(self.model, self.root_device)
        self.model = self.precision_plugin.convert_module(self.model)
        self.model_to_device()  # what is not sharded (a module's own buffers)
        self.barrier()
        if trainer.state.fn == TrainerFn.FITTING:
            self.setup_optimizers(trainer)
        self.setup_precision_plugin()
        if trainer.state.fn == TrainerFn.FITTING:
            _optimizers_to_device(self.optimizers, self.root_device)

    def on_validation_start(self) -> None:
        self.share_buffers()

    def on_test_start(self) -> None:
        self.share_buffers()

    def on_predict_start(self) -> None:
        self.share_buffers()

    def lightning_module_state_dict(self) -> dict[str, Any]:
        self.share_buffers()  # every rank saves (collectively): the same buffers as used
        return super().lightning_module_state_dict()

    def share_buffers(self) -> None:
        """Rank 0's buffers (BatchNorm statistics) on every rank, before any evaluation
        and every save. Why: FSDP2 shards parameters, not buffers, and each rank updates
        its statistics from its own batches, so ranks would evaluate different models
        and the checkpoint (rank 0's) would not be the one evaluated. DDP broadcasts
        rank 0's buffers at every training forward; this is the same model, made only
        where the statistics are read (training normalises with the batch's own)."""
        import torch.distributed as dist

        if self.world_size < 2 or not dist.is_initialized() or self.lightning_module is None:
            return
        for buffer in self.lightning_module.buffers():
            dist.broadcast(buffer, src=0)

    def load_checkpoint(self, checkpoint_path: Any, weights_only: bool | None = None) -> Any:
        """Full single-file checkpoints are checked with ``weights_only=True`` first
        (mapped, no second copy), so a file carrying objects gets the runner's one-line
        error, then loaded by Lightning with ``weights_only=True`` too."""
        path = Path(checkpoint_path)
        if path.is_file():
            load_checkpoint(path, mmap=True)
        return super().load_checkpoint(checkpoint_path, weights_only=True)
