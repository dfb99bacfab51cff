"""The base of text datasets: texts in, padded token-id batches out.

A subclass only says how to read its texts (``load``). Here, once: the seeded
train/val/test split when the data has none, training the tokenizer on the training
split (when it learns a vocabulary), tokenising every split, and caching the result
under ``cache_dir`` keyed by the data's content, the split, the tokenizer and
``max_length``, so the next run with the same inputs skips all of it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor

from dltrain.data.loading.arguments import Classes, Fraction, Size
from dltrain.data.loading.text_batches import PaddedTextBatches
from dltrain.errors import ConfigError, DataError

log = logging.getLogger(__name__)

#: A missing test split is cut with this fixed seed, independent of the run's seed, so
#: runs with different seeds are scored on the same sentences.
TEST_SPLIT_SEED = 0
SPLITS = ("train", "val", "test")


@dataclass
class TextSplit:
    """Raw texts and integer labels of one split."""

    texts: list[str]
    labels: list[int]


@dataclass
class EncodedSplit:
    """Token ids right-padded to the longest row, each row's length, and labels."""

    ids: Tensor
    lengths: Tensor
    y: Tensor


class TextDataModule(pl.LightningDataModule):
    """Tokenises a text classification dataset once; serves dynamically padded batches.

    Args:
        tokenizer: a ``dltrain.data.sources.tokenizers`` tokenizer (set by the model config: the
            pretrained model's own, or one trained here).
        num_classes: number of classes (checked against the labels).
        max_length: longer texts are truncated to this many tokens.
        batch_size, eval_batch_size: per process, for training and for val/test.
        val_fraction: fraction of the training split held out for validation.
        test_fraction: fraction of the training split held out for testing when the
            dataset has no test split (cut with a fixed seed).
        bucket: batch texts of similar length together (less padding).
        seed: seed of the validation split and the batch order.
        cache_dir: where tokenised splits are cached (``null``: no cache).
    """

    #: What this data gives a model: checked against the model's ``takes``.
    gives = "text"

    def __init__(
        self,
        tokenizer: Any,
        num_classes: Classes,
        max_length: Size = 128,
        batch_size: Size = 32,
        eval_batch_size: Size = 128,
        val_fraction: Fraction = 0.1,
        test_fraction: Fraction = 0.1,
        bucket: bool = True,
        seed: int | None = 0,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.num_classes = int(num_classes)
        self.max_length = int(max_length)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size)
        self.val_fraction = float(val_fraction)
        self.test_fraction = float(test_fraction)
        self.bucket = bool(bucket)
        self.seed = int(seed) if seed is not None else 0
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.splits: dict[str, EncodedSplit] = {}
        #: Class names by index, when the data names them (set by ``load``); else empty.
        self.classes: list[str] = []

    # ---- what a subclass provides -------------------------------------------------
    def load(self) -> dict[str, TextSplit]:
        """Return the splits the dataset has: ``train`` always; ``test`` (and ``val``) if any."""
        raise NotImplementedError

    def describe(self) -> str:
        """What the data is, for messages (e.g. the files read)."""
        return type(self).__name__

    # ---- Lightning hooks -------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        for name in ("val_fraction", "test_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(
                    f"data.{name}={getattr(self, name)} is outside [0, 1)",
                    "use 0 for none, or e.g. 0.1",
                )
        raw = self._split(self.load())
        for name, split in raw.items():
            self._check(split, name)
        key = self._cache_key(raw)
        cached = self._read_cache(key)
        if cached is None:
            self.tokenizer.fit(raw["train"].texts)
            self.splits = {name: self._encode(split) for name, split in raw.items()}
            self._write_cache(key)
        else:
            self.tokenizer.load_state(cached["tokenizer"])
            self.splits = {name: EncodedSplit(**cached[name]) for name in raw}

    def prediction_state(self) -> dict[str, Any]:
        """What ``dl-predict`` needs besides the weights, stored in checkpoints: the class
        names, ``max_length`` and the tokenizer's trained state (a word-level vocabulary;
        empty for a pretrained tokenizer, which reloads from its ``name_or_path``)."""
        return {
            "kind": "text",
            "classes": list(self.classes),
            "max_length": self.max_length,
            "tokenizer": self.tokenizer.state(),
        }

    @property
    def has_val(self) -> bool:
        return "val" in self.splits

    def train_dataloader(self) -> PaddedTextBatches:
        trainer = self.trainer
        return self._loader(
            "train",
            self.batch_size,
            shuffle=True,
            epoch_fn=(lambda: trainer.current_epoch) if trainer is not None else None,
        )

    def val_dataloader(self) -> PaddedTextBatches | list:
        if not self.has_val:
            return []
        return self._loader("val", self.eval_batch_size, shuffle=False, pad=True)

    def test_dataloader(self) -> PaddedTextBatches:
        return self._loader("test", self.eval_batch_size, shuffle=False, pad=True)

    def predict_dataloader(self) -> PaddedTextBatches:
        return self.test_dataloader()

    # ---- helpers -------------------------------------------------------------------------
    def _loader(self, name: str, batch_size: int, shuffle: bool, **kw: Any) -> PaddedTextBatches:
        assert self.splits, "setup() first"
        split = self.splits[name]
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        return PaddedTextBatches(
            split.ids,
            split.lengths,
            split.y,
            batch_size,
            bucket=self.bucket,
            shuffle=shuffle,
            seed=self.seed,
            rank=rank,
            world_size=world,
            **kw,
        )

    def _split(self, splits: dict[str, TextSplit]) -> dict[str, TextSplit]:
        """Cut ``test`` (fixed seed) and ``val`` (run seed) from ``train`` when missing."""
        out = dict(splits)
        if "test" not in out:
            if self.test_fraction == 0:
                raise ConfigError(
                    f"{self.describe()} has no test split and data.test_fraction is 0",
                    "set data.test_fraction (e.g. 0.1) to hold out part of the training data",
                )
            out["train"], out["test"] = _cut(out["train"], self.test_fraction, TEST_SPLIT_SEED)
        if "val" not in out and self.val_fraction > 0:
            out["train"], val = _cut(out["train"], self.val_fraction, self.seed)
            if val.labels:
                out["val"] = val
        return {name: out[name] for name in SPLITS if name in out}

    def _check(self, split: TextSplit, name: str) -> None:
        if not split.labels:
            raise DataError(
                f"{self.describe()}: the {name} split is empty",
                "check the data files (one example per line or row)",
            )
        lo, hi = min(split.labels), max(split.labels)
        if lo < 0 or hi >= self.num_classes:
            raise DataError(
                f"{self.describe()}: {name} labels range over [{lo}, {hi}], outside "
                f"[0, {self.num_classes - 1}] for data.num_classes={self.num_classes}",
                "set data.num_classes to the real class count, or fix the labels",
            )

    def _encode(self, split: TextSplit) -> EncodedSplit:
        ids, lengths = encode_texts(self.tokenizer, split.texts, self.max_length)
        return EncodedSplit(ids, lengths, torch.tensor(split.labels, dtype=torch.long))

    # ---- cache -----------------------------------------------------------------------------
    def _cache_key(self, raw: dict[str, TextSplit]) -> str:
        h = hashlib.sha256()
        h.update(f"{self.tokenizer.spec()}|{self.max_length}".encode())
        for name, split in raw.items():
            h.update(f"|{name}|{len(split.texts)}|".encode())
            h.update("\x00".join(split.texts).encode("utf-8", "surrogatepass"))
            h.update(torch.tensor(split.labels, dtype=torch.long).numpy().tobytes())
        return h.hexdigest()[:32]

    def _cache_file(self, key: str) -> Path | None:
        return self.cache_dir / f"text-{key}.pt" if self.cache_dir else None

    def _read_cache(self, key: str) -> dict[str, Any] | None:
        path = self._cache_file(key)
        if path is None or not path.is_file():
            return None
        try:
            return torch.load(path, weights_only=True)
        except (OSError, RuntimeError, EOFError) as ex:  # a torn write: rebuild it
            log.warning("ignoring unreadable text cache %s (%s)", path, ex)
            return None

    def _write_cache(self, key: str) -> None:
        path = self._cache_file(key)
        if path is None:
            return
        payload: dict[str, Any] = {"tokenizer": self.tokenizer.state()}
        for name, split in self.splits.items():
            payload[name] = {"ids": split.ids, "lengths": split.lengths, "y": split.y}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            torch.save(payload, tmp)
            tmp.replace(path)  # atomic: concurrent runs never read half a file
        except OSError as ex:
            log.warning("could not cache tokenised text in %s (%s)", path.parent, ex)


def encode_texts(tokenizer: Any, texts: list[str], max_length: int) -> tuple[Tensor, Tensor]:
    """Token ids ``(N, longest)`` right-padded with the tokenizer's ``pad_id``, and each
    row's length: the layout ``PaddedTextBatches`` cuts batches from."""
    rows = tokenizer.encode(texts, max_length)
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    width = max(int(lengths.max()), 1) if rows else 1
    ids = torch.full((len(rows), width), tokenizer.pad_id, dtype=torch.int32)
    for i, row in enumerate(rows):  # once per dataset, at setup; not in the batch loop
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.int32)
    return ids, lengths


def _cut(split: TextSplit, fraction: float, seed: int) -> tuple[TextSplit, TextSplit]:
    """Split off a seeded random ``fraction`` of ``split``: (rest, held out)."""
    n = len(split.labels)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_out = int(round(n * fraction))
    held, rest = perm[:n_out], perm[n_out:]

    def take(idx: list[int]) -> TextSplit:
        return TextSplit([split.texts[i] for i in idx], [split.labels[i] for i in idx])

    return take(rest), take(held)
