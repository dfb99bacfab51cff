"""Vision Transformers: a small one for small images, and torchvision's ViT-B/16."""

from __future__ import annotations

from typing import Annotated

from annotated_types import Gt
from torch import Tensor, nn

from dltrain.errors import ConfigError
from dltrain.nets.encoder import TokenClassifier
from dltrain.nets.layers import Dropout, Shape, Size
from dltrain.nets.transfer import (
    TransferNet,
    adapt_input_channels,
    imagenet_state_dict,
    load_backbone,
)


class ViT(nn.Module):
    """A ViT sized for 8-64 px images: non-overlapping ``patch_size`` patches embedded
    by a strided conv, then the shared :class:`TokenClassifier` (class token, learned
    positions, pre-norm encoder). Any channel count."""

    takes = "images"

    def __init__(
        self,
        in_shape: Shape,
        num_classes: int,
        patch_size: Size = 4,
        width: Size = 192,
        depth: Size = 6,
        heads: Size = 3,
        mlp_ratio: Annotated[float, Gt(0)] = 2.0,
        dropout: Dropout = 0.0,
    ) -> None:
        super().__init__()
        channels, height, width_px = (int(s) for s in in_shape)
        if height % patch_size or width_px % patch_size:
            raise ConfigError(
                f"model.patch_size={patch_size} does not divide the {height}x{width_px} images",
                "choose a patch size that divides both sides (e.g. 4 for 28 or 32 px)",
            )
        self.patches = nn.Conv2d(channels, width, patch_size, stride=patch_size)
        num_tokens = (height // patch_size) * (width_px // patch_size)
        self.encoder = TokenClassifier(
            num_tokens, num_classes, width, depth, heads, mlp_ratio, dropout
        )

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.patches(x).flatten(2).transpose(1, 2)  # (N, patches, width)
        return self.encoder(tokens)


class ViTB16(TransferNet):
    """torchvision's ``vit_b_16`` (86M parameters) with a new linear head; batches are
    resized to ``image_size`` (224 for the ImageNet weights; any multiple of 16 works,
    the pretrained position embeddings are interpolated to it).

    Args:
        pretrained, weights_path, freeze_backbone, head_lr: as for ``ResNet``.
    """

    takes = "images"

    def __init__(
        self,
        in_shape: Shape,
        num_classes: int,
        image_size: Size = 224,
        pretrained: bool = False,
        weights_path: str | None = None,
        freeze_backbone: bool = False,
        head_lr: Annotated[float, Gt(0)] | None = None,
    ) -> None:
        from torchvision.models import vit_b_16
        from torchvision.models.vision_transformer import interpolate_embeddings

        if image_size % 16:
            raise ConfigError(
                f"model.image_size={image_size} is not a multiple of the 16 px patches",
                "use 224 (the ImageNet weights' size) or another multiple of 16",
            )
        body = vit_b_16(weights=None, image_size=image_size)
        if pretrained:
            state = imagenet_state_dict("vit_b_16", weights_path)
            state = interpolate_embeddings(image_size, 16, state)
            source = weights_path or "torchvision's vit_b_16 ImageNet weights"
            load_backbone(body, state, "heads.", str(source))
        features = body.hidden_dim
        body.heads = nn.Identity()
        new: list[nn.Module] = []
        if int(in_shape[0]) != 3:
            body.conv_proj = adapt_input_channels(body.conv_proj, int(in_shape[0]))
        super().__init__(
            body,
            features,
            num_classes,
            freeze_backbone=freeze_backbone,
            head_lr=head_lr,
            input_size=image_size,
            new_modules=new,
        )
