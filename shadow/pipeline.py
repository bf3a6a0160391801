"""Pair source → comparator → catalogue: the path every pair takes to become a quirk."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from rules.catalogue import Catalogue, IngestStats
from rules.compare import Comparator, PairResult
from rules.noise import PATTERN_FILE, propose_noise, write_noise_file
from rules.normalise import Normaliser
from rules.rulefile import RuleSet, load_rules
from shadow.model import Pair

__all__ = ["CompareRun", "compare_pairs", "compare_into", "recompute"]


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
