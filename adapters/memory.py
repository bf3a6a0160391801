"""In-memory pair sink and source, for tests and notebooks."""

from __future__ import annotations

from typing import Iterator

from shadow.model import Pair


class MemoryPairs:
    """A list of pairs that is both a PairSink and a PairSource."""

    def __init__(self, pairs: list[Pair] | None = None) -> None:
        self.pairs: list[Pair] = list(pairs or [])

    def write(self, pair: Pair) -> None:
        """Keep the pair."""
        self.pairs.append(pair)

    def close(self) -> None:
        """Nothing to flush."""

    def __iter__(self) -> Iterator[Pair]:
        return iter(list(self.pairs))

    def __len__(self) -> int:
        return len(self.pairs)
