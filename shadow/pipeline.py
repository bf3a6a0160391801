"""Pair source → comparator → catalogue: the path every pair takes to become a quirk."""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

from rules.catalogue import Catalogue, IngestStats
from rules.compare import PairResult, compare_pair
from shadow.model import Pair

__all__ = ["compare_pairs", "compare_into"]


def compare_pairs(pairs: Iterable[Pair]) -> Iterator[PairResult]:
    """Compare each pair, lazily, in order."""
    for pair in pairs:
        yield compare_pair(pair)


def compare_into(pairs: Iterable[Pair], catalogue: Catalogue, *,
                 on_result: Callable[[PairResult], None] | None = None) -> IngestStats:
    """Compare pairs and store the results (idempotent on the dispatch token)."""
    results = compare_pairs(pairs)
    if on_result is not None:
        results = _tap(results, on_result)
    return catalogue.store(results)


def _tap(results: Iterator[PairResult], callback: Callable[[PairResult], None]) -> Iterator[PairResult]:
    for result in results:
        callback(result)
        yield result
