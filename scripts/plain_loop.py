"""The framework-free limit of a dl-train experiment: the same recipe as a plain loop.

Composes the experiment's config with Hydra and builds the same net and optimizer from
it (the nets are plain ``nn.Module``s), then trains on the same batches as ``dl-train``:
MNIST as ``uint8`` tensors in memory, one seeded permutation per epoch, a batch is an
index, normalised as one tensor op, under bf16 autocast when the experiment's
``trainer.precision`` is (or ``auto`` resolves to, as in dl-train) ``bf16-mixed`` (as
Lightning does: the forward and the loss). No
Lightning, no logging, no checkpoints; the same process settings (threads, malloc
thresholds: ``tune_malloc=false`` for glibc's own).
``scripts/bench.py`` compares its training time with dl-train's ``train_s``.

    python scripts/plain_loop.py experiment=mnist_speed paths.data_dir=../shared/datasets

Prints one JSON line: accuracy (test, or val when ``data.val_fraction`` > 0), fit
seconds (data load + training, as dl-train's ``fit_s``), seconds inside the training
epochs (as dl-train's ``train_s``), optimizer steps, samples per second.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torchvision import datasets

from dltrain.runtime.allocator import tune_malloc
from dltrain.runtime.precision import resolve as resolve_precision

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def load(cfg: DictConfig) -> tuple[torch.Tensor, ...]:
    """(train x, train y, eval x, eval y); eval is a seeded val split when configured."""
    root = cfg.paths.data_dir
    train = datasets.MNIST(root, train=True, download=False)
    test = datasets.MNIST(root, train=False, download=False)
    x, y = train.data.unsqueeze(1), train.targets
    n_val = int(round(len(y) * float(cfg.data.val_fraction)))
    if n_val == 0:
        return x, y, test.data.unsqueeze(1), test.targets
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(cfg.seed))
    tr, va = perm[n_val:], perm[:n_val]
    return x[tr], y[tr], x[va], y[va]


def accuracy(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, norm) -> float:
    net.eval()
    with torch.no_grad():
        correct = sum(
            int((net(norm(xb)).argmax(1) == yb).sum())
            for xb, yb in zip(x.split(1000), y.split(1000), strict=True)
        )
    return correct / len(y)


def main(overrides: list[str]) -> None:
    show = "--cfg" in overrides  # `--cfg job`: print the composed config, run nothing
    overrides = [o for o in overrides if o not in ("--cfg", "job")]
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["paths.output_dir=.", *overrides])
    if show:
        print(OmegaConf.to_yaml(cfg))
        return
    torch.manual_seed(cfg.seed)
    if cfg.get("threads"):
        torch.set_num_threads(cfg.threads)
    if cfg.get("tune_malloc", True):  # the same process settings as dl-train's
        tune_malloc()

    # trainer.accelerator=gpu: the same loop on the GPU, the data resident there (as
    # dl-train's trainer=gpu does); the bench's per-step pair in scripts/gpu_check.sh.
    accelerator = str(cfg.trainer.accelerator)
    device = torch.device("cuda" if accelerator in ("gpu", "cuda") else "cpu")
    started = time.monotonic()
    x, y, x_eval, y_eval = (t.to(device) for t in load(cfg))
    mean, std = float(cfg.data.mean), float(cfg.data.std)

    def norm(xb: torch.Tensor) -> torch.Tensor:
        return (xb.float() / 255.0 - mean) / std

    net = instantiate(cfg.model).to(device)
    if cfg.get("channels_last"):
        net = net.to(memory_format=torch.channels_last)
    optimizer = instantiate(cfg.optimizer)(params=net.parameters())
    epochs, bs = int(cfg.trainer.max_epochs), int(cfg.data.batch_size)
    steps_per_epoch = -(-len(y) // bs)
    scheduler, per_step = None, cfg.scheduler.get("interval") == "step"
    if cfg.scheduler.get("scheduler") is not None:
        factory = instantiate(cfg.scheduler.scheduler)
        if factory.func is torch.optim.lr_scheduler.OneCycleLR:  # its length, as dl-train
            factory = partial(factory, total_steps=epochs * steps_per_epoch)
        scheduler = factory(optimizer=optimizer)

    # dl-train's own resolution of trainer.precision=auto on this device: like for like.
    precision = str(resolve_precision(cfg.trainer.precision, device.type))
    half = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    # fp16 needs loss scaling (as Lightning's 16-mixed); other precisions step plainly.
    scaler = torch.amp.GradScaler(device.type) if half is torch.float16 else None

    def autocast() -> contextlib.AbstractContextManager:
        if half is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=half)

    train_s = 0.0  # inside the epochs only, as dl-train's train_s
    for epoch in range(epochs):
        epoch_started = time.monotonic()
        net.train()
        # The same order as dl-train's batches (TensorBatches): seeded per epoch.
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        order = torch.randperm(len(y), generator=gen).to(device)
        for idx in order.split(bs):
            with autocast():
                xb, yb = x.index_select(0, idx), y.index_select(0, idx)  # as TensorBatches
                loss = F.cross_entropy(net(norm(xb)), yb)
            optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            if scheduler is not None and per_step:
                scheduler.step()
        if scheduler is not None and not per_step:
            scheduler.step()
        if device.type == "cuda":
            torch.cuda.synchronize()  # the epoch's kernels have run: honest train_s
        train_s += time.monotonic() - epoch_started
    fit_s = time.monotonic() - started

    with autocast():
        acc = accuracy(net, x_eval, y_eval, norm)
    key = "val_acc" if float(cfg.data.val_fraction) > 0 else "test_acc"
    samples = epochs * len(y)
    record = {key: acc, "fit_s": fit_s, "train_s": train_s, "steps": epochs * steps_per_epoch,
              "precision": precision}  # fmt: skip
    print(json.dumps({**record, "train_samples_per_s": samples / fit_s}))


if __name__ == "__main__":
    main(sys.argv[1:])
