"""Weight averaging (``callbacks=ema``, ``callbacks=swa``): Lightning 2.6's own
``WeightAveraging`` callbacks, with the two things a dl-train run needs of them.

Lightning's callbacks already validate on the averaged weights (swapped in for each
validation epoch), save them as the checkpoint's ``state_dict`` (the raw weights go to
``current_model_state``, the average's counter to ``averaging_state``) and copy them
into the model when training ends. So best/last checkpoints, the test after training
and ``dl-eval`` all score the averaged weights. What is added here:

- Loading a checkpoint to *test* or *validate* keeps its ``state_dict`` (the average).
  Lightning's ``on_load_checkpoint`` runs in every stage once the average model exists,
  and would put the raw weights back into the model: the test that follows ``fit`` in
  the same process would score the raw weights.
- The epoch of the last update is stored with the step (Lightning keeps only the
  step), so an epoch-wise average resumed in the middle of an epoch updates exactly
  when the uninterrupted run did.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import EMAWeightAveraging, WeightAveraging
from lightning.pytorch.trainer.states import TrainerFn


class _RunAveraging(WeightAveraging):
    """The stage-aware loading and the stored epoch (see the module docstring)."""

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn != TrainerFn.FITTING:
            return  # test/validate/predict: the checkpoint's state_dict is the average
        super().on_load_checkpoint(trainer, pl_module, checkpoint)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "latest_update_epoch": self._latest_update_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._latest_update_epoch = state_dict.get("latest_update_epoch", -1)


class EMA(_RunAveraging, EMAWeightAveraging):
    """An exponential moving average of the weights (and buffers), updated after every
    ``update_every_n_steps``-th optimizer step from ``update_starting_at_step`` on;
    the arguments are ``EMAWeightAveraging``'s, spelled out so that a misspelt option
    in ``callbacks.ema`` is refused by the config check instead of vanishing into
    ``**kwargs`` (which Lightning passes on to torch's ``AveragedModel``)."""

    def __init__(
        self,
        device: Any = None,
        use_buffers: bool = True,
        decay: float = 0.999,
        update_every_n_steps: int = 1,
        update_starting_at_step: int | None = None,
        update_starting_at_epoch: int | None = None,
    ):
        super().__init__(
            device=device,
            use_buffers=use_buffers,
            decay=decay,
            update_every_n_steps=update_every_n_steps,
            update_starting_at_step=update_starting_at_step,
            update_starting_at_epoch=update_starting_at_epoch,
        )


class SWA(_RunAveraging):
    """Stochastic weight averaging: the equal-weight mean of the weights at the end of
    each training epoch from ``start_epoch`` (0-based) on. Lightning's
    ``WeightAveraging`` with its default average (torch's ``AveragedModel``); unlike
    Lightning's older ``StochasticWeightAveraging`` callback it validates and
    checkpoints the average, and leaves the learning-rate schedule to ``scheduler``.
    """

    def __init__(self, start_epoch: int = 0, device: Any = None, use_buffers: bool = True):
        super().__init__(device=device, use_buffers=use_buffers)
        self.start_epoch = start_epoch

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return epoch_idx is not None and epoch_idx >= self.start_epoch
