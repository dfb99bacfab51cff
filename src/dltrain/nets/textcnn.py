"""Kim (2014)-style CNN for sentence classification, trained from scratch.

Learned word embeddings; parallel 1-D convolutions of several widths; max over time
(ignoring padding); dropout; a linear layer to the classes. The baseline for users
without a pretrained model (``CNN-rand`` in the paper).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dltrain.nets.layers import Dropout, NonNegative, Shape, Size


class TextCNN(nn.Module):
    """Args:
    vocab_size: rows of the embedding table (from the data's tokenizer).
    num_classes: number of classes (from the data).
    embed_dim: embedding width.
    kernel_sizes: convolution widths in tokens, one bank of ``channels`` filters each.
    channels: filters per width.
    dropout: before the output layer.
    padding_idx: the tokenizer's padding id (its embedding stays zero).
    """

    takes = "text"  # see dltrain.config.model_data

    def __init__(
        self,
        vocab_size: Size,
        num_classes: int,
        embed_dim: Size = 128,
        kernel_sizes: Shape = (3, 4, 5),
        channels: Size = 100,
        dropout: Dropout = 0.5,
        padding_idx: NonNegative = 0,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(int(vocab_size), embed_dim, padding_idx=padding_idx)
        # Kim's U[-0.25, 0.25] rather than torch's N(0, 1): at N(0, 1) scale the words
        # move too slowly under Adam's step sizes and training stalls for epochs.
        nn.init.uniform_(self.embed.weight, -0.25, 0.25)
        with torch.no_grad():
            self.embed.weight[padding_idx].zero_()
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, channels, int(k)) for k in kernel_sizes)
        self.kernel_sizes = [int(k) for k in kernel_sizes]
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(channels * len(self.kernel_sizes), num_classes)

    def forward(self, x: dict[str, Tensor]) -> Tensor:
        ids, mask = x["input_ids"], x["attention_mask"]
        short = max(self.kernel_sizes) - ids.shape[1]
        if short > 0:  # texts shorter than the widest filter: pad (masked out below)
            ids, mask = F.pad(ids, (0, short)), F.pad(mask, (0, short))
        h = self.embed(ids).transpose(1, 2)  # (B, E, L)
        lengths = mask.sum(1, keepdim=True)
        pooled = []
        for k, conv in zip(self.kernel_sizes, self.convs, strict=True):
            c = F.relu(conv(h))  # (B, C, L - k + 1)
            # Windows that start past the text's end see only padding: leave them out of
            # the max (every text keeps at least its first window).
            valid = torch.arange(c.shape[2], device=c.device) < (lengths - k + 1).clamp_min(1)
            pooled.append(c.masked_fill(~valid[:, None, :], float("-inf")).amax(2))
        return self.out(self.dropout(torch.cat(pooled, 1)))
