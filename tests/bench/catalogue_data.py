"""A synthetic quirk catalogue of N pair results, written straight into a SQLite file (for the report benchmarks).

Storing 10 million pairs through `Catalogue.store` would take hours, so this writes
the rows with sqlite3 `executemany` (one transaction per chunk, journal off, the
secondary indexes dropped and rebuilt) and computes every roll-up with numpy and
pandas group-bys, summed over the chunks. `check_against_store` builds a small
catalogue both ways, from the same chunks, and compares every table row for row:
what is benchmarked is what `Catalogue.store` would have written.

Shape (deterministic for a seed): 5 command kinds, 8 zones (2 % of pairs have
none), `received_at` spread evenly over 60 days, about 0.8 % of pairs with 1-3
field differences and 0.2 % with an error or timeout on the new side (one
`@status` difference), so about 1 % mismatched; lognormal latencies; one
`load_id` natural key per pair (a load is touched by about 3 commands); no kept
pair bodies (the entity audit copes). The differences belong to `quirks` quirks
with a long tail: a few quirks hold most occurrences (Zipf, s = 1.1) and every
quirk shows at least once, the rare ones spread over the whole window. Every
tenth quirk (rank 3, 13, 23, ...) is `noise` and every tenth (rank 7, 17, ...) is
`retire`, as a rule file would set them; the rest are `open`.

`cached_catalogue(pairs, quirks)` keeps the file under /tmp/shadow-bench and
reuses it while the generator version and parameters are the same.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from rules.compare import Difference, PairResult, fingerprint_id, quirk_id
from rules.rollups import json_text, latency_bin

__all__ = ["GENERATOR_VERSION", "Spec", "Chunk", "Facts", "chunks", "pair_results_of", "write_catalogue",
           "cached_catalogue", "check_against_store", "apply_verdicts", "KINDS", "ZONES"]

GENERATOR_VERSION = 3
T0 = datetime(2026, 9, 1)  # naive UTC, as the catalogue stores times
DAYS = 60
KINDS = ["create_load", "assign_load", "update_stop_eta", "reassign_load", "cancel_load"]
KIND_SHARE = [0.30, 0.25, 0.25, 0.10, 0.10]
LEGACY_MEDIAN_MS = [42.0, 55.0, 18.0, 60.0, 25.0]
NEW_MEDIAN_MS = [35.0, 40.0, 15.0, 48.0, 22.0]
ZONES = ["chi", "nyc", "den", "lax", "atl", "dal", "sea", "mia"]
NO_ZONE = 0.02
MISMATCH = 0.008     # pairs with 1-3 field differences
NEW_ERROR = 0.002    # pairs whose new side errored (70 %) or timed out (30 %): one @status difference
TIMEOUT_MS = 5000.0
DIFFS_PER_PAIR = ([1, 2, 3], [0.6, 0.3, 0.1])
ZIPF_S = 1.1
FIELD_WORDS = ["weight_kg", "price", "eta", "driver_name", "zone_code", "notes", "status", "hazmat", "pickup_at",
               "stop_ref", "rate_cents", "carrier", "trailer", "dock", "seal_no", "po_number"]
SHAPES = [("changed", "value"), ("changed", "trailing-whitespace"), ("changed", "case-only"), ("changed", "rounding"),
          ("type", "type-change"), ("changed", "null-vs-empty"), ("removed", "absent"), ("added", "absent"),
          ("changed", "enum-mapping"), ("changed", "timezone-shift"), ("changed", "sub-second-precision")]
VERDICT_BY_RANK = {3: "noise", 7: "retire"}  # rank % 10; the rest stay open
# Indexes dropped for the bulk load and rebuilt after it (the primary keys stay).
_REBUILT = ("pair_results", "pair_keys", "differences")
_US = 1_000_000
_DAY_US = 86_400 * _US
_HOUR_US = 3_600 * _US


@dataclass(frozen=True)
class Spec:
    """What to generate."""

    pairs: int
    quirks: int = 10_000
    seed: int = 1
    chunk: int = 500_000

    def key(self) -> dict[str, Any]:
        """What makes two generated files the same (a new Alembic revision also means a new file)."""
        import rules

        migrations = sorted(p.name for p in (Path(rules.__file__).parent / "migrations" / "versions").glob("[0-9]*.py"))
        return {"version": GENERATOR_VERSION, "pairs": self.pairs, "quirks": self.quirks, "seed": self.seed,
                "migrations": migrations}


@dataclass
class Chunk:
    """One chunk of pairs, as columns (index = the pair's global number)."""

    index: np.ndarray       # global pair number
    offset_us: np.ndarray   # received_at - T0, in microseconds
    compared_us: np.ndarray
    command: np.ndarray     # index into KINDS
    zone: np.ndarray        # index into ZONES; len(ZONES) = none
    new_status: np.ndarray  # 0 ok, 1 error, 2 timeout
    legacy_ms: np.ndarray
    new_ms: np.ndarray
    load: np.ndarray
    difference_count: np.ndarray
    diffs: pd.DataFrame     # one row per difference, in the pair's order: local, quirk, path, pattern, legacy, new


@dataclass
class Facts:
    """The truth about a generated catalogue, to check a report against."""

    pairs: int = 0
    matched: int = 0
    differences: int = 0
    new_errors: int = 0
    legacy_errors: int = 0
    unexplained: int = 0          # pairs with a difference of an open quirk
    quirks: int = 0               # distinct quirks with at least one difference
    by_command: dict[str, int] = field(default_factory=dict)
    latency_p50: dict[str, float] = field(default_factory=dict)
    latency_p99: dict[str, float] = field(default_factory=dict)
    lookups: list[dict[str, Any]] = field(default_factory=list)  # loads to audit: value, pairs, differences
    seconds: float = 0.0          # how long generation took


# -- the quirk pool ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuirkPool:
    """Quirk number k (0 = the new side's @status; 1.. ranked by frequency) → its field and shape."""

    fields: list[str]
    changes: list[str]
    transitions: list[str]
    listed: np.ndarray  # the field sits in a list (stops[*])
    ids: list[str]
    weights: np.ndarray  # Zipf over 1..q-1

    @classmethod
    def of(cls, q: int) -> "QuirkPool":
        if q < 2:
            raise ValueError("a catalogue needs at least 2 quirks (@status and one field)")
        fields, changes, transitions = ["@status"], ["changed"], ["value"]
        for k in range(1, q):
            change, transition = SHAPES[(k * 7) % len(SHAPES)]
            fields.append(f"{FIELD_WORDS[k % len(FIELD_WORDS)]}_{k}")
            changes.append(change)
            transitions.append(transition)
        listed = np.array([k % 5 == 2 for k in range(q)])
        ids = [quirk_id(f, c, t) for f, c, t in zip(fields, changes, transitions, strict=True)]
        ranks = np.arange(1, q, dtype=np.float64)
        weights = ranks ** -ZIPF_S
        return cls(fields, changes, transitions, listed, ids, weights / weights.sum())

    def verdict(self, k: int) -> str:
        return "open" if k == 0 else VERDICT_BY_RANK.get(k % 10, "open")


def _values(transition: str, x: int, status: str) -> tuple[Any, Any]:
    """A legacy and a new value showing a transition class."""
    if transition == "trailing-whitespace":
        return f"v{x}   ", f"v{x}"
    if transition == "case-only":
        return f"CODE-{x}", f"code-{x}"
    if transition == "rounding":
        return round(x + 0.125, 3), round(x + 0.13, 2)
    if transition == "type-change":
        return str(x), x
    if transition == "null-vs-empty":
        return "", None
    if transition == "enum-mapping":
        return "A", "assigned"
    if transition == "timezone-shift":
        return f"2026-11-02T{x % 24:02d}:00:00-05:00", f"2026-11-02T{(x + 5) % 24:02d}:00:00Z"
    if transition == "sub-second-precision":
        return f"2026-11-02T10:00:{x % 60:02d}.123Z", f"2026-11-02T10:00:{x % 60:02d}Z"
    if transition == "absent":
        return (x, None) if status == "removed" else (None, x)
    return x, x + 1


# -- generation -------------------------------------------------------------------------------------


def chunks(spec: Spec, pool: QuirkPool | None = None) -> Iterator[Chunk]:
    """The pairs, chunk by chunk (deterministic for the spec)."""
    pool = pool or QuirkPool.of(spec.quirks)
    n, q = spec.pairs, spec.quirks
    span = DAYS * _DAY_US
    step = max(1, span // n)
    # Every quirk shows at least once: every `stride`-th field difference is the next quirk not yet covered
    # (in a shuffled order, so rare quirks first show all over the window), the others are drawn by Zipf.
    expected = n * MISMATCH * float(np.dot(*DIFFS_PER_PAIR))
    stride = max(1, int(0.9 * expected / (q - 1)))
    cover = np.random.default_rng([spec.seed, 999_999]).permutation(np.arange(1, q))
    seen = 0
    zone_share = [(1 - NO_ZONE) / len(ZONES)] * len(ZONES) + [NO_ZONE]
    for number, start in enumerate(range(0, n, spec.chunk)):
        rng = np.random.default_rng([spec.seed, number])
        index = np.arange(start, min(n, start + spec.chunk), dtype=np.int64)
        m = len(index)
        offset = index * step + rng.integers(0, step, m)  # strictly increasing: pairs arrive in order
        command = rng.choice(len(KINDS), m, p=KIND_SHARE)
        zone = rng.choice(len(ZONES) + 1, m, p=zone_share)
        u = rng.random(m)
        errored = u < NEW_ERROR
        timeout = errored & (rng.random(m) < 0.3)
        mismatched = ~errored & (u < NEW_ERROR + MISMATCH)
        new_status = np.where(timeout, 2, np.where(errored, 1, 0))
        legacy_ms = rng.lognormal(np.log(np.array(LEGACY_MEDIAN_MS)[command]), 0.55)
        new_ms = rng.lognormal(np.log(np.array(NEW_MEDIAN_MS)[command]), 0.5)
        new_ms[timeout] = TIMEOUT_MS
        compared = offset + (np.maximum(legacy_ms, new_ms) * 1000).astype(np.int64) + 3_000
        load = np.maximum(0, index // 3 + rng.integers(-150, 151, m))

        # Field differences: 1-3 per mismatched pair, quirks by Zipf plus the coverage sequence.
        owners = np.flatnonzero(mismatched)
        counts = rng.choice(DIFFS_PER_PAIR[0], len(owners), p=DIFFS_PER_PAIR[1])
        local = np.repeat(owners, counts)
        r = len(local)
        quirk = rng.choice(q - 1, r, p=pool.weights) + 1
        j = np.arange(seen, seen + r)
        covering = (j % stride == 0) & (j // stride < q - 1)
        quirk[covering] = cover[j[covering] // stride]
        seen += r
        side = rng.integers(0, 2, r)
        slot = rng.integers(0, 3, r)
        x = rng.integers(0, 1000, r)
        diffs = pd.DataFrame({"local": local, "order": np.arange(r), "quirk": quirk, "side": side, "slot": slot, "x": x})
        failed = np.flatnonzero(errored)
        status = pd.DataFrame({"local": failed, "order": np.zeros(len(failed), dtype=np.int64),
                               "quirk": np.zeros(len(failed), dtype=np.int64), "side": 0, "slot": 0, "x": 0})
        diffs = pd.concat([diffs, status], ignore_index=True).sort_values(["local", "order"], kind="stable")
        diffs = _describe(diffs, pool, new_status)
        diffs = diffs.drop_duplicates(["local", "path"]).reset_index(drop=True)  # a path differs once per pair
        difference_count = np.bincount(diffs["local"].to_numpy(), minlength=m)
        yield Chunk(index, offset, compared, command, zone, new_status, legacy_ms, new_ms, load, difference_count,
                    diffs)


def _describe(diffs: pd.DataFrame, pool: QuirkPool, new_status: np.ndarray) -> pd.DataFrame:
    paths, patterns, legacy, new = [], [], [], []
    for local, k, side, slot, x in zip(*(diffs[c].tolist() for c in ("local", "quirk", "side", "slot", "x")),
                                       strict=True):
        if k == 0:
            paths.append("status")
            patterns.append("status")
            legacy.append("ok")
            new.append("error" if new_status[local] == 1 else "timeout")
            continue
        where = "response" if side else "state"
        name = pool.fields[k]
        if pool.listed[k]:
            paths.append(f"{where}.stops[{slot}].{name}")
            patterns.append(f"{where}.stops[*].{name}")
        else:
            paths.append(f"{where}.{name}")
            patterns.append(f"{where}.{name}")
        a, b = _values(pool.transitions[k], x, pool.changes[k])
        legacy.append(a)
        new.append(b)
    return diffs.assign(path=paths, pattern=patterns, legacy=legacy, new=new)


def _token(i: int) -> str:
    """A UUID-shaped dispatch token (36 characters, as real ones), increasing with the pair number."""
    return f"00000000-0000-4000-8000-{i:012x}"


class _Stamps:
    """Microseconds after T0 as the catalogue's DateTime text (`2026-09-01 10:00:00.000000`), fast."""

    def __init__(self, days: int) -> None:
        self.days = [(T0 + timedelta(days=d)).strftime("%Y-%m-%d ") for d in range(days)]
        self.seconds = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}." for s in range(86_400)]

    def __call__(self, offset: np.ndarray) -> list[str]:
        day, rest = np.divmod(offset, _DAY_US)
        second, micro = np.divmod(rest, _US)
        days, seconds = self.days, self.seconds
        return [f"{days[d]}{seconds[s]}{u:06d}" for d, s, u in zip(day.tolist(), second.tolist(), micro.tolist(),
                                                                     strict=True)]


def _bins(ms: np.ndarray) -> np.ndarray:
    """rules.rollups.latency_bin, vectorised; values next to a bin edge are recomputed by it exactly."""
    scaled = np.log2(np.maximum(ms, 1e-300) / 0.001) * 8
    out = np.where(ms > 0.001, np.floor(scaled), 0).astype(np.int64)
    near = np.flatnonzero(np.abs(scaled - np.round(scaled)) < 1e-6)
    for i in near.tolist():
        out[i] = latency_bin(float(ms[i]))
    return out


def pair_results_of(chunk: Chunk, pool: QuirkPool) -> list[PairResult]:
    """The chunk as PairResults, for `Catalogue.store` (slow: for checking the generator on a small catalogue)."""
    found: dict[int, list[Difference]] = {}
    for local, k, path, pattern, legacy, new in zip(*(chunk.diffs[c].tolist() for c in (
            "local", "quirk", "path", "pattern", "legacy", "new")), strict=True):
        command = KINDS[chunk.command[local]]
        found.setdefault(local, []).append(Difference(
            path=path, pattern=pattern, change=pool.changes[k], transition=pool.transitions[k], legacy=legacy, new=new,
            fingerprint=fingerprint_id(command, pattern, pool.changes[k], pool.transitions[k]), quirk=pool.ids[k]))
    out = []
    utc = timezone.utc
    for local, i in enumerate(chunk.index.tolist()):
        zone = int(chunk.zone[local])
        load = f"L-{chunk.load[local]}"
        out.append(PairResult(
            token=_token(i), command=KINDS[chunk.command[local]], zone=ZONES[zone] if zone < len(ZONES) else None,
            entity=load, received_at=(T0 + timedelta(microseconds=int(chunk.offset_us[local]))).replace(tzinfo=utc),
            compared_at=(T0 + timedelta(microseconds=int(chunk.compared_us[local]))).replace(tzinfo=utc),
            matched=not chunk.difference_count[local], legacy_status="ok",
            new_status=("ok", "error", "timeout")[chunk.new_status[local]],
            legacy_latency_ms=float(chunk.legacy_ms[local]), new_latency_ms=float(chunk.new_ms[local]),
            primary="legacy", differences=found.get(local, []), keys={"load_id": load}))
    return out


def apply_verdicts(conn: sqlite3.Connection, pool: QuirkPool) -> None:
    """Set the bench's verdicts (every tenth quirk noise, every tenth retire), as a rule file would."""
    rows = [(pool.verdict(k), "bench-rules.toml", "bench", quirk) for k, quirk in enumerate(pool.ids)
            if pool.verdict(k) != "open"]
    conn.executemany("UPDATE quirks SET verdict = ?, verdict_source = ?, owner = ? WHERE id = ?", rows)


def write_catalogue(path: Path, spec: Spec, *, progress: bool = False) -> Facts:
    """Generate the catalogue into a new SQLite file at `path`; returns the truth about it."""
    from rules.catalogue import open_catalogue

    started = time.perf_counter()
    path = Path(path)
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)
    open_catalogue(f"sqlite:///{path}").close()  # the schema and Alembic's version, as a real catalogue has them
    pool = QuirkPool.of(spec.quirks)
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=OFF", "synchronous=OFF", "locking_mode=EXCLUSIVE", "cache_size=-1000000",
                   "temp_store=MEMORY", "threads=4"):
        conn.execute(f"PRAGMA {pragma}")
    indexes = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                           f"AND tbl_name IN ({', '.join('?' * len(_REBUILT))})", _REBUILT).fetchall()
    for name, _sql in indexes:
        conn.execute(f"DROP INDEX {name}")

    stamps = _Stamps(DAYS + 2)
    facts = Facts(pairs=spec.pairs)
    hours, latencies, all_diffs = [], [], []
    legacy_all, new_all = [], []
    load_pairs: np.ndarray = np.zeros(0, dtype=np.int64)
    statuses = ("ok", "error", "timeout")
    zones = [*ZONES, None]
    for chunk in chunks(spec, pool):
        if not (chunk.offset_us >= 0).all() or not (chunk.offset_us < DAYS * _DAY_US).all():
            raise AssertionError("generated received_at outside the window")
        tokens = [_token(i) for i in chunk.index.tolist()]
        loads = [f"L-{v}" for v in chunk.load.tolist()]
        commands = [KINDS[c] for c in chunk.command.tolist()]
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO pair_results (token, command, zone, entity, received_at, compared_at, matched, "
            "difference_count, legacy_status, new_status, legacy_latency_ms, new_latency_ms, primary_target) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'ok', ?, ?, ?, 'legacy')",
            zip(tokens, commands, [zones[z] for z in chunk.zone.tolist()], loads, stamps(chunk.offset_us),
                stamps(chunk.compared_us), (chunk.difference_count == 0).astype(int).tolist(),
                chunk.difference_count.tolist(), [statuses[s] for s in chunk.new_status.tolist()],
                chunk.legacy_ms.tolist(), chunk.new_ms.tolist(), strict=True))
        conn.executemany("INSERT INTO pair_keys (token, name, value) VALUES (?, 'load_id', ?)",
                         zip(tokens, loads, strict=True))
        d = chunk.diffs
        local = d["local"].to_numpy()
        d_commands = [commands[i] for i in local.tolist()]
        d_tokens = [tokens[i] for i in local.tolist()]
        fps = [fingerprint_id(c, p, pool.changes[k], pool.transitions[k])
               for c, p, k in zip(d_commands, d["pattern"].tolist(), d["quirk"].tolist(), strict=True)]
        quirk_ids = [pool.ids[k] for k in d["quirk"].tolist()]
        conn.executemany(
            "INSERT INTO differences (token, fingerprint, quirk, path, legacy_value, new_value) VALUES (?, ?, ?, ?, ?, ?)",
            zip(d_tokens, fps, quirk_ids, d["path"].tolist(), map(json_text, d["legacy"].tolist()),
                map(json_text, d["new"].tolist()), strict=True))
        conn.execute("COMMIT")

        hour = chunk.offset_us // _HOUR_US
        frame = pd.DataFrame({"hour": hour, "command": chunk.command, "zone": chunk.zone,
                              "matched": (chunk.difference_count == 0).astype(np.int64),
                              "differences": chunk.difference_count, "new_errors": (chunk.new_status > 0).astype(np.int64)})
        hours.append(frame.groupby(["hour", "command", "zone"]).agg(
            pairs=("matched", "size"), matched=("matched", "sum"), differences=("differences", "sum"),
            new_errors=("new_errors", "sum")))
        for target, ms in (("legacy", chunk.legacy_ms), ("new", chunk.new_ms)):
            lat = pd.DataFrame({"hour": hour, "command": chunk.command, "zone": chunk.zone, "bin": _bins(ms)})
            latencies.append(lat.groupby(["hour", "command", "zone", "bin"]).size().rename("pairs").to_frame()
                             .assign(target=target).set_index("target", append=True))
        all_diffs.append(d.assign(pair=chunk.index[local], token=d_tokens, fingerprint=fps, command=chunk.command[local],
                                  zone=chunk.zone[local], offset=chunk.offset_us[local], hour=hour[local],
                                  load=chunk.load[local])
                         .drop(columns=["side", "slot", "x", "order"]))
        legacy_all.append(chunk.legacy_ms.astype(np.float32))
        new_all.append(chunk.new_ms.astype(np.float32))
        counted = np.bincount(chunk.load)
        if len(counted) > len(load_pairs):
            counted[:len(load_pairs)] += load_pairs
            load_pairs = counted
        else:
            load_pairs[:len(counted)] += counted
        facts.matched += int((chunk.difference_count == 0).sum())
        facts.differences += len(d)
        facts.new_errors += int((chunk.new_status > 0).sum())
        for c, n in zip(*np.unique(chunk.command, return_counts=True), strict=True):
            facts.by_command[KINDS[c]] = facts.by_command.get(KINDS[c], 0) + int(n)
        if progress:
            done = chunk.index[-1] + 1
            print(f"    {done:>12,} pairs written ({time.perf_counter() - started:.0f} s)", flush=True)

    diffs = pd.concat(all_diffs, ignore_index=True)
    hour_text = {h: stamps(np.array([h * _HOUR_US]))[0] for h in range(0, (DAYS + 1) * 24)}
    zone_text = [*ZONES, ""]

    def text_keys(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.reset_index()
        for column, names in (("hour", hour_text), ("command", KINDS), ("zone", zone_text)):
            if column in frame:
                frame[column] = [names[v] for v in frame[column].tolist()]
        return frame

    conn.execute("BEGIN")
    pair_hours = text_keys(pd.concat(hours).groupby(level=[0, 1, 2]).sum())
    conn.executemany("INSERT INTO pair_hours (hour, command, zone, pairs, matched, differences, legacy_errors, new_errors) "
                     "VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
                     pair_hours[["hour", "command", "zone", "pairs", "matched", "differences", "new_errors"]]
                     .itertuples(index=False, name=None))
    by_hour = pd.concat(latencies).groupby(level=[0, 1, 2, 3, 4]).sum()
    latency_hours = text_keys(by_hour)
    conn.executemany("INSERT INTO latency_hours (hour, command, zone, bin, target, pairs) VALUES (?, ?, ?, ?, ?, ?)",
                     latency_hours[["hour", "command", "zone", "bin", "target", "pairs"]].itertuples(index=False, name=None))
    by_day = by_hour.reset_index()
    by_day["hour"] = by_day["hour"] // 24 * 24  # the day's first hour: rules.rollups keys days so
    latency_days = text_keys(by_day.groupby(["hour", "command", "zone", "bin", "target"]).sum())
    conn.executemany("INSERT INTO latency_days (day, command, zone, bin, target, pairs) VALUES (?, ?, ?, ?, ?, ?)",
                     latency_days[["hour", "command", "zone", "bin", "target", "pairs"]].itertuples(index=False, name=None))
    by_quirk = diffs.groupby("quirk")
    quirk_rows = by_quirk.agg(differences=("pair", "size"), pairs=("pair", "nunique"), first=("offset", "min"),
                              last=("offset", "max")).join(diffs.loc[by_quirk["pair"].idxmin()].set_index("quirk")[
                                  ["token", "command", "path", "legacy", "new"]])
    conn.executemany(
        "INSERT INTO quirks (id, field, change, transition, differences, pairs, first_seen, last_seen, example_token, "
        "example_command, example_path, example_legacy, example_new, verdict) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open')",
        zip([pool.ids[k] for k in quirk_rows.index], [pool.fields[k] for k in quirk_rows.index],
            [pool.changes[k] for k in quirk_rows.index], [pool.transitions[k] for k in quirk_rows.index],
            quirk_rows["differences"].tolist(), quirk_rows["pairs"].tolist(), stamps(quirk_rows["first"].to_numpy()),
            stamps(quirk_rows["last"].to_numpy()), quirk_rows["token"].tolist(), [KINDS[c] for c in quirk_rows["command"]],
            quirk_rows["path"].tolist(), map(json_text, quirk_rows["legacy"].tolist()),
            map(json_text, quirk_rows["new"].tolist()), strict=True))
    fingerprints = diffs.groupby("fingerprint").agg(
        quirk=("quirk", "first"), command=("command", "first"), pattern=("pattern", "first"),
        differences=("pair", "size"), pairs=("pair", "nunique"), first=("offset", "min"), last=("offset", "max"))
    conn.executemany(
        "INSERT INTO fingerprints (fingerprint, quirk, command, pattern, change, transition, differences, pairs, "
        "first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        zip(fingerprints.index.tolist(), [pool.ids[k] for k in fingerprints["quirk"]],
            [KINDS[c] for c in fingerprints["command"]], fingerprints["pattern"].tolist(),
            [pool.changes[k] for k in fingerprints["quirk"]], [pool.transitions[k] for k in fingerprints["quirk"]],
            fingerprints["differences"].tolist(), fingerprints["pairs"].tolist(), stamps(fingerprints["first"].to_numpy()),
            stamps(fingerprints["last"].to_numpy()), strict=True))
    zones_of = diffs.groupby(["quirk", "zone"]).agg(differences=("pair", "size"), pairs=("pair", "nunique")).reset_index()
    conn.executemany("INSERT INTO quirk_zones (quirk, zone, differences, pairs) VALUES (?, ?, ?, ?)",
                     zip([pool.ids[k] for k in zones_of["quirk"]], [zone_text[z] for z in zones_of["zone"]],
                         zones_of["differences"].tolist(), zones_of["pairs"].tolist(), strict=True))
    quirk_hours = text_keys(diffs.groupby(["quirk", "hour", "command", "zone"]).agg(
        differences=("pair", "size"), pairs=("pair", "nunique")))
    conn.executemany("INSERT INTO quirk_hours (quirk, hour, command, zone, differences, pairs) VALUES (?, ?, ?, ?, ?, ?)",
                     zip([pool.ids[k] for k in quirk_hours["quirk"]], quirk_hours["hour"], quirk_hours["command"],
                         quirk_hours["zone"], quirk_hours["differences"].tolist(), quirk_hours["pairs"].tolist(),
                         strict=True))
    apply_verdicts(conn, pool)
    conn.execute("COMMIT")
    if progress:
        print(f"    roll-ups written ({time.perf_counter() - started:.0f} s); rebuilding {len(indexes)} indexes",
              flush=True)
    for _name, sql in indexes:
        conn.execute(sql)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    open_catalogue(f"sqlite:///{path}").close()  # switches the file to WAL once, as every later open expects

    open_quirks = {k for k in range(spec.quirks) if pool.verdict(k) == "open"}
    facts.unexplained = int(diffs.loc[diffs["quirk"].isin(open_quirks), "pair"].nunique())
    facts.quirks = int(diffs["quirk"].nunique())
    for target, parts in (("legacy", legacy_all), ("new", new_all)):
        values = np.concatenate(parts)
        facts.latency_p50[target] = float(np.percentile(values, 50))
        facts.latency_p99[target] = float(np.percentile(values, 99))
    facts.lookups = _lookups(diffs, load_pairs, spec)
    facts.seconds = time.perf_counter() - started
    return facts


def _lookups(diffs: pd.DataFrame, load_pairs: np.ndarray, spec: Spec) -> list[dict[str, Any]]:
    """Loads for the entity audit: three with differences, three drawn at random, one that does not exist."""
    rng = np.random.default_rng([spec.seed, 123_456])
    with_differences = np.unique(diffs["load"].to_numpy())
    picked = [*rng.choice(with_differences, min(3, len(with_differences)), replace=False).tolist(),
              *rng.choice(np.flatnonzero(load_pairs), 3, replace=False).tolist()]
    counts = diffs.groupby("load").size()
    return [*({"value": f"L-{load}", "pairs": int(load_pairs[load]), "differences": int(counts.get(load, 0))}
              for load in picked),
            {"value": f"L-{len(load_pairs) + 1_000_000}", "pairs": 0, "differences": 0}]


# The tables the generator writes; check_against_store compares every table of the schema, these and the rest
# (which both ways must leave empty), so a roll-up added to Catalogue.store later and not here is caught.
WRITTEN = ("pair_results", "pair_keys", "differences", "fingerprints", "quirks", "quirk_zones", "pair_hours",
           "latency_hours", "latency_days", "quirk_hours", "alembic_version")


def _rows(path: Path, table: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        columns = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
        return conn.execute(f"SELECT * FROM {table} ORDER BY {', '.join(columns)}").fetchall()


def check_against_store(folder: str | Path, spec: Spec = Spec(pairs=10_000, quirks=40, chunk=3_000)) -> float:
    """Build a small catalogue with the generator and through `Catalogue.store`, from the same chunks, and
    assert that every table holds the same rows; returns the seconds it took."""
    from rules.catalogue import open_catalogue

    started = time.perf_counter()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bulk, stored = folder / "check-bulk.db", folder / "check-store.db"
    write_catalogue(bulk, spec)
    for leftover in (stored, stored.with_name(stored.name + "-wal"), stored.with_name(stored.name + "-shm")):
        leftover.unlink(missing_ok=True)
    pool = QuirkPool.of(spec.quirks)
    catalogue = open_catalogue(f"sqlite:///{stored}")
    for chunk in chunks(spec, pool):
        catalogue.store(pair_results_of(chunk, pool))
    catalogue.close()
    with sqlite3.connect(stored) as conn:
        apply_verdicts(conn, pool)
    with sqlite3.connect(stored) as conn:
        tables = [name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    missing = [t for t in WRITTEN if t not in tables]
    if missing:
        raise AssertionError(f"the catalogue schema has no {', '.join(missing)}: the generator needs updating")
    for table in tables:
        a, b = _rows(bulk, table), _rows(stored, table)
        if a != b:
            first = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            raise AssertionError(f"generator and Catalogue.store disagree on {table}: {len(a)} vs {len(b)} rows; "
                                 f"first difference at row {first}: {a[first:first + 1]} vs {b[first:first + 1]}")
    schema = "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name"
    with sqlite3.connect(bulk) as x, sqlite3.connect(stored) as y:
        if x.execute(schema).fetchall() != y.execute(schema).fetchall():
            raise AssertionError("generator and Catalogue.store disagree on the schema (tables or indexes)")
    return time.perf_counter() - started


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def cached_catalogue(spec: Spec, folder: str | Path = "/tmp/shadow-bench", *,
                     progress: bool = True) -> tuple[Path, Facts, bool]:
    """The generated file for a spec, reused when present from the same generator; (path, facts, reused)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"catalogue-{spec.pairs}-q{spec.quirks}-s{spec.seed}.db"
    meta = _meta_path(path)
    if path.exists() and meta.exists():
        saved = json.loads(meta.read_text())
        if saved.get("spec") == spec.key():
            return path, Facts(**saved["facts"]), True
    partial = folder / f"{path.name}.partial"
    facts = write_catalogue(partial, spec, progress=progress)
    for suffix in ("", "-wal", "-shm"):
        source = partial.with_name(partial.name + suffix)
        if source.exists():
            source.replace(path.with_name(path.name + suffix))
    meta.write_text(json.dumps({"spec": spec.key(), "facts": facts.__dict__}, indent=1))
    return path, facts, False
