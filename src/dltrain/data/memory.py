"""The old import path of the in-memory data module, kept for projects that ``dl-init``
made before ``dltrain.data`` was split: their ``data.py`` imports from here. New code
imports from ``dltrain.data.loading.memory`` and ``dltrain.data.loading.split``."""

from dltrain.data.loading.memory import InMemoryDataModule
from dltrain.data.loading.split import Split

__all__ = ["InMemoryDataModule", "Split"]
