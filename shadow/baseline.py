"""`shadow baseline`: A/A noise detection, as Diffy does it.

A sample of commands goes to legacy and to a second legacy instance as if
they were legacy and new. Both run the same code on the same input, so every
path that differs between them is non-deterministic — ids, wall-clock stamps —
and is written to a reviewable noise rule file.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from adapters.memory import MemoryPairs
from rules.compare import Comparator
from rules.noise import BASELINE_FILE, NoiseProposal, write_noise_file
from shadow.config import Config
from shadow.errors import ShadowError
from shadow.model import Command
from shadow.replay import replay

__all__ = ["BaselineResult", "run_baseline"]


@dataclass(frozen=True)
class BaselineResult:
    """What the A/A run found."""

    pairs: int
    noisy: dict[str, int]   # wildcarded path → pairs in which it differed
    file: Path | None
    added: int


async def run_baseline(commands: Iterable[Command], config: Config, *, second_url: str, sample: int = 500,
                       rules_folder: Path, concurrency: int | None = None) -> BaselineResult:
    """Replay up to `sample` commands to legacy and a second legacy; write the paths that differ as noise."""
    legacy = config.targets["legacy"]
    if second_url.rstrip("/") == legacy.url:
        raise ShadowError("the A/A baseline needs a second legacy instance, not the same one",
                          hint="start another legacy (fresh state) and pass its URL with --second")
    second = legacy.model_copy(update={"url": second_url.rstrip("/")})
    aa = config.model_copy(update={"targets": {"legacy": legacy, "new": second}})
    chosen = [c for _, c in zip(range(sample), commands, strict=False)]
    pairs = MemoryPairs()
    await replay(chosen, aa, pairs, concurrency=concurrency)
    comparator = Comparator()
    noisy: Counter[str] = Counter()
    for pair in pairs:
        for pattern in {d.pattern for d in comparator.compare(pair).differences}:
            noisy[pattern] += 1
    proposals = [NoiseProposal((pattern,), f"differs between two legacy runs in {count} of {len(pairs)} pairs (A/A)")
                 for pattern, count in sorted(noisy.items())]
    file, added = write_noise_file(rules_folder, BASELINE_FILE, proposals, source="auto:baseline") \
        if proposals else (None, 0)
    return BaselineResult(pairs=len(pairs), noisy=dict(noisy), file=file, added=added)
