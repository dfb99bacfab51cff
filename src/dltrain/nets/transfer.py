"""Transfer learning for torchvision backbones: ImageNet weights (downloaded, or from a
local state-dict file), a frozen backbone, a head with its own learning rate, and
inputs resized to the size the weights were trained at.

ImageNet's normalisation is a data setting (``data.mean``/``data.std``, set by the
fine-tuning experiment), because the data module already standardises every batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dltrain.errors import ConfigError, DataError

#: ImageNet's per-channel statistics, which torchvision's weights expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def weights_size(arch: str) -> int:
    """The input size torchvision's default ImageNet weights for ``arch`` use (224)."""
    from torchvision.models import get_model_weights

    return int(get_model_weights(arch).DEFAULT.transforms().crop_size[0])


def imagenet_state_dict(arch: str, weights_path: str | None) -> dict[str, Tensor]:
    """The ImageNet weights of torchvision's ``arch``: from ``weights_path`` when given,
    otherwise from torch's hub cache, downloading them there when online."""
    if weights_path:
        return read_state_dict(Path(weights_path))
    from torchvision.models import get_model_weights

    weights = get_model_weights(arch).DEFAULT
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except (OSError, RuntimeError) as ex:  # URLError is an OSError; a bad hash a RuntimeError
        hub = Path(torch.hub.get_dir()) / "checkpoints"
        name = weights.url.rsplit("/", 1)[-1]
        raise DataError(
            f"could not get the ImageNet weights of {arch} ({type(ex).__name__}: "
            f"{str(ex).strip().splitlines()[0] if str(ex).strip() else 'no detail'})",
            f'offline, save them where you are online with `python -c "import torch, '
            f"torchvision; torch.save(torchvision.models.{arch}(weights='DEFAULT')"
            f".state_dict(), '{arch}.pth')\"` and pass model.weights_path={arch}.pth "
            f"(or copy {name} into {hub})",
        ) from ex


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """A state dict saved with ``torch.save`` (tensors only: loaded with weights_only)."""
    if not path.is_file():
        raise ConfigError(
            f"model.weights_path={path} does not exist",
            "point it at a state-dict file saved with torch.save(model.state_dict(), path)",
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as ex:  # noqa: BLE001 - any unreadable file is the same user problem
        raise DataError(
            f"{path} is not a readable state-dict file ({type(ex).__name__})",
            "save weights with torch.save(model.state_dict(), path)",
        ) from ex
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise DataError(
            f"{path} does not hold a state dict (a mapping of names to tensors)",
            "save weights with torch.save(model.state_dict(), path)",
        )
    return dict(state)


def load_backbone(model: nn.Module, state: Mapping[str, Tensor], skip: str, source: str) -> None:
    """Load ``state`` into ``model`` except the ImageNet classifier (keys under ``skip``);
    every other weight must be there with its shape."""
    state = {k: v for k, v in state.items() if not k.startswith(skip)}
    own = {k: v for k, v in model.state_dict().items() if not k.startswith(skip)}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape", wrong))
            if keys
        )
        raise DataError(
            f"{source} does not fit {type(model).__name__} ({detail})",
            "use a state dict saved from the same torchvision architecture (model.arch)",
        )
    model.load_state_dict(state, strict=False)


def adapt_input_channels(conv: nn.Conv2d, channels: int) -> nn.Conv2d:
    """An RGB input conv for ``channels`` inputs: each new input channel gets the mean RGB
    filter scaled by 3/channels, so activations keep their scale (as timm does)."""
    new = nn.Conv2d(
        channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        bias=conv.bias is not None,
    )
    with torch.no_grad():
        mean = conv.weight.mean(1, keepdim=True)
        new.weight.copy_(mean.repeat(1, channels, 1, 1) * (3.0 / channels))
    return new


class TransferNet(nn.Module):
    """``backbone -> linear head`` with the transfer-learning switches.

    Args:
        backbone: maps images to ``features``-dim vectors.
        features: width of the backbone's output.
        num_classes: classes of the new head.
        freeze_backbone: keep the backbone as loaded (no gradients, BatchNorm statistics
            frozen); only the head (and ``new_modules``) learn.
        head_lr: learning rate of the head's parameter group (``None``: the optimizer's).
        input_size: resize batches to this square size first (``None``: as they come).
        new_modules: backbone modules replaced for this data (e.g. a new stem); they
            learn even when the backbone is frozen.
    """

    def __init__(
        self,
        backbone: nn.Module,
        features: int,
        num_classes: int,
        freeze_backbone: bool = False,
        head_lr: float | None = None,
        input_size: int | None = None,
        new_modules: Iterable[nn.Module] = (),
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(features, num_classes)
        self.freeze_backbone = bool(freeze_backbone)
        self.head_lr = float(head_lr) if head_lr is not None else None
        self.input_size = int(input_size) if input_size else None
        self._new_modules = list(new_modules)
        if self.freeze_backbone:
            self.backbone.requires_grad_(False)
            for module in self._new_modules:
                module.requires_grad_(True)
        self.train()  # Lightning keeps each submodule's mode as built: freeze it now

    def forward(self, x: Tensor) -> Tensor:
        size = self.input_size
        if size is not None and tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
        return self.head(self.backbone(x))

    def train(self, mode: bool = True) -> TransferNet:
        super().train(mode)
        if self.freeze_backbone:  # frozen BatchNorm keeps its loaded running statistics
            self.backbone.eval()
            for module in self._new_modules:
                module.train(mode)
        return self

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimizer parameter groups: the trainable backbone (optimizer's lr) and the
        head (``head_lr``). The Classifier uses these when a net provides them."""
        backbone = [p for p in self.backbone.parameters() if p.requires_grad]
        head: dict[str, Any] = {"params": list(self.head.parameters())}
        if self.head_lr is not None:
            head["lr"] = self.head_lr
        return ([{"params": backbone}] if backbone else []) + [head]
