"""Every bad input gets one ``error:`` line, the right exit code and no traceback.

The table is checked in-process (compose, validate, load the data: what ``dl-train``
does before training) so that it stays cheap; the cases marked ``CLI`` also run as
real ``dl-train``/``dl-eval`` processes, which must print exactly that line on stderr
and, for config errors, leave no run directory behind.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from conftest import BIN, ROOT, make_cifar10, make_mnist, run_cli
from dltrain import errors
from dltrain.config.checks import validate_run

CONFIGS = ROOT / "configs"
CLI = "cli"  # also run as a real process


@dataclass
class Case:
    id: str
    args: list[str]
    code: int
    line: str  # the exact stderr line; {data} and {tmp} are filled in
    files: Callable[[Path], None] | None = None  # writes the (bad) data under tmp/data
    tags: tuple[str, ...] = field(default_factory=tuple)
    cmd: str = "dl-train"


def _mnist(tmp: Path) -> Path:
    return make_mnist(tmp / "data", n_train=20, n_test=10) / "MNIST" / "raw"


def bad_magic(tmp: Path) -> None:
    path = _mnist(tmp) / "train-images-idx3-ubyte"
    data = bytearray(path.read_bytes())
    data[2:4] = b"\x0d\x03"  # float type code instead of unsigned bytes
    path.write_bytes(bytes(data))


def truncated_images(tmp: Path) -> None:
    path = _mnist(tmp) / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])


def truncated_header(tmp: Path) -> None:
    (_mnist(tmp) / "train-labels-idx1-ubyte").write_bytes(struct.pack(">i", 0x801))


def label_out_of_range(tmp: Path) -> None:
    path = _mnist(tmp) / "train-labels-idx1-ubyte"
    data = bytearray(path.read_bytes())
    data[8 + 3] = 12
    path.write_bytes(bytes(data))


def count_mismatch(tmp: Path) -> None:
    raw = _mnist(tmp)
    labels = np.arange(19) % 10
    path = raw / "train-labels-idx1-ubyte"
    path.write_bytes(struct.pack(">ii", 0x801, 19) + labels.astype(np.uint8).tobytes())


def missing_mnist(tmp: Path) -> None:
    (tmp / "data").mkdir()


def _cifar(tmp: Path) -> Path:
    return make_cifar10(tmp / "data", n_per_batch=4, n_test=4) / "cifar-10-batches-py"


def cifar_truncated(tmp: Path) -> None:
    path = _cifar(tmp) / "data_batch_2"
    path.write_bytes(path.read_bytes()[:300])


def cifar_wrong_size(tmp: Path) -> None:
    path = _cifar(tmp) / "data_batch_3"
    with open(path, "wb") as f:
        pickle.dump({"data": np.zeros((4, 1000), np.uint8), "labels": [0, 1, 2, 3]}, f)


def cifar_bad_labels(tmp: Path) -> None:
    path = _cifar(tmp) / "test_batch"
    with open(path, "wb") as f:
        pickle.dump({"data": np.zeros((2, 3072), np.uint8), "labels": [3, 10]}, f)


MNIST = ["data=mnist", "paths.data_dir={tmp}/data"]
CIFAR = ["data=cifar10", "paths.data_dir={tmp}/data"]
RAW = "{tmp}/data/MNIST/raw"
CIFAR_DIR = "{tmp}/data/cifar-10-batches-py"
REDOWNLOAD = "re-download the dataset (data.download=true) or replace the file"

CASES = [
    # ---- values out of range -------------------------------------------------------------
    Case("lr-negative", ["optimizer.lr=-1"], 2,
         "error: optimizer.lr=-1 is out of range: it must be > 0 — e.g. optimizer.lr=0.001",
         tags=(CLI,)),
    Case("lr-zero", ["optimizer=sgd", "optimizer.lr=0"], 2,
         "error: optimizer.lr=0 is out of range: it must be > 0 — e.g. optimizer.lr=0.001"),
    Case("momentum-negative", ["optimizer=sgd", "optimizer.momentum=-0.5"], 2,
         "error: optimizer.momentum=-0.5 is out of range: it must be >= 0 — "
         "e.g. optimizer.momentum=0"),
    Case("batch-size-zero", ["data.batch_size=0"], 2,
         "error: data.batch_size=0 is out of range: it must be >= 1 — e.g. data.batch_size=64"),
    Case("eval-batch-size-negative", ["data.eval_batch_size=-3"], 2,
         "error: data.eval_batch_size=-3 is out of range: it must be >= 1 — "
         "e.g. data.eval_batch_size=512"),
    Case("dropout-one", ["model.dropout=1.0"], 2,
         "error: model.dropout=1.0 is out of range: it must be >= 0 and < 1 — "
         "e.g. model.dropout=0.0"),
    Case("dropout-negative-cnn", ["model=cnn", "model.dropout=-0.1"], 2,
         "error: model.dropout=-0.1 is out of range: it must be >= 0 and < 1 — "
         "e.g. model.dropout=0.0"),
    Case("epochs-zero", ["trainer.max_epochs=0"], 2,
         "error: trainer.max_epochs=0 is out of range: it must be >= 1 — "
         "set trainer.max_epochs to a value >= 1"),
    Case("val-fraction-one", ["data.val_fraction=1"], 2,
         "error: data.val_fraction=1 is out of range: it must be >= 0 and < 1 — "
         "e.g. data.val_fraction=0.1"),
    Case("val-fraction-negative", ["data.val_fraction=-0.1"], 2,
         "error: data.val_fraction=-0.1 is out of range: it must be >= 0 and < 1 — "
         "e.g. data.val_fraction=0.1"),
    Case("one-class", ["data.num_classes=1"], 2,
         "error: data.num_classes=1 is out of range: it must be >= 2 — "
         "set data.num_classes to a value >= 2"),
    Case("zero-dim", ["data.shape=[1,0,8]"], 2,
         "error: data.shape=[1,0,8] has 0: each item must be >= 1 — "
         "set every item of data.shape to a value >= 1"),
    Case("step-gamma-zero", ["scheduler=step", "scheduler.scheduler.gamma=0"], 2,
         "error: scheduler.scheduler.gamma=0 is out of range: it must be > 0 — "
         "e.g. scheduler.scheduler.gamma=0.1"),
    Case("limit-negative", ["trainer.limit_train_batches=-1"], 2,
         "error: trainer.limit_train_batches=-1 is out of range: it must be >= 0 — "
         "set trainer.limit_train_batches to a value >= 0"),
    # ---- wrong types -----------------------------------------------------------------------
    Case("lr-text", ["optimizer.lr=abc"], 2,
         "error: optimizer.lr='abc' is not a number — e.g. optimizer.lr=0.001"),
    Case("batch-size-float", ["data.batch_size=1.5"], 2,
         "error: data.batch_size=1.5 is not an integer — e.g. data.batch_size=64"),
    Case("epochs-bool", ["trainer.max_epochs=true"], 2,
         "error: trainer.max_epochs=true is not an integer or null — "
         "set trainer.max_epochs to an integer or null"),
    Case("seed-text", ["seed=abc"], 2,
         "error: seed='abc' is not an integer or null — set seed to an integer or null"),
    Case("hidden-text", ["model.hidden=wide"], 2,
         "error: model.hidden='wide' is not a list of integers — "
         "e.g. model.hidden=[256,128]"),
    # Each checked from the class's own signature and annotations (config/signatures.py).
    Case("bool-text", ["model=resnet", "data=synthetic", "model.freeze_backbone=maybe"], 2,
         "error: model.freeze_backbone='maybe' is not true/false — "
         "e.g. model.freeze_backbone=false", tags=(CLI,)),
    Case("heads-zero", ["model=transformer_seq", "data=mnist1d", "model.heads=0"], 2,
         "error: model.heads=0 is out of range: it must be >= 1 — e.g. model.heads=4",
         tags=(CLI,)),
    Case("kernel-sizes-text", ["model=textcnn", "data=text_files", "model.kernel_sizes=three"], 2,
         "error: model.kernel_sizes='three' is not a list of integers — "
         "e.g. model.kernel_sizes=[3,4,5]", tags=(CLI,)),
    Case("kernel-size-item", ["model=textcnn", "data=text_files", "model.kernel_sizes=[3,x]"],
         2, "error: model.kernel_sizes=[3,'x'] is not a list of integers — "
         "e.g. model.kernel_sizes=[3,4,5]"),
    Case("arch-literal", ["model=resnet", "data=synthetic", "model.arch=resnet19"], 2,
         "error: model.arch='resnet19' is not one of the allowed values (did you mean "
         "'resnet18'?) — use one of: resnet18, resnet34, resnet50"),
    Case("readout-literal", ["model=gru", "data=mnist1d", "model.readout=first"], 2,
         "error: model.readout='first' is not one of the allowed values — "
         "use one of: last, mean, flatten"),
    Case("trainer-literal", ["trainer.deterministic=maybe"], 2,
         "error: trainer.deterministic='maybe' is not true/false or 'warn' or null — "
         "set trainer.deterministic to true/false or 'warn' or null"),
    Case("callback-key-typo", ["+callbacks.model_checkpoint.save_top=2"], 2,
         "error: unknown key 'callbacks.model_checkpoint.save_top' for "
         "lightning.pytorch.callbacks.ModelCheckpoint (did you mean 'save_top_k'?) — remove it; "
         "known keys: dirpath, filename, monitor, verbose, save_last, save_top_k, "
         "save_on_exception, save_weights_only, mode, auto_insert_metric_name, "
         "every_n_train_steps, train_time_interval, every_n_epochs, save_on_train_epoch_end, "
         "enable_version_counter"),
    Case("missing-required", ["data=image_folder", "data.num_classes=3"], 2,
         "error: data.root is not set: "
         "dltrain.data.sources.image_folder.ImageFolderDataModule needs it — "
         "add data.root=<value> to the command"),
    Case("mandatory-value", ["data.val_fraction=???"], 2,
         "error: data.val_fraction is not set (??? in the config) — add "
         "data.val_fraction=<value> to the command"),
    Case("string-bool", ["logger=wandb", "logger.wandb.group=true"], 2,
         "error: logger.wandb.group=true is not a string or null — "
         "set logger.wandb.group to a string or null"),
    Case("augment-range", ["augment=flip", "data.augment.cutout=-2"], 2,
         "error: data.augment.cutout=-2 is out of range: it must be >= 0 — "
         "e.g. data.augment.cutout=0"),
    # ---- unknown keys and values --------------------------------------------------------
    Case("added-key-typo", ["+model.dropuot=0.1"], 2,
         "error: unknown key 'model.dropuot' for dltrain.nets.mlp.MLP (did you mean "
         "'dropout'?) — remove it; known keys: in_shape, num_classes, hidden, activation, "
         "dropout, batch_norm, tabular, embed_dim", tags=(CLI,)),
    Case("added-optimizer-typo", ["optimizer=sgd", "+optimizer.momentun=0.9"], 2,
         "error: unknown key 'optimizer.momentun' for torch.optim.SGD (did you mean "
         "'momentum'?) — remove it; known keys: params, lr, momentum, dampening, "
         "weight_decay, nesterov, maximize, foreach, differentiable, fused"),
    Case("override-key-typo", ["optimizer.lrr=0.1"], 2,
         "error: unknown config key 'optimizer.lrr' (did you mean 'lr'?) — check the spelling "
         "with `dl-train --cfg job`, or add a new key with +optimizer.lrr=...", tags=(CLI,)),
    Case("unknown-option", ["trainer=tpu"], 2,
         "error: unknown option 'tpu' for trainer (did you mean 'gpu'?) — choose one of: bf16, "
         "cpu, ddp, ddp_cpu, "
         "fsdp, fsdp_cpu, gpu", tags=(CLI,)),
    Case("unknown-option-typo", ["optimizer=adamm"], 2,
         "error: unknown option 'adamm' for optimizer (did you mean 'adam'?) — "
         "choose one of: adam, adamw, sgd"),
    Case("resume-mode", ["resume=sometimes"], 2,
         "error: resume='sometimes' is not one of the allowed values — use one of: auto, never"),
    Case("nan-policy", ["nan_policy=ignore"], 2,
         "error: nan_policy='ignore' is not one of the allowed values — use one of: stop, skip"),
    Case("monitor-mode", ["monitor_mode=maximum"], 2,
         "error: monitor_mode='maximum' is not one of the allowed values (did you mean "
         "'max'?) — use one of: min, max"),
    Case("activation-typo", ["model.activation=rleu"], 2,
         "error: model.activation='rleu' is not one of the allowed values (did you mean "
         "'relu'?) — use one of: relu, gelu, tanh, silu, leaky_relu"),
    Case("precision-typo", ["trainer.precision=bf17"], 2,
         "error: trainer.precision='bf17' is not one of the allowed values (did you mean "
         "'bf16'?) — use one of: 64, 32, 16, transformer-engine, transformer-engine-float16, "
         "16-true, 16-mixed, bf16-true, bf16-mixed, 32-true, 64-true, bf16, auto"),
    Case("interval", ["scheduler=cosine", "scheduler.interval=batch"], 2,
         "error: scheduler.interval='batch' is not one of the allowed values — "
         "use one of: epoch, step"),
    Case("parse-error", ["trainer.max_epochs=[1"], 2,
         "error: cannot parse the command-line override: no viable alternative at input "
         "'[1' — write overrides as key=value (quote values with spaces or special "
         "characters)", tags=(CLI,)),
    Case("append-existing", ["+seed=1"], 2,
         "error: 'seed' already exists — drop the leading '+' to change its value", tags=(CLI,)),
    # ---- combinations ------------------------------------------------------------------------
    Case("model-shape-mismatch", ["model.in_shape=[3,32,32]"], 2,
         "error: model.in_shape=[3,32,32] does not match data.shape=[1,8,8] and the model "
         "cannot adapt to it — drop the model.in_shape override (it follows data.shape), or "
         "pick data whose shape the model was built for", tags=(CLI,)),
    Case("cnn-flat-data", ["model=cnn", "data=synthetic", "data.shape=[64]"], 2,
         "error: model=cnn takes images (C,H,W) but data=synthetic gives rank-1 inputs — "
         "use model=mlp"),
    Case("more-processes-than-samples",
         ["trainer=ddp_cpu", "trainer.devices=600", "data=synthetic", "data.num_train=500"], 2,
         "error: 600 processes (trainer.devices x trainer.num_nodes) but only 450 training "
         "samples: some processes would get no data — use at most 450 processes (e.g. "
         "trainer.devices=1), or more data"),
    Case("plateau-without-validation", ["scheduler=plateau", "data.val_fraction=0"], 2,
         "error: scheduler=plateau watches val/acc, but this run has no validation split — "
         "set data.val_fraction > 0 (e.g. 0.1), or use another scheduler"),
    Case("missing-checkpoint", ["ckpt_path={tmp}/nope.ckpt"], 2,
         "error: checkpoint {tmp}/nope.ckpt does not exist — pass ckpt_path=<run dir>/"
         "checkpoints/<file>.ckpt of a finished or interrupted run"),
    # ---- data files -----------------------------------------------------------------------
    Case("mnist-missing", MNIST, 1,
         "error: MNIST not found: expected train-images-idx3-ubyte, train-labels-idx1-ubyte, "
         "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte in {tmp}/data/MNIST/raw — set "
         "paths.data_dir to the folder that holds MNIST's files (now {tmp}/data), or add "
         "data.download=true when online", files=missing_mnist),
    Case("idx-wrong-magic", MNIST, 1,
         f"error: {RAW}/train-images-idx3-ubyte has IDX magic 0x00000d03, expected 0x00000803 "
         f"(unsigned bytes, 3 dimensions) — {REDOWNLOAD}", files=bad_magic, tags=(CLI,)),
    Case("idx-truncated", MNIST, 1,
         f"error: {RAW}/t10k-images-idx3-ubyte holds 7756 bytes, but its IDX header "
         f"[10, 28, 28] needs 7856 (truncated) — {REDOWNLOAD}", files=truncated_images),
    Case("idx-truncated-header", MNIST, 1,
         f"error: {RAW}/train-labels-idx1-ubyte is truncated inside its IDX header — "
         f"{REDOWNLOAD}", files=truncated_header),
    Case("idx-label-range", MNIST, 1,
         f"error: {RAW}/train-labels-idx1-ubyte has label 12, outside 0..9 for "
         "data.num_classes=10 — fix the label file, or set data.num_classes to the real "
         "class count", files=label_out_of_range),
    Case("idx-count-mismatch", MNIST, 1,
         f"error: {RAW}/train-images-idx3-ubyte holds 20 images but {RAW}/"
         f"train-labels-idx1-ubyte 19 labels — {REDOWNLOAD}", files=count_mismatch),
    Case("cifar-truncated", CIFAR, 1,
         f"error: {CIFAR_DIR}/data_batch_2 is not a readable CIFAR batch (UnpicklingError: "
         "pickle data was truncated) — re-download CIFAR-10 (data.download=true) or replace "
         "the file", files=cifar_truncated),
    Case("cifar-wrong-size", CIFAR, 1,
         f"error: {CIFAR_DIR}/data_batch_3 is not a readable CIFAR batch (ValueError: cannot "
         "reshape array of size 4000 into shape (3,32,32)) — re-download CIFAR-10 "
         "(data.download=true) or replace the file", files=cifar_wrong_size),
    Case("cifar-label-range", CIFAR, 1,
         f"error: {CIFAR_DIR}/test_batch has labels in [3, 10], outside CIFAR-10's 0..9 — "
         "the file is corrupt or not CIFAR-10; re-download it", files=cifar_bad_labels),
]  # fmt: skip


def _args(case: Case, tmp: Path) -> list[str]:
    return [a.format(tmp=tmp) for a in case.args]


def _expected(case: Case, tmp: Path) -> str:
    return case.line.format(tmp=tmp)


def compose_and_prepare(args: list[str], tmp: Path) -> None:
    """What dl-train does before training: compose, validate, load the data."""
    from dltrain.commands import build

    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"paths.output_dir={tmp}/run", *args])
    validate_run(cfg)
    build.datamodule(cfg).setup("fit")


def test_the_table_is_large_and_distinct() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)
    assert len({c.line for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_in_process(case: Case, tmp_path: Path) -> None:
    if case.files:
        case.files(tmp_path)
    with pytest.raises(Exception) as info:  # noqa: B017 - any error; describe() maps it
        compose_and_prepare(_args(case, tmp_path), tmp_path)
    code, message = errors.describe(info.value)
    assert (code, f"error: {message}") == (case.code, _expected(case, tmp_path))


CLI_CASES = [c for c in CASES if CLI in c.tags]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_bad_input_as_a_process(case: Case, tmp_path: Path) -> None:
    if case.files:
        case.files(tmp_path)
    out = run_cli(_args(case, tmp_path), cwd=tmp_path, cmd=case.cmd)
    assert out.returncode == case.code
    assert out.stderr.splitlines() == [_expected(case, tmp_path)]
    if case.code == 2:  # rejected before work: no run directory is left behind
        runs = tmp_path / "outputs" / "train" / "runs"
        assert not runs.exists() or not any(runs.iterdir())


def _modules_after_rejecting(args: list[str], tmp_path: Path) -> str:
    code = (
        "import sys\n"
        f"sys.argv = ['dl-train', *{args!r}]\n"
        "from dltrain.commands import cli\n"
        "try:\n    cli.train_main()\nexcept SystemExit as e:\n    print('EXIT', e.code)\n"
        "print('HEAVY', 'torch' in sys.modules, 'lightning' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    return out.stdout + out.stderr


def test_top_level_errors_do_not_import_torch(tmp_path: Path) -> None:
    out = _modules_after_rejecting(["resume=sometimes"], tmp_path)
    assert "EXIT 2" in out and "HEAVY False False" in out, out


def test_model_errors_import_torch_but_not_lightning(tmp_path: Path) -> None:
    """Reading a net's signature imports its module (torch); the model is checked before
    the data and the trainer, whose modules import Lightning."""
    out = _modules_after_rejecting(["model=transformer_seq", "model.heads=0"], tmp_path)
    assert "EXIT 2" in out and "HEAVY True False" in out, out


def test_full_traceback_on_request(tmp_path: Path) -> None:
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    env.pop("DLTRAIN_SHOW_TRACEBACK", None)
    out = subprocess.run(
        [str(BIN / "dl-train"), "resume=sometimes"], cwd=tmp_path, env=env, capture_output=True,
        text=True,
    )  # fmt: skip
    assert out.returncode != 0
    assert "Traceback" in out.stderr and "ConfigError" in out.stderr


def test_corrupt_checkpoint_is_refused_by_dl_eval(tmp_path: Path) -> None:
    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(b"PK\x03\x04" + b"\x00" * 60)
    out = run_cli([f"ckpt_path={ckpt}"], cwd=tmp_path, cmd="dl-eval")
    assert out.returncode == 1
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"error: checkpoint {ckpt} is truncated or corrupt (")
    assert lines[0].endswith(
        "— use another checkpoint (e.g. last.ckpt or the best one in the same folder)"
    )


def test_nan_inputs_name_the_split(tmp_path: Path) -> None:
    import torch

    from dltrain.data.loading.split import Split
    from dltrain.data.sources.synthetic import SyntheticDataModule

    class WithNaN(SyntheticDataModule):
        def load(self) -> tuple[Split, Split]:
            train, test = super().load()
            train.x[3, 0, 0, 0] = float("nan")
            return train, test

    dm = WithNaN(shape=[1, 4, 4], num_classes=3, num_train=16, num_test=8)
    with pytest.raises(errors.DataError) as info:
        dm.setup("fit")
    assert errors.describe(info.value) == (
        1,
        "train inputs contain NaN or infinite values — clean the input data "
        "(every value must be finite)",
    )
    assert torch.isnan(dm.load()[0].x).any()


def test_rejected_config_leaves_no_run_directory(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("seed: 1\n")
    (run / "train.log").write_text("")
    with pytest.raises(errors.ConfigError):
        compose_and_prepare(["data.batch_size=0"], tmp_path)
    assert not run.exists()
    # A directory with real work in it (an earlier run's checkpoints) is kept.
    (run / "checkpoints").mkdir(parents=True)
    with pytest.raises(errors.ConfigError):
        compose_and_prepare(["data.batch_size=0"], tmp_path)
    assert (run / "checkpoints").is_dir()


def test_resume_auto_prefers_the_newest_checkpoint(tmp_path: Path) -> None:
    """Lightning's SLURM requeue writes hpc_ckpt_N.ckpt into the run directory."""
    from omegaconf import OmegaConf

    from dltrain.checkpointing.resume import checkpoint_to_resume

    cfg = OmegaConf.create(
        {"ckpt_path": None, "resume": "auto", "paths": {"output_dir": str(tmp_path)}}
    )
    assert checkpoint_to_resume(cfg) is None
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.parent.mkdir()
    last.write_bytes(b"x")
    assert checkpoint_to_resume(cfg) == str(last)
    hpc = tmp_path / "hpc_ckpt_2.ckpt"
    hpc.write_bytes(b"x")
    os.utime(last, ns=(1, 1))
    assert checkpoint_to_resume(cfg) == str(hpc)
    cfg.resume = "never"
    assert checkpoint_to_resume(cfg) is None


def test_resume_into_another_models_run_directory_is_refused(tmp_path: Path) -> None:
    """``resume=auto`` (the default) with a run directory whose checkpoint holds another
    model: one line naming the differing keys and the ways out, the old run untouched."""
    run = tmp_path / "run"
    common = ["debug=fast", "logger=none", "data=synthetic", "data.num_train=64",
              "data.num_test=32", f"hydra.run.dir={run}"]  # fmt: skip
    first = run_cli(common, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    last = run / "checkpoints" / "last.ckpt"
    before = last.stat().st_mtime_ns
    out = run_cli([*common, "model=cnn"], cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        f"error: {last} belongs to a run with another model or data (differing keys: "
        "model._target_, model.hidden, model.batch_norm, model.channels, "
        "model.convs_per_stage, model.kernel_size and 1 more) — pass resume=never to start "
        "afresh in that directory, or give this run a new hydra.run.dir"
    ]
    assert last.stat().st_mtime_ns == before
    assert json.loads((run / "results.json").read_text())["status"] == "completed"
