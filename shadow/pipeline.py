"""Pair source → comparator → catalogue: the path every pair takes to become a quirk."""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from adapters.spill import DegradingSink, SpillFile
from rules.catalogue import Catalogue, IngestStats, open_catalogue
from rules.compare import Comparator, PairResult
from rules.noise import PATTERN_FILE, propose_noise, write_noise_file
from rules.normalise import Normaliser
from rules.rulefile import RuleSet, load_rules
from shadow.config import Config
from shadow.errors import ConfigError
from shadow.model import Pair

__all__ = ["CompareRun", "CatalogueSink", "delivery_for", "compare_pairs", "compare_into", "recompute"]

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


def _store_compared(catalogue: Catalogue, comparator: Comparator, rules: RuleSet, pairs: list[Pair]) -> IngestStats:
    """Compare a batch, store the results, bring verdicts in line with the rule files."""
    stats = catalogue.store([comparator.compare(p) for p in pairs])
    catalogue.apply_rules(rules)
    return stats


class CatalogueSink(DegradingSink):
    """A PairSink that compares pairs and stores them in the catalogue, off the caller's thread.

    `write` only queues (it is called from the proxy's event loop and must not
    block); a thread compares and stores in batches, and brings verdicts in line
    with the rule files after each batch. While the store is down, pairs go to
    the spill file and are stored from it, in order, when it is back.
    """

    def __init__(self, catalogue: Catalogue | str, *, rules_folder: Path | None = None, queue: int = 10_000,
                 batch: int = 500, max_age: float = 0.25, spill: SpillFile | None = None,
                 retry_s: float = 1.0) -> None:
        # Given a URL, the catalogue is opened on the first delivery: a store that is down when the
        # proxy starts only means pairs wait in the spill file.
        self.catalogue: Catalogue | None = catalogue if isinstance(catalogue, Catalogue) else None
        self.stored = IngestStats()
        rules = load_rules(rules_folder)
        comparator = Comparator(Normaliser(rules.steps), keep_pairs=True)

        def deliver(pairs: list[Pair]) -> None:
            if self.catalogue is None:
                self.catalogue = open_catalogue(str(catalogue))
            self.stored.add(_store_compared(self.catalogue, comparator, rules, pairs))

        spill = spill or SpillFile(Path(tempfile.gettempdir()) / f"shadow-spill-{os.getpid()}" / "catalogue.spill")
        super().__init__("catalogue", deliver, spill, buffer=queue, batch=batch, max_age=max_age, retry_s=retry_s)


def delivery_for(sink: str, config: Config) -> tuple[Callable[[list[Pair]], None], Callable[[], None]]:
    """How pairs reach a sink kind of the config ('catalogue' or 'kafka'): a delivery and a close."""
    if sink == "catalogue":
        catalogue = open_catalogue(config.store.url.reveal())
        rules = load_rules(config.store.rules)
        comparator = Comparator(Normaliser(rules.steps), keep_pairs=True)

        def deliver(pairs: list[Pair]) -> None:
            _store_compared(catalogue, comparator, rules, pairs)

        return deliver, catalogue.close
    if sink == "kafka":
        from adapters.kafka import KafkaPairs

        if not config.kafka.bootstrap:
            raise ConfigError("a kafka spill file needs [kafka] bootstrap to drain to", hint="set [kafka] bootstrap")
        pairs = KafkaPairs(config.kafka.bootstrap, config.kafka.pairs)
        return pairs.deliver, pairs.close
    raise ConfigError(f"no sink kind {sink!r}", hint="spill files are named catalogue-… or kafka-…")
