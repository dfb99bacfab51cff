"""torchvision's ResNet-18/34/50 for any channel count and image size, optionally
starting from ImageNet weights."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from annotated_types import Gt
from torch import nn

from dltrain.errors import ConfigError
from dltrain.nets.layers import Shape, Size
from dltrain.nets.transfer import (
    TransferNet,
    adapt_input_channels,
    imagenet_state_dict,
    load_backbone,
    weights_size,
)

Arch = Literal["resnet18", "resnet34", "resnet50"]
ARCHS = get_args(Arch)


class ResNet(TransferNet):
    """A torchvision ResNet body with a new linear head.

    Args:
        arch: ``resnet18`` | ``resnet34`` | ``resnet50``.
        small_input: the CIFAR stem (3x3 stride-1 conv, no max-pool) for 28-32 px images;
            the ImageNet stem (7x7 stride-2 conv + max-pool) shrinks them 4x at once.
        pretrained: start from torchvision's ImageNet weights (``weights_path`` or the
            hub cache / a download).
        weights_path: a local state-dict file of the same architecture.
        freeze_backbone, head_lr: see :class:`TransferNet`.
        input_size: resize inputs to this size; ``None``: the weights' size (224) when
            pretrained with the ImageNet stem, else no resizing.
    """

    takes = "images"

    def __init__(
        self,
        in_shape: Shape,
        num_classes: int,
        arch: Arch = "resnet18",
        small_input: bool = False,
        pretrained: bool = False,
        weights_path: str | None = None,
        freeze_backbone: bool = False,
        head_lr: Annotated[float, Gt(0)] | None = None,
        input_size: Size | None = None,
    ) -> None:
        import torchvision.models as tvm

        if arch not in ARCHS:
            raise ConfigError(
                f"model.arch={arch!r} is not known", f"use one of: {', '.join(ARCHS)}"
            )
        body = getattr(tvm, arch)(weights=None)
        if pretrained:
            source = weights_path or f"torchvision's {arch} ImageNet weights"
            load_backbone(body, imagenet_state_dict(arch, weights_path), "fc.", str(source))
        features = body.fc.in_features
        body.fc = nn.Identity()
        channels = int(in_shape[0])
        new: list[nn.Module] = []
        if small_input:
            body.conv1 = nn.Conv2d(channels, 64, 3, stride=1, padding=1, bias=False)
            body.maxpool = nn.Identity()
            new = [body.conv1, body.bn1]
        elif channels != 3:
            body.conv1 = adapt_input_channels(body.conv1, channels)
            if not pretrained:
                new = [body.conv1]
        if input_size is None and pretrained and not small_input:
            input_size = weights_size(arch)
        super().__init__(
            body,
            features,
            num_classes,
            freeze_backbone=freeze_backbone,
            head_lr=head_lr,
            input_size=input_size,
            new_modules=new,
        )
