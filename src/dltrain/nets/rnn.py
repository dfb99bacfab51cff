"""Recurrent classifiers (GRU, LSTM) for sequences ``(channels, length)``."""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor, nn

from dltrain.errors import ConfigError
from dltrain.nets.layers import Dropout, Shape, Size

Readout = Literal["last", "mean", "flatten"]
READOUTS = get_args(Readout)


class RecurrentClassifier(nn.Module):
    """``nn.GRU``/``nn.LSTM`` over the positions (the channels are the features per
    step), then a linear classifier on the last step's output (``readout="last"``,
    for a bidirectional net the forward last and backward first), the mean over steps
    (``"mean"``) or every step's output side by side (``"flatten"``, fixed length: the
    MNIST-1D paper's GRU)."""

    takes = "sequences"
    cell: type[nn.RNNBase] = nn.GRU

    def __init__(
        self,
        in_shape: Shape,
        num_classes: int,
        hidden: Size = 128,
        layers: Size = 1,
        bidirectional: bool = False,
        dropout: Dropout = 0.0,
        readout: Readout = "last",
    ) -> None:
        super().__init__()
        if readout not in READOUTS:
            raise ConfigError(
                f"model.readout={readout!r} is not known", f"use one of: {', '.join(READOUTS)}"
            )
        self.readout = readout
        self.hidden = int(hidden)
        self.rnn = self.cell(
            input_size=int(in_shape[0]),
            hidden_size=self.hidden,
            num_layers=int(layers),
            batch_first=True,
            bidirectional=bool(bidirectional),
            dropout=float(dropout) if layers > 1 else 0.0,
        )
        directions = 2 if bidirectional else 1
        self.drop = nn.Dropout(dropout)
        steps = int(in_shape[1]) if readout == "flatten" else 1
        self.head = nn.Linear(self.hidden * directions * steps, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(x.transpose(1, 2))  # (N, C, L) -> (N, L, C): one step per position
        if self.readout == "mean":
            feats = out.mean(1)
        elif self.readout == "flatten":
            feats = out.flatten(1)
        elif self.rnn.bidirectional:
            h = self.hidden
            feats = torch.cat([out[:, -1, :h], out[:, 0, h:]], dim=1)
        else:
            feats = out[:, -1]
        return self.head(self.drop(feats))


class GRU(RecurrentClassifier):
    cell = nn.GRU


class LSTM(RecurrentClassifier):
    cell = nn.LSTM
