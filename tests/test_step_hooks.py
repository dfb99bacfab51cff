"""The per-step fast path: unused hooks skipped, NaN checks without per-step tensor ops,
plain attributes of the module set without nn.Module's checks, and the garbage
collector kept off the imported libraries."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra import compose, initialize_config_dir
from lightning.pytorch.callbacks import Callback
from torch import nn

from conftest import ROOT
from dltrain.checkpointing.nan_guard import NanGuard
from dltrain.commands import build
from dltrain.errors import RunError

SMALL = ["data=synthetic", "data.shape=[1,6,6]", "data.num_classes=4", "trainer.max_epochs=2",
         "logger=none", "callbacks=none"]  # fmt: skip


class Counter(Callback):
    """Counts the two per-batch hooks it implements."""

    def __init__(self) -> None:
        self.batch_ends = 0
        self.backwards = 0

    def on_train_batch_end(self, *args, **kwargs) -> None:
        self.batch_ends += 1

    def on_before_backward(self, *args, **kwargs) -> None:
        self.backwards += 1


def _cfg(tmp_path: Path, overrides: list[str]):
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose(
            config_name="train", overrides=[f"paths.output_dir={tmp_path}", *SMALL, *overrides]
        )


def test_implemented_batch_hooks_run_every_step_and_the_rest_are_skipped(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, [])
    counter, guard = Counter(), NanGuard()
    trainer = build.trainer(cfg, [counter, guard], [])
    module = build.module(cfg)
    trainer.fit(module, datamodule=build.datamodule(cfg))

    assert trainer.global_step > 0
    assert counter.batch_ends == counter.backwards == trainer.global_step
    # Not implemented by the class: Lightning finds None and skips the call.
    assert counter.on_after_backward is None and counter.on_test_batch_end is None
    assert guard.on_train_batch_end is None
    assert callable(guard.on_before_backward) and callable(guard.on_before_optimizer_step)
    assert module.on_before_zero_grad is None and module.on_train_batch_end is None
    # Evaluation hooks of the module stay: Lightning inspects their signatures.
    assert callable(module.on_validation_batch_end)
    assert trainer.callback_metrics["train/loss"].isfinite()


def _guard_steps(guard: NanGuard, losses: list[float]) -> None:
    trainer = SimpleNamespace(global_step=0, current_epoch=1, world_size=1)
    for step, value in enumerate(losses):
        trainer.global_step = step
        guard.on_before_backward(trainer, None, torch.tensor(value))


def test_nan_guard_names_the_first_bad_step_at_the_epoch_end() -> None:
    guard = NanGuard(check_every_n_steps=50)
    _guard_steps(guard, [1.0] * 7 + [float("inf"), float("nan"), 1.0])  # no check yet
    with pytest.raises(RunError, match="the training loss became NaN/inf at step 7 "):
        done = SimpleNamespace(current_epoch=1, is_global_zero=True, world_size=1)
        guard.on_train_epoch_end(done, None)


def test_nan_guard_checks_every_n_losses_without_waiting_for_the_epoch_end() -> None:
    guard = NanGuard(check_every_n_steps=4)
    _guard_steps(guard, [1.0, 2.0, 3.0, 4.0, 5.0])  # checked after the 4th: all finite
    assert len(guard._unchecked) == 1
    with pytest.raises(RunError, match="at step 6 "):
        _guard_steps(guard, [1.0] * 6 + [float("nan"), 1.0])


def test_classifier_plain_attributes_and_registered_tensors_behave_as_in_nn_module(
    tmp_path: Path,
) -> None:
    module = build.module(_cfg(tmp_path, []))
    module.samples_seen = 5
    module._current_fx_name = None
    assert module.samples_seen == 5 and module._current_fx_name is None
    module.extra = nn.Parameter(torch.zeros(2))  # new names still register
    module.register_buffer("mark", torch.zeros(1))
    module.mark = torch.ones(1)
    assert "extra" in dict(module.named_parameters())
    assert module.state_dict()["mark"].item() == 1.0
    assert "samples_seen" not in module.state_dict()
    with pytest.raises(TypeError, match="cannot assign 'int' as buffer 'mark'"):
        module.mark = 3


def test_collector_is_off_during_imports_then_frozen_once_and_back_on() -> None:
    import gc

    from dltrain.runtime import startup

    gc.unfreeze()  # start as a fresh process does: nothing frozen
    try:
        startup.defer_collection()
        assert not gc.isenabled()
        startup.freeze_imports()
        frozen = gc.get_freeze_count()
        assert gc.isenabled() and frozen > 0
        startup.defer_collection()
        _ = [[] for _ in range(1000)]  # a later job's objects stay collectable
        startup.freeze_imports()
        # Not frozen again: the 1000 new lists would add 1000. (Frozen objects freed
        # meanwhile, e.g. by another thread of the test runner, may lower the count.)
        assert gc.isenabled() and gc.get_freeze_count() <= frozen
    finally:
        gc.unfreeze()
        gc.enable()
