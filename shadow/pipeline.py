"""Pair source → comparator → catalogue: the path every pair takes to become a quirk."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from rules.catalogue import Catalogue, IngestStats
from rules.compare import Comparator, PairResult
from rules.noise import PATTERN_FILE, propose_noise, write_noise_file
from rules.normalise import Normaliser
from rules.rulefile import RuleSet, load_rules
from shadow.model import Pair

__all__ = ["CompareRun", "CatalogueSink", "compare_pairs", "compare_into", "recompute"]

log = logging.getLogger("shadow.pipeline")


@dataclass
class CompareRun:
    """What a compare did: pairs stored, noise proposed, verdicts in force."""

    stored: IngestStats = field(default_factory=IngestStats)
    noise_file: Path | None = None
    noise_paths_added: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)


def compare_pairs(pairs: Iterable[Pair], comparator: Comparator | None = None) -> Iterator[PairResult]:
    """Compare each pair, lazily, in order."""
    comparator = comparator or Comparator()
    for pair in pairs:
        yield comparator.compare(pair)


def _tap(results: Iterator[PairResult], callback: Callable[[PairResult], None]) -> Iterator[PairResult]:
    for result in results:
        callback(result)
        yield result


def compare_into(pairs: Iterable[Pair], catalogue: Catalogue, *, rules_folder: Path | None = None,
                 detect_noise: bool = True,
                 on_result: Callable[[PairResult], None] | None = None) -> CompareRun:
    """Compare pairs with the folder's rules, store them (idempotent on the dispatch token),
    propose noise, and bring every quirk's verdict in line with the rule files."""
    rules = load_rules(rules_folder)
    comparator = Comparator(Normaliser(rules.steps), keep_pairs=True)
    results = compare_pairs(pairs, comparator)
    if on_result is not None:
        results = _tap(results, on_result)
    run = CompareRun(stored=catalogue.store(results))
    return _settle(catalogue, rules, rules_folder, run, detect_noise)


def recompute(catalogue: Catalogue, *, rules_folder: Path | None = None, detect_noise: bool = True,
              on_result: Callable[[PairResult], None] | None = None) -> CompareRun:
    """Re-compare every stored pair with the rules as they are now (after a rule change)."""
    return compare_into(catalogue.stored_pairs(), catalogue, rules_folder=rules_folder, detect_noise=detect_noise,
                        on_result=on_result)


def _settle(catalogue: Catalogue, rules: RuleSet, rules_folder: Path | None, run: CompareRun,
            detect_noise: bool) -> CompareRun:
    run.verdicts = catalogue.apply_rules(rules)  # declared noise first: propose only what is still open
    if detect_noise and rules_folder is not None:
        proposals = propose_noise(catalogue)
        if proposals:
            run.noise_file, run.noise_paths_added = write_noise_file(rules_folder, PATTERN_FILE, proposals,
                                                                     source="auto:pattern")
            rules = load_rules(rules_folder)
    run.verdicts = catalogue.apply_rules(rules)
    return run


class CatalogueSink:
    """A PairSink that compares pairs and stores them in the catalogue, off the caller's thread.

    `write` only queues (it is called from the proxy's event loop and must not
    block); a thread compares and stores in batches, and brings verdicts in line
    with the rule files after each batch. A full queue drops the pair and counts it.
    """

    def __init__(self, catalogue: Catalogue, *, rules_folder: Path | None = None, queue: int = 10_000,
                 batch: int = 500, max_age: float = 0.25) -> None:
        import queue as queue_module
        import threading

        self.catalogue = catalogue
        self.dropped = 0
        self.failed = 0
        self.stored = IngestStats()
        self._rules_folder = rules_folder
        self._batch = batch
        self._max_age = max_age  # a batch is stored at most this long after its first pair arrived
        self._queue: queue_module.Queue[Pair | None] = queue_module.Queue(maxsize=queue)
        self._full = queue_module.Full
        self._empty = queue_module.Empty
        self._thread = threading.Thread(target=self._run, name="catalogue-sink", daemon=True)
        self._thread.start()

    def write(self, pair: Pair) -> None:
        """Queue a pair for comparing and storing (never blocks)."""
        try:
            self._queue.put_nowait(pair)
        except self._full:
            self.dropped += 1

    def close(self) -> None:
        """Store what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        rules = load_rules(self._rules_folder)
        comparator = Comparator(Normaliser(rules.steps), keep_pairs=True)
        done = False
        while not done:
            batch: list[Pair] = []
            item = self._queue.get()
            # Stored at `batch` pairs, after a 50 ms lull, or `max_age` after the first pair: a steady
            # trickle (a pair every 40 ms) must not wait for 500 pairs (it did: 20 s at 25 pairs/s).
            deadline = time.monotonic() + self._max_age
            while item is not None:
                batch.append(item)
                left = deadline - time.monotonic()
                if len(batch) >= self._batch or left <= 0:
                    break
                try:
                    item = self._queue.get(timeout=min(0.05, left))
                except self._empty:
                    break
            done = item is None
            if not batch:
                continue
            try:
                self.stored.add(self.catalogue.store([comparator.compare(p) for p in batch]))
                self.catalogue.apply_rules(rules)
            except Exception:  # the store being down must not stop the sink (spilling comes with issue 11)
                log.exception("catalogue sink: %d pair(s) could not be stored", len(batch))
                self.failed += len(batch)
