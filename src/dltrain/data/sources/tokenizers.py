"""Tokenizers for text data: a pretrained model's own, or one trained on the training split.

Both map a list of texts to lists of token ids (truncated, not padded: padding happens
per batch). A text data module calls ``fit`` on its training texts once, then
``encode``; ``state``/``load_state`` let it cache the trained vocabulary with the
tokenised data, so a rerun (or ``dl-eval``) gets the identical mapping.
"""

from __future__ import annotations

import hashlib
from typing import Any

from dltrain import hub
from dltrain.data.loading.arguments import Size

PAD, UNK = "[PAD]", "[UNK]"


class PretrainedTokenizer:
    """The tokenizer that ships with a Hugging Face model (``AutoTokenizer``).

    Args:
        name_or_path: Hub id, local folder, or ``package:<module>/<folder>``; the same
            value as the model's, so text is split exactly as in pre-training.
    """

    def __init__(self, name_or_path: str) -> None:
        self.name_or_path = str(name_or_path)
        self._tok: Any = None

    @property
    def tokenizer(self) -> Any:
        if self._tok is None:
            self._tok = _load_auto_tokenizer(self.name_or_path)
        return self._tok

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad) if pad is not None else 0

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    def spec(self) -> str:
        """What decides the ids: the full tokenizer definition, not just its name."""
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        text = backend.to_str() if backend is not None else repr(sorted(self.tokenizer.vocab))
        return "pretrained:" + hashlib.sha256(text.encode()).hexdigest()

    def fit(self, texts: list[str]) -> None:
        """Nothing to learn: the vocabulary is the pretrained one."""

    def state(self) -> str:
        return ""

    def load_state(self, state: str) -> None:
        """Nothing to restore (see ``fit``)."""

    def encode(self, texts: list[str], max_length: int) -> list[list[int]]:
        out = self.tokenizer(texts, truncation=True, max_length=max_length, padding=False)
        return out["input_ids"]


class WordLevelTokenizer:
    """Whole words (BERT-style normalisation and splitting) trained on the training
    split with the ``tokenizers`` library; for models trained from scratch.

    Ids 0 and 1 are ``[PAD]`` and ``[UNK]``; the vocabulary keeps the ``vocab_size - 2``
    most frequent words seen at least ``min_frequency`` times.
    """

    def __init__(
        self,
        vocab_size: Size = 20000,
        min_frequency: Size = 1,
        lowercase: bool = True,
    ) -> None:
        self.vocab_size = int(vocab_size)
        self.min_frequency = int(min_frequency)
        self.lowercase = bool(lowercase)
        self.pad_id = 0
        self._tok: Any = None

    def spec(self) -> str:
        return f"wordlevel:{self.vocab_size}:{self.min_frequency}:{self.lowercase}"

    def fit(self, texts: list[str]) -> None:
        from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

        tok = Tokenizer(models.WordLevel(unk_token=UNK))
        tok.normalizer = normalizers.BertNormalizer(lowercase=self.lowercase)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        trainer = trainers.WordLevelTrainer(
            vocab_size=self.vocab_size,
            min_frequency=self.min_frequency,
            special_tokens=[PAD, UNK],
            show_progress=False,
        )
        tok.train_from_iterator(texts, trainer=trainer)
        self._tok = tok

    def state(self) -> str:
        assert self._tok is not None, "fit() first"
        return self._tok.to_str()

    def load_state(self, state: str) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_str(state)

    def encode(self, texts: list[str], max_length: int) -> list[list[int]]:
        assert self._tok is not None, "fit() first"
        self._tok.enable_truncation(max_length)
        return [e.ids for e in self._tok.encode_batch(texts)]


def _load_auto_tokenizer(name_or_path: str) -> Any:
    from transformers import AutoTokenizer

    return hub.from_pretrained(
        "tokenizer",
        AutoTokenizer.from_pretrained,
        name_or_path,
        "the folder needs tokenizer.json or the vocabulary files of the model",
    )
