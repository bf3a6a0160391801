"""The comparator: a pair in, its field-level differences (with fingerprints) out.

Hot path first (STYLE.md, 10): both outcomes are reduced to one canonical
document each and compared as canonical bytes; only on mismatch does the slow
path run (list alignment, then deepdiff, then classification).
"""

from __future__ import annotations

import hashlib
import re
import zlib
from datetime import datetime, timezone
from typing import Any

import msgspec
import orjson
from deepdiff import DeepDiff

from rules.canonical import canonical_bytes
from rules.normalise import Normaliser
from rules.paths import field_of
from rules.transitions import classify, value_type
from shadow.model import Outcome, Pair, to_json

__all__ = ["Comparator", "Difference", "PairResult", "compare_pair", "outcome_document", "canonical_bytes",
           "fingerprint_id", "quirk_field", "quirk_id", "wildcard"]

_INDEX = re.compile(r"\[\d+\]")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


class Difference(msgspec.Struct, kw_only=True):
    """One field-level difference inside a pair, after normalisation."""

    path: str          # concrete: state.stops[2].eta
    pattern: str       # list indices wild-carded: state.stops[*].eta
    change: str        # changed | type | added | removed | order
    transition: str    # how the values differ (rules.transitions)
    legacy: Any = None
    new: Any = None
    fingerprint: str = ""
    quirk: str = ""


class PairResult(msgspec.Struct, kw_only=True):
    """The comparison of one pair: the row the catalogue stores per dispatch token."""

    token: str
    command: str
    zone: str | None
    entity: str | None
    received_at: datetime
    matched: bool
    legacy_status: str
    new_status: str
    legacy_latency_ms: float
    new_latency_ms: float
    primary: str
    differences: list[Difference] = []
    compared_at: datetime = msgspec.field(default_factory=lambda: datetime.now(timezone.utc))
    stored_pair: bytes | None = None  # the pair as the catalogue keeps it: redacted, compressed
    keys: dict[str, str] = {}         # every natural key of the command, for the entity audit


def outcome_document(outcome: Outcome) -> dict[str, Any]:
    """What is compared of an outcome: status, HTTP status, response and state."""
    return {
        "status": outcome.status.value,
        "http_status": outcome.http_status,
        "response": outcome.response,
        "state": outcome.state,
    }


def wildcard(path: str) -> str:
    """The path with every list index replaced by [*]."""
    return _INDEX.sub("[*]", path)


def fingerprint_id(command: str, pattern: str, change: str, transition: str) -> str:
    """A stable 12-hex-digit id for (command kind, wildcarded path, change, transition)."""
    text = f"{command}\x1f{pattern}\x1f{change}\x1f{transition}"
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def quirk_id(field: str, change: str, transition: str) -> str:
    """A stable id for a quirk: one field behaving one way, whichever command or document showed it.

    Legacy stores a zone upper-case once; every command that reads the load back
    shows it, in the response and in the state. Grouping by field, change and
    transition class makes that one decision for a product owner, not ten.
    """
    text = f"quirk\x1f{field}\x1f{change}\x1f{transition}"
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


RECONCILE = "reconcile:"


def quirk_field(command: str, pattern: str) -> str:
    """The field a quirk groups by: the path's field, qualified by the table for `reconcile:<table>` commands.

    Traffic differences on `status` are one quirk whichever command showed them; a
    table reconciliation's differences on `loads.status` are another, of that table.
    """
    field = field_of(pattern)
    return f"{command[len(RECONCILE):]}.{field}" if command.startswith(RECONCILE) else field


