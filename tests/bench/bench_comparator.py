"""Comparator throughput on one core: shadow's compiled rules vs a plain deepdiff loop.

Same data, same run: pairs shaped like the reference pair's, 1 % genuine
mismatches, about ten rules. Prints pairs/s for both and the ratio.
Run: make bench (or python -m tests.bench.bench_comparator [N]).
"""

from __future__ import annotations

import sys
import time

from deepdiff import DeepDiff

from rules.compare import Comparator, outcome_document
from rules.normalise import Normaliser
from shadow.model import Pair, from_json
from tests.bench.data import pairs, rules


def _decode(blobs: list[bytes]) -> list[Pair]:
    return [from_json(b, Pair) for b in blobs]


def main(n: int = 50_000) -> dict[str, float]:
    blobs = pairs(n)
    comparator = Comparator(Normaliser(rules()))
    batch = _decode(blobs)
    warm = 1_000  # the first pairs of each command kind pay for generating the normaliser's code
    started = time.perf_counter()
    mismatched = sum(1 for pair in batch[:warm] if not comparator.compare(pair).matched)
    warmed = time.perf_counter()
    mismatched += sum(1 for pair in batch[warm:] if not comparator.compare(pair).matched)
    ended = time.perf_counter()
    overall_rate = n / (ended - started)
    shadow_rate = (n - warm) / (ended - warmed)

    kept = Comparator(Normaliser(rules()), keep_pairs=True)
    batch = _decode(blobs)
    started = time.perf_counter()
    for pair in batch:
        kept.compare(pair)
    kept_rate = n / (time.perf_counter() - started)

    plain_n = min(n, 5_000)  # deepdiff is slow: a sample is enough for its rate
    batch = _decode(blobs[:plain_n])
    started = time.perf_counter()
    plain_mismatched = sum(1 for p in batch if DeepDiff(outcome_document(p.legacy), outcome_document(p.new)))
    plain_rate = plain_n / (time.perf_counter() - started)

    print(f"comparator, {n:,} pairs, 1 % mismatch, {len(rules())} rules, one core")
    print(f"  shadow Comparator           {shadow_rate:>10,.0f} pairs/s   ({mismatched} mismatched after rules; "
          f"after the first {warm:,} pairs)")
    print(f"  shadow, whole run           {overall_rate:>10,.0f} pairs/s   (code generation included)")
    print(f"  shadow, keeping pairs       {kept_rate:>10,.0f} pairs/s   (redact + compress for the catalogue)")
    print(f"  plain deepdiff loop         {plain_rate:>10,.0f} pairs/s   ({plain_mismatched} of {plain_n} mismatched: "
          "no rules)")
    print(f"  ratio                       {shadow_rate / plain_rate:>10.1f} x   (target >= 50,000 pairs/s and >= 20 x)")
    return {"shadow": shadow_rate, "overall": overall_rate, "kept": kept_rate, "plain": plain_rate}


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)
