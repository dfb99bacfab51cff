"""Every model runs on every data it can take; transfer learning works offline."""

from __future__ import annotations

import urllib.error
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir

from conftest import ROOT, make_cifar10, make_image_folder, make_mnist
from dltrain.config.model_data import data_kind, model_kind
from dltrain.errors import DataError
from test_train import train_in_process

CONFIGS = ROOT / "configs"

# How each data option runs here: tiny real files where the real set is not on disk.
DATA_OVERRIDES = {
    "digits": [],
    "mnist": ["paths.data_dir={data}"],
    "fashion_mnist": ["paths.data_dir={data}"],
    "cifar10": ["paths.data_dir={data}"],
    "synthetic": ["data.num_train=64", "data.num_test=32"],
    "mnist1d": ["data.num_samples=500"],
    "image_folder": ["data.root={data}/images", "data.num_classes=3", "data.shape=[3,16,16]"],
}
# Small widths keep the matrix fast; ViT-B/16 (86M parameters, no smaller variant)
# runs at its smallest input (one 16 px patch).
MODEL_OVERRIDES = {
    "vit": ["model.width=32", "model.depth=1", "model.heads=2"],
    "vit_b16": ["model.image_size=16"],
    "transformer_seq": ["model.width=16", "model.depth=1", "model.heads=2"],
    "gru": ["model.hidden=16"],
    "lstm": ["model.hidden=16"],
}
# ViT-B/16's training steps take a minute on a CPU: its pairs are marked slow; the
# suite builds it and runs a tiny forward instead (below).
SLOW_MODELS = {"vit_b16"}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


MODELS, DATA = options("model"), options("data")