class Comparator:
    """Normalise both outcomes with the compiled rules, then compare; fast when they agree."""

    def __init__(self, normaliser: Normaliser | None = None, *, keep_pairs: bool = False) -> None:
        self.normaliser = normaliser or Normaliser()
        self.keep_pairs = keep_pairs
        self._quirk_of: dict[tuple[str, str, str], str] = {}
        self._in_order = [0, 0]  # unsorted comparisons tried, and how many settled it

    def _equal(self, a: dict[str, Any], b: dict[str, Any]) -> bool:
        """Canonical equality; when both systems write fields in one order, without sorting."""
        tried, settled = self._in_order
        # Sorting keys is a third of the cost of a comparison. When the two systems write fields in
        # the same order, unsorted bytes settle it; when they do not, stop trying after 64 misses.
        if tried < 64 or settled * 2 > tried:
            self._in_order[0] += 1
            try:
                if orjson.dumps(a) == orjson.dumps(b):
                    self._in_order[1] += 1
                    return True
            except TypeError:
                pass
        return canonical_bytes(a) == canonical_bytes(b)

    def compare(self, pair: Pair) -> PairResult:
        """The pair's result; the pair's documents are normalised in place."""
        command = pair.command
        legacy_doc, new_doc = outcome_document(pair.legacy), outcome_document(pair.new)
        stored = None
        if self.keep_pairs:
            if self.normaliser.redact(command.kind, legacy_doc, new_doc):
                _write_back(pair, legacy_doc, new_doc)
            stored = zlib.compress(to_json(pair), 1)
        normaliser = self.normaliser
        normaliser.apply(command.kind, legacy_doc, new_doc, complete=False)
        differences: list[Difference] = []
        if not self._equal(legacy_doc, new_doc):
            differences = diff_documents(legacy_doc, new_doc)
            # A `**` rule may reach a path no earlier pair showed: look only when a difference could be one.
            if normaliser.might_reach(command.kind, differences) and \
                    normaliser.complete(command.kind, legacy_doc, new_doc):
                differences = [] if self._equal(legacy_doc, new_doc) else diff_documents(legacy_doc, new_doc)
            for d in differences:
                d.fingerprint = fingerprint_id(command.kind, d.pattern, d.change, d.transition)
                key = (command.kind if command.kind.startswith(RECONCILE) else "", d.pattern, d.change, d.transition)
                quirk = self._quirk_of.get(key)
                if quirk is None:
                    quirk = self._quirk_of[key] = quirk_id(quirk_field(command.kind, d.pattern), d.change, d.transition)
                d.quirk = quirk
        return PairResult(
            token=pair.token,
            command=command.kind,
            zone=command.zone,
            entity=next(iter(command.keys.values()), None) if command.keys else None,
            received_at=command.received_at,
            matched=not differences,
            legacy_status=pair.legacy.status.value,
            new_status=pair.new.status.value,
            legacy_latency_ms=pair.legacy.latency_ms,
            new_latency_ms=pair.new.latency_ms,
            primary=pair.primary.value,
            differences=differences,
            stored_pair=stored,
            keys=command.keys,
        )


def _write_back(pair: Pair, legacy_doc: dict[str, Any], new_doc: dict[str, Any]) -> None:
    """Redacted documents replace the outcome's response and state before the pair is kept."""
    for outcome, doc in ((pair.legacy, legacy_doc), (pair.new, new_doc)):
        outcome.response = doc.get("response")
        outcome.state = doc.get("state")


_DEFAULT = Comparator()


def compare_pair(pair: Pair) -> PairResult:
    """Compare a pair with no rules (see Comparator for rules and kept pairs)."""
    return _DEFAULT.compare(pair)


def _join(path: str, part: Any) -> str:
    if isinstance(part, int):
        return f"{path}[{part}]"
    key = str(part)
    if not _IDENT.match(key):
        key = f"[{orjson.dumps(key).decode()}]"
        return f"{path}{key}"
    return f"{path}.{key}" if path else key


def _item_key(items_a: list[Any], items_b: list[Any]) -> str | None:
    """A field that identifies list items on both sides (unique scalar, same set), if any."""
    if not items_a or not all(isinstance(i, dict) for i in items_a + items_b):
        return None
    candidates = set(items_a[0])
    for item in items_a + items_b:
        candidates &= set(item)
    for name in sorted(candidates, key=lambda n: (n not in ("id", "seq", "sequence", "key"), n)):
        values_a = [item[name] for item in items_a]
        values_b = [item[name] for item in items_b]
        if any(isinstance(v, (dict, list)) for v in values_a):
            continue
        if len(set(map(repr, values_a))) == len(values_a) and sorted(map(repr, values_a)) == sorted(map(repr, values_b)):
            return name
    return None


