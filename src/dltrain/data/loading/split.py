"""One split of a dataset: inputs and labels in memory, or an index into a memory-mapped
record cache (no copy of the inputs)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from dltrain.data.storage import record_cache


@dataclass
class Split:
    """Inputs and integer labels of one split.

    ``index``: ``None`` when ``x`` holds exactly this split's rows; else ``x`` is a
    whole record array (a memory-mapped cache, ``source`` its folder) and ``index``
    the rows of it this split holds, ``y`` their labels.
    """

    x: Tensor
    y: Tensor
    index: Tensor | None = None
    source: Path | None = None

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, pos: Tensor) -> Split:
        """The samples at positions ``pos``: copies for in-memory inputs (as compact as
        before), a new index array for a record cache (no copy of the inputs)."""
        if self.index is None:
            return Split(self.x[pos], self.y[pos])
        return Split(self.x, self.y[pos], self.index[pos], self.source)

    def rows(self) -> Tensor:
        """The split's inputs as one tensor (a copy for a record cache: small data,
        tools and tests)."""
        return self.x if self.index is None else self.x.index_select(0, self.index)

    def row(self, i: int) -> Tensor:
        """The input of sample ``i``."""
        return self.x[i] if self.index is None else self.x[int(self.index[i])]

    def chunks(self) -> Iterator[Tensor]:
        """The split's inputs in chunks; a record cache is streamed from its file
        (a pass over it then leaves no pages in this process's memory)."""
        if self.index is None:
            yield self.x
        elif self.source is not None:
            yield from record_cache.iter_rows(self.source, tuple(self.x.shape[1:]), self.index)
        else:
            yield from (self.x.index_select(0, part) for part in self.index.split(8192))