def compose_train(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def compatible_pairs() -> list[tuple[str, str]]:
    takes = {m: model_kind(str(compose_train([f"model={m}"]).model._target_)) for m in MODELS}
    # A table's shape is known once it is read (null here): tables have their own tests.
    gives = {d: data_kind(list(compose_train([f"data={d}"]).data.get("shape") or [])) for d in DATA}
    # Image and sequence data; other kinds of data are tested with their own models.
    known = ("images", "sequences")
    return [
        (m, d) for m in MODELS for d in DATA if gives[d] in known and takes[m] in ("any", gives[d])
    ]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    make_mnist(root, "MNIST")
    make_mnist(root, "FashionMNIST")
    make_cifar10(root)
    make_image_folder(root / "images")
    return root


def _marked(model: str, data: str):
    slow = model in SLOW_MODELS
    return pytest.param(model, data, marks=[pytest.mark.slow] if slow else [])


def _keep_built(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The data module and LightningModule the recipe builds, kept for a look after."""
    from dltrain.commands import build

    kept: dict[str, Any] = {}

    def keeping(name: str) -> Any:
        made = getattr(build, name)

        def make(*args: Any, **kwargs: Any) -> Any:
            kept[name] = made(*args, **kwargs)
            return kept[name]

        return make

    for name in ("datamodule", "module"):
        monkeypatch.setattr(build, name, keeping(name))
    return kept


def _scored_again(kept: dict[str, Any]) -> tuple[float, float]:
    """Accuracy and mean loss of the trained net on the one test batch a ``debug=fast``
    run scores, from its own predictions (the data module's batch hooks included)."""
    import torch.nn.functional as F

    dm, module = kept["datamodule"], kept["module"].eval()
    batch = dm.on_before_batch_transfer(next(iter(dm.test_dataloader())), 0)
    x, y = dm.on_after_batch_transfer(batch, 0)
    with torch.no_grad():
        logits = module(x)
    return (logits.argmax(-1) == y).float().mean().item(), F.cross_entropy(logits, y).item()


@pytest.mark.parametrize("model,data", [_marked(m, d) for m, d in compatible_pairs()])
def test_debug_fast_run_of_every_compatible_pair(
    tmp_path: Path, data_root: Path, model: str, data: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = _keep_built(monkeypatch)
    overrides = [o.format(data=data_root) for o in DATA_OVERRIDES.get(data, [])]
    _, results = train_in_process(
        tmp_path,
        [
            "debug=fast",
            f"model={model}",
            f"data={data}",
            *overrides,
            *MODEL_OVERRIDES.get(model, []),
            "data.batch_size=8",
            "data.eval_batch_size=16",
            "logger=none",
            "callbacks=none",
        ],
    )
    assert results["status"] == "completed"
    assert results["steps"] == 1
    metrics = results["metrics"]
    assert torch.isfinite(torch.tensor([metrics["train/loss"], metrics["test/loss"]])).all()
    # The logged test metrics are the trained net's on the batch it scored.
    acc, loss = _scored_again(kept)
    assert metrics["test/acc"] == pytest.approx(acc, abs=1e-6)
    assert metrics["test/loss"] == pytest.approx(loss, rel=1e-4, abs=1e-6)


def test_large_torchvision_models_build_and_run_a_tiny_forward() -> None:
    from dltrain.nets.resnet import ResNet
    from dltrain.nets.vit import ViTB16

    vit = ViTB16([1, 28, 28], 7, image_size=16)  # batches resized to one 16 px patch
    resnet50 = ResNet([1, 28, 28], 7, arch="resnet50", small_input=True)
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert vit(x).shape == (2, 7) and resnet50(x).shape == (2, 7)
    assert sum(p.numel() for p in vit.parameters()) > 85_000_000


def test_cifar10_resnet18_experiment_smoke_runs(tmp_path: Path, data_root: Path) -> None:
    _, results = train_in_process(
        tmp_path,
        ["experiment=cifar10_resnet18", "debug=fast", f"paths.data_dir={data_root}", "logger=none"],
    )
    assert results["status"] == "completed" and results["steps"] == 1
    cfg = compose_train(["experiment=cifar10_resnet18"])
    assert cfg.model.small_input and cfg.data.augment.crop_padding == 4


def test_finetune_folder_experiment_runs_offline(tmp_path: Path, data_root: Path) -> None:
    import torchvision

    weights = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    _, results = train_in_process(
        tmp_path,
        [
            "experiment=finetune_resnet_folder",
            "debug=fast",
            f"data.root={data_root}/images",
            "data.num_classes=3",
            "data.shape=[3,16,16]",
            "data.cache_shape=[3,20,20]",
            f"data.cache_dir={tmp_path / 'cache'}",
            f"model.weights_path={weights}",
            "model.input_size=32",  # the template's 224 px is slow on a CPU
            "logger=none",
        ],
    )
    assert results["status"] == "completed" and results["steps"] == 1


# ---- transfer learning, offline ------------------------------------------------------------
def _build(cfg):
    from dltrain.commands import build

    return build.datamodule(cfg), build.module(cfg)


def test_weights_path_loads_and_frozen_backbone_stays_while_head_learns(tmp_path: Path) -> None:
    import lightning.pytorch as pl
    import torchvision

    from dltrain.commands import build

    saved = torchvision.models.resnet18(weights=None).state_dict()
    weights = tmp_path / "resnet18.pth"
    torch.save(saved, weights)
    cfg = compose_train(
        [
            "model=resnet",
            "model.pretrained=true",
            f"model.weights_path={weights}",
            "model.freeze_backbone=true",
            "model.head_lr=0.05",
            "model.input_size=32",  # the weights' 224 px would be slow on a CPU
            "data=image_folder",
            f"data.root={make_image_folder(tmp_path / 'images')}",
            "data.num_classes=3",
            "data.shape=[3,24,24]",
            "data.batch_size=8",
            "data.mean=[0.485,0.456,0.406]",
            "data.std=[0.229,0.224,0.225]",
            "optimizer.lr=0.001",
            f"paths.output_dir={tmp_path / 'run'}",
            "trainer.max_epochs=2",
            "logger=none",
            "callbacks=none",
        ]
    )
    pl.seed_everything(0, verbose=False)
    datamodule, module = _build(cfg)
    net = module.net
    for key, value in saved.items():  # loaded: every backbone tensor is the file's
        if not key.startswith("fc."):
            assert torch.equal(net.backbone.state_dict()[key], value), key
    head_before = {k: v.clone() for k, v in net.head.state_dict().items()}

    optimizer = module.configure_optimizers()
    assert [g["lr"] for g in optimizer.param_groups] == [0.05]  # the head only
    assert {id(p) for p in optimizer.param_groups[0]["params"]} == {
        id(p) for p in net.head.parameters()
    }

    trainer = build.trainer(cfg, [], [])
    trainer.fit(module, datamodule=datamodule)
    assert trainer.global_step > 0
    after = net.backbone.state_dict()
    for key, value in saved.items():  # weights and BatchNorm statistics unchanged
        if not key.startswith("fc."):
            assert torch.equal(after[key], value), key
    for key, value in net.head.state_dict().items():
        assert not torch.equal(value, head_before[key]), key


def test_unfrozen_backbone_and_head_get_their_own_learning_rates() -> None:
    from dltrain.nets.resnet import ResNet

    net = ResNet([1, 28, 28], 10, small_input=True, head_lr=0.01)
    groups = net.param_groups()
    assert len(groups) == 2 and "lr" not in groups[0] and groups[1]["lr"] == 0.01
    optimizer = torch.optim.SGD(groups, lr=0.1)
    assert [g["lr"] for g in optimizer.param_groups] == [0.1, 0.01]
    assert sum(p.numel() for g in groups for p in g["params"]) == sum(
        p.numel() for p in net.parameters()
    )


def test_pretrained_resizes_batches_to_the_weights_size(tmp_path: Path) -> None:
    import torchvision

    from dltrain.nets.resnet import ResNet

    weights = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    net = ResNet([3, 32, 32], 5, pretrained=True, weights_path=str(weights))
    assert net.input_size == 224
    seen = []
    net.backbone.conv1.register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    assert net(torch.zeros(1, 3, 32, 32)).shape == (1, 5)
    assert seen == [(1, 3, 224, 224)]


def test_offline_without_weights_file_says_how_to_provide_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dltrain.nets.resnet import ResNet

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty hub cache

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "urlopen", offline)
    with pytest.raises(DataError) as err:
        ResNet([3, 32, 32], 10, pretrained=True)
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    assert str(err.value) == (
        "could not get the ImageNet weights of resnet18 (URLError: <urlopen error no network>)"
        ' — offline, save them where you are online with `python -c "import torch, '
        "torchvision; torch.save(torchvision.models.resnet18(weights='DEFAULT').state_dict(),"
        " 'resnet18.pth')\"` and pass model.weights_path=resnet18.pth (or copy "
        f"resnet18-f37072fd.pth into {hub})"
    )


def test_weights_file_of_another_architecture_is_refused(tmp_path: Path) -> None:
    import torchvision

    from dltrain.nets.resnet import ResNet

    weights = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), weights)
    with pytest.raises(DataError, match=r"does not fit ResNet \(unexpected: layer1\.2\."):
        ResNet([3, 32, 32], 10, pretrained=True, weights_path=str(weights))