_REPORTS = {
    "values_changed": "changed",
    "type_changes": "type",
    "dictionary_item_added": "added",
    "dictionary_item_removed": "removed",
    "iterable_item_added": "added",
    "iterable_item_removed": "removed",
}


def diff_documents(legacy: Any, new: Any) -> list[Difference]:
    """Every difference between two documents, classified (the slow path).

    Equal subtrees are skipped by their canonical bytes; dicts and lists of one
    length are walked here, and deepdiff runs only where lists change length,
    so a mismatch costs in proportion to what differs, not to the document.
    """
    out: list[Difference] = []
    _narrow(legacy, new, "", out)
    out.sort(key=lambda d: d.path)
    return out


def _record(out: list[Difference], path: str, change: str, legacy: Any, new: Any, *, list_item: bool = False) -> None:
    if change in ("type", "changed") and _same_number(legacy, new):
        return  # 12 and 12.0 are one JSON number
    kind = "changed" if change == "type" and value_type(legacy) == value_type(new) else change
    transition = classify(legacy, new, kind, list_item=list_item)
    out.append(Difference(path=path, pattern=wildcard(path), change=kind, transition=transition,
                          legacy=legacy, new=new))


def _narrow(a: Any, b: Any, path: str, out: list[Difference]) -> None:
    ta, tb = type(a), type(b)
    if ta is dict and tb is dict:
        for key in a:
            child = _join(path, key)
            if key not in b:
                _record(out, child, "removed", a[key], None)
            elif canonical_bytes(a[key]) != canonical_bytes(b[key]):
                _narrow(a[key], b[key], child, out)
        for key in b:
            if key not in a:
                _record(out, _join(path, key), "added", None, b[key])
        return
    if ta is list and tb is list:
        if len(a) != len(b):
            _deepdiff(a, b, path, out)
            return
        canon_a = [canonical_bytes(x) for x in a]
        canon_b = [canonical_bytes(x) for x in b]
        if sorted(canon_a) == sorted(canon_b):
            # The same items in another order: one difference of the list, not one per index.
            out.append(Difference(path=path, pattern=wildcard(path), change="order", transition="list-order",
                                  legacy=a, new=b))
            return
        key = _item_key(a, b)
        if key is not None:
            order_a = [repr(item[key]) for item in a]
            order_b = [repr(item[key]) for item in b]
            if order_a != order_b:
                # Items known by a key (a stop's seq) in another order, some of them also changed:
                # the order is one difference, and the items are compared by key, not by index.
                out.append(Difference(path=path, pattern=wildcard(path), change="order", transition="list-order",
                                      legacy=[item[key] for item in a], new=[item[key] for item in b]))
                by_key = {repr(item[key]): item for item in b}
                b = [by_key[k] for k in order_a]
                canon_b = [canonical_bytes(x) for x in b]
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            if canon_a[index] != canon_b[index]:
                _narrow(x, y, _join(path, index), out)
        return
    _record(out, path, "changed" if value_type(a) == value_type(b) else "type", a, b)


def _deepdiff(legacy: Any, new: Any, prefix: str, out: list[Difference]) -> None:
    tree = DeepDiff(legacy, new, view="tree", verbose_level=2, threshold_to_diff_deeper=0)
    for report, change in _REPORTS.items():
        for level in tree.get(report, ()):
            parts = level.path(output_format="list")
            if report.startswith("iterable"):
                parts = parts[:-1]  # an item too many or too few is a difference of the list itself
            path = prefix
            for part in parts:
                path = _join(path, part)
            t1 = None if _missing(level.t1) else level.t1
            t2 = None if _missing(level.t2) else level.t2
            _record(out, path, change, t1, t2, list_item=report.startswith("iterable"))


def _same_number(a: Any, b: Any) -> bool:
    return value_type(a) == value_type(b) == "number" and a == b


def _missing(value: Any) -> bool:
    return type(value).__name__ == "NotPresent"
