"""Stop (or skip the batch) when the training loss is NaN or infinite.

``policy="stop"`` keeps the hot path free of host syncs and of tensor ops: each step
only appends its (detached) loss to a Python list; the list is checked with one
``isfinite`` and one read every ``check_every_n_steps`` losses, at each epoch end and
before every checkpoint save, and names the first bad step exactly. (A flag updated on
the device each step cost ~12 us a step: five small tensor ops.)
A save that would write non-finite weights is refused, so ``last.ckpt`` always holds
the last good state. ``policy="skip"`` reads the losses of each optimizer step's
batches (one sync; every micro-batch when gradients are accumulated) and drops the
step when one is bad: gradients set to ``None`` (no update, no moment change), and the
module's training sums put back as they were before those batches (a module with
``train_sums_snapshot``, as the built-in ones), so the epoch's ``train/loss`` and
``train/acc`` are the means over the batches that trained.
Under DDP that check is one all-reduce of one flag per optimizer step (no barrier) and
one read: the step has to be skipped on the host before it is applied.

Under DDP every decision is collective, made on values all-reduced over the ranks at
points every rank reaches together: a NaN on one rank's shard makes the all-reduced
gradients NaN on every rank, so every rank skips that step (else the ranks' weights
would diverge), and every rank stops at the same check with the same step number
(one rank raising alone would leave the others waiting in the next collective).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor

from dltrain.errors import ConfigError, RunError

POLICIES = ("stop", "skip")


class NanGuard(Callback):
    def __init__(self, policy: str = "stop", check_every_n_steps: int = 50) -> None:
        if policy not in POLICIES:
            raise ConfigError(f"nan_policy={policy} is not known", "use stop or skip")
        self.policy = policy
        self.check_every_n_steps = max(1, int(check_every_n_steps))
        self.skipped = 0
        self._window: list[Tensor] = []  # skip: the losses since the last optimizer step
        self._sums_before: tuple[Tensor | None, int] | None = None  # skip: the sums before
        self._unchecked: list[tuple[int, Tensor]] = []  # (global step, loss) since the last check
        if policy == "stop":  # a None hook is not called (runtime/hooks.py): ~2.5 us a step
            self.on_train_batch_start = None  # type: ignore[assignment]

    # ---- per step ------------------------------------------------------------------------
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.policy == "skip" and not self._window:  # a new optimizer step's first batch
            snapshot = getattr(pl_module, "train_sums_snapshot", None)
            self._sums_before = snapshot() if snapshot is not None else None

    def on_before_backward(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: Tensor
    ) -> None:
        loss = loss.detach()
        if self.policy == "skip":
            self._window.append(loss)
        else:
            self._unchecked.append((trainer.global_step, loss))
            if len(self._unchecked) >= self.check_every_n_steps:
                self._raise_if_bad(trainer)

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any
    ) -> None:
        if self.policy != "skip" or not self._window:
            return
        window, self._window = self._window, []
        if _any_rank_bad(trainer, window):
            optimizer.zero_grad(set_to_none=True)  # params without grads are not updated
            self.skipped += 1
            if self._sums_before is not None:  # the dropped batches leave no trace
                pl_module.restore_train_sums(self._sums_before)
        self._sums_before = None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._window, self._sums_before = [], None  # an epoch-end tail without a step
        self._raise_if_bad(trainer)
        if self.skipped and trainer.is_global_zero:
            print(f"warning: skipped {self.skipped} batches with a NaN/inf loss", flush=True)

    # ---- before saving -------------------------------------------------------------------
    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Raising here aborts the save: a checkpoint never holds NaN/inf weights."""
        self._raise_if_bad(trainer)
        params = [p.detach() for p in pl_module.parameters() if p.numel()]
        bad = bool(params) and not bool(torch.stack([p.isfinite().all() for p in params]).all())
        if trainer.world_size > 1:  # sharded weights (FSDP) differ per rank: decide together
            bad = trainer.strategy.reduce_boolean_decision(bad, all=False)
        if bad:
            error = RunError(
                f"the weights became NaN/inf by step {trainer.global_step} "
                f"(epoch {trainer.current_epoch}); the last good checkpoint was kept",
                _HOW_TO_FIX,
            )
            error.all_ranks = True
            raise error

    def _raise_if_bad(self, trainer: pl.Trainer) -> None:
        if self.policy != "stop" or not self._unchecked:
            return
        unchecked, self._unchecked = self._unchecked, []
        losses = torch.stack([loss for _, loss in unchecked])
        finite = torch.isfinite(losses).tolist()  # one device sync
        step = next((s for (s, _), ok in zip(unchecked, finite, strict=True) if not ok), -1)
        if trainer.world_size > 1:  # the first bad step over all ranks, on every rank
            step = _first_bad_step_of_all_ranks(trainer, step)
        if step >= 0:
            error = RunError(
                f"the training loss became NaN/inf at step {step} "
                f"(epoch {trainer.current_epoch}); the last good checkpoint was kept",
                _HOW_TO_FIX,
            )
            error.all_ranks = True  # every rank raises it: only rank 0 prints it
            raise error


def _any_rank_bad(trainer: pl.Trainer, losses: list[Tensor]) -> bool:
    """Whether any rank's losses hold a NaN/inf: the flag stays on the device until one
    all-reduce (no barrier, unlike ``strategy.reduce``) and one read. That read is the
    only host sync of a step: skipping the optimizer step is a decision on the host."""
    bad = (~torch.isfinite(torch.stack(losses)).all()).to(torch.int32).reshape(1)
    if trainer.world_size > 1:
        torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
    return bool(bad.item())


def _first_bad_step_of_all_ranks(trainer: pl.Trainer, step: int) -> int:
    """The smallest bad step over the ranks (-1: none), from one all-reduce."""
    big = torch.iinfo(torch.int64).max
    local = torch.tensor(step if step >= 0 else big, device=trainer.strategy.root_device)
    first = int(trainer.strategy.reduce(local, reduce_op="min"))
    return first if first != big else -1


_HOW_TO_FIX = (
    "lower optimizer.lr, add trainer.gradient_clip_val=1.0, check the inputs, "
    "or set nan_policy=skip to drop such batches"
)
