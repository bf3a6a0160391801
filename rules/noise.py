"""Noise: differences that come from non-determinism, not from behaviour.

Two detectors, both of which only ever *propose*: they write a reviewable rule
file of `[[noise]]` paths (kept across runs, comments and edits preserved),
and the catalogue marks the matching quirks `noise` from that file.

- pattern: a quirk whose values look random on both sides — UUIDs, sequence
  ids, wall-clock stamps written at full precision that differ by a varying
  amount — is proposed as noise.
- baseline (A/A, as Diffy does): the same commands sent to legacy twice (or to
  two legacy instances); any path that differs there cannot be a behaviour of
  the new engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

import orjson
import sqlalchemy as sa
import tomlkit

from rules.catalogue import Catalogue
from rules.rulefile import parse_rule_file
from rules.schema import differences, fingerprints, quirks

__all__ = ["NoiseProposal", "propose_noise", "write_noise_file", "looks_random", "PATTERN_FILE", "BASELINE_FILE"]

PATTERN_FILE = "noise-proposed.toml"
BASELINE_FILE = "noise-baseline.toml"
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.(\d+))?")


@dataclass(frozen=True)
class NoiseProposal:
    """Paths proposed as noise, why, and the quirk they came from (if any)."""

    paths: tuple[str, ...]
    reason: str
    quirk: str | None = None


def _instant(value: Any) -> tuple[datetime, str] | None:
    if not isinstance(value, str):
        return None
    match = _STAMP.match(value)
    if match is None:
        return None
    text = value.replace("Z", "+00:00").replace(" ", "T", 1)
    try:
        return datetime.fromisoformat(text), (match.group(2) or "")
    except ValueError:
        return None


def looks_random(samples: list[tuple[Any, Any]]) -> str | None:
    """Why a quirk's (legacy, new) values look like noise, or None. Needs at least 5 samples."""
    if len(samples) < 5:
        return None
    uuids = sum(1 for a, b in samples if any(isinstance(v, str) and _UUID.match(v) for v in (a, b)))
    if uuids >= 0.9 * len(samples):
        return f"{uuids} of {len(samples)} sampled values are UUIDs on one side or both"
    ints = [(a, b) for a, b in samples if type(a) is int and type(b) is int]
    if len(ints) >= 0.9 * len(samples) and len({a for a, _ in ints}) >= 0.9 * len(ints):
        return f"{len(ints)} of {len(samples)} sampled values are distinct integers (sequence ids)"
    stamps = [(_instant(a), _instant(b)) for a, b in samples]
    stamps = [(a, b) for a, b in stamps if a is not None and b is not None]
    if len(stamps) >= 0.9 * len(samples):
        deltas = set()
        digits_a, digits_b = set(), set()
        for (ta, fa), (tb, fb) in stamps:
            if (ta.tzinfo is None) != (tb.tzinfo is None):
                return None  # local time against UTC is a behaviour, not noise
            deltas.add(abs((ta - tb).total_seconds()))
            digits_a.add(fa[2:3] if len(fa) >= 3 else "")
            digits_b.add(fb[2:3] if len(fb) >= 3 else "")
        # Full precision on both sides (a rounding side shows few last digits, e.g. 0/3/7 for
        # SQL Server DATETIME) and a difference that varies: two clocks, not one rule.
        if len(deltas) >= 3 and max(deltas) <= 60 and len(digits_a) >= 5 and len(digits_b) >= 5:
            return (f"{len(stamps)} of {len(samples)} sampled values are wall-clock stamps at full precision "
                    f"differing by {len(deltas)} different amounts up to {max(deltas):.3f}s")
    return None


def propose_noise(catalogue: Catalogue, *, sample: int = 200) -> list[NoiseProposal]:
    """Open quirks whose values look random on both sides (see looks_random)."""
    proposals = []
    with catalogue.engine.connect() as conn:
        open_quirks = conn.execute(
            sa.select(quirks.c.id).where(quirks.c.verdict == "open", quirks.c.differences > 0)).scalars().all()
        for quirk_id in open_quirks:
            rows = conn.execute(sa.select(differences.c.legacy_value, differences.c.new_value)
                                .where(differences.c.quirk == quirk_id).limit(sample)).all()
            reason = looks_random([(orjson.loads(a), orjson.loads(b)) for a, b in rows])
            if reason is None:
                continue
            paths = conn.execute(sa.select(fingerprints.c.pattern).where(fingerprints.c.quirk == quirk_id)
                                 .distinct().order_by(fingerprints.c.pattern)).scalars().all()
            proposals.append(NoiseProposal(tuple(paths), reason, quirk_id))
    return proposals


_HEADER = {
    PATTERN_FILE: "Proposed by `shadow compare`: paths whose values look random on both sides\n"
                  "(UUIDs, sequence ids, wall-clock stamps). Review them like code: delete an entry\n"
                  "that is a real behaviour, and the quirk goes back to `open` on the next compare.",
    BASELINE_FILE: "Written by `shadow baseline`: paths that differ between two runs of legacy itself\n"
                   "(A/A), so they cannot be behaviour. Review them like code.",
}


def write_noise_file(folder: Path, name: str, proposals: Iterable[NoiseProposal], *, source: str) -> tuple[Path, int]:
    """Add proposals to a noise rule file (kept edits and comments), returns (file, paths added)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if path.exists():
        text = path.read_text(encoding="utf-8")
        parse_rule_file(text, str(path))  # refuse to extend a file that does not validate
        document = tomlkit.parse(text)
    else:
        document = tomlkit.document()
        for line in _HEADER.get(name, "Noise paths.").splitlines():
            document.add(tomlkit.comment(line))
    entries = document.get("noise")
    if entries is None:
        entries = tomlkit.aot()
        document.append("noise", entries)
    known = {str(entry.get("path")) for entry in entries}
    added = 0
    for proposal in proposals:
        for glob in proposal.paths:
            if glob in known:
                continue
            entry = tomlkit.table()
            entry["path"] = glob
            entry["reason"] = proposal.reason
            entry["source"] = source
            if proposal.quirk:
                entry["quirk"] = proposal.quirk
            entries.append(entry)
            known.add(glob)
            added += 1
    if added:
        text = tomlkit.dumps(document)
        parse_rule_file(text, str(path))
        path.write_text(text, encoding="utf-8")
    return path, added
