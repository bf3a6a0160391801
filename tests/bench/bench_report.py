"""Reports on a catalogue of 10 million pair results: shadow's report vs a plain pandas read_sql + groupby.

One run prints, side by side: seconds and peak memory to build the report and
render it for the terminal (and as HTML, when reports.html is there), the same
for pandas reading the pair table and grouping it, and the entity audit
(`entity_history`, and the whole `shadow pairs show --key load_id=...` command).
Targets (DESIGN.md "Budgets", issue text): report <= 10 s and <= 1 GiB RSS;
entity audit < 2 s.

The catalogue is synthetic (tests.bench.catalogue_data: ~1 % mismatched, 10,000
quirks with a long tail), generated once into /tmp/shadow-bench and reused. Before
any figure is taken, the generator is checked against `Catalogue.store` on a small
catalogue (every table identical), and every report's figures are checked against
the generated data, so a wrong generator cannot produce a fast-looking number.
Each contender runs in its own process, so its peak RSS (VmHWM) is its own; the
file is in the page cache (it was just written or read), so these are warm figures.

Run: make bench (or python -m tests.bench.bench_report [--pairs N] [--quirks N]).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

GIB = 1024 ** 3
TARGET_SECONDS = 10.0
TARGET_RSS = 1 * GIB
TARGET_ENTITY = 2.0


def _peak_rss() -> int:
    """This process's peak resident set, in bytes (VmHWM)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


# -- the contenders, each run in a child process ---------------------------------------------------


def _child_shadow(db: str, html: bool) -> dict[str, Any]:
    started = time.perf_counter()
    import io

    from rich.console import Console

    from reports.query import Scope, build_report
    from reports.terminal import render_terminal
    from rules.catalogue import open_catalogue

    out: dict[str, Any] = {"imports": time.perf_counter() - started}
    started = time.perf_counter()
    catalogue = open_catalogue(f"sqlite:///{db}")
    report = build_report(catalogue, Scope())
    out["build"] = time.perf_counter() - started
    mark = time.perf_counter()
    console = Console(file=io.StringIO(), width=120)
    render_terminal(report, console)
    out["terminal"] = time.perf_counter() - mark
    out["terminal_chars"] = len(console.file.getvalue())
    if html:
        mark = time.perf_counter()
        try:
            from reports.html import render_html
        except ImportError as exc:
            out["html_error"] = f"not available yet ({exc})"
        else:
            try:
                page = render_html(report)
            except Exception as exc:  # reports.html is being written: say so, keep the other figures
                out["html_error"] = f"failed: {type(exc).__name__}: {exc}"
            else:
                out["html"] = time.perf_counter() - mark
                out["html_bytes"] = len(page.encode())
    out["seconds"] = time.perf_counter() - started
    catalogue.close()
    out["rss"] = _peak_rss()
    out["figures"] = {
        "pairs": report.overall.pairs, "matched": report.overall.matched, "accepted": report.accepted.matched,
        "new_errors": report.errors["new"], "legacy_errors": report.errors["legacy"], "quirks": len(report.quirks),
        "differences": sum(report.differences_by_command.values()),
        "by_command": {m.name: m.pairs for m in report.by_command},
        "p50": {t: lat.p50 for t, lat in report.latency.items()}, "p99": {t: lat.p99 for t, lat in report.latency.items()},
    }
    return out


def _child_pandas(db: str) -> dict[str, Any]:
    started = time.perf_counter()
    import sqlite3

    import pandas as pd

    out: dict[str, Any] = {"imports": time.perf_counter() - started}
    started = time.perf_counter()
    conn = sqlite3.connect(db)
    frame = pd.read_sql("select * from pair_results", conn)
    out["read_sql"] = time.perf_counter() - started
    mark = time.perf_counter()
    rates = frame.groupby(["command", "zone"], dropna=False)["matched"].agg(["count", "sum"])
    quantiles = frame[["legacy_latency_ms", "new_latency_ms"]].quantile([0.5, 0.95, 0.99])
    out["groupby"] = time.perf_counter() - mark
    out["seconds"] = time.perf_counter() - started
    conn.close()
    out["rss"] = _peak_rss()
    out["figures"] = {"pairs": int(rates["count"].sum()), "matched": int(rates["sum"].sum()),
                      "p50": {"legacy": float(quantiles.loc[0.5, "legacy_latency_ms"]),
                              "new": float(quantiles.loc[0.5, "new_latency_ms"])}}
    return out


def _child_entity(db: str, lookups: list[dict[str, Any]]) -> dict[str, Any]:
    from reports.entity import entity_history
    from rules.catalogue import open_catalogue

    started = time.perf_counter()
    catalogue = open_catalogue(f"sqlite:///{db}")
    out: dict[str, Any] = {"open": time.perf_counter() - started, "lookups": []}
    for lookup in lookups:
        mark = time.perf_counter()
        history = entity_history(catalogue, "load_id", lookup["value"])
        seconds = time.perf_counter() - mark
        out["lookups"].append({"value": lookup["value"], "seconds": seconds, "pairs": len(history),
                               "differences": sum(len(p.differences) for p in history)})
    catalogue.close()
    out["rss"] = _peak_rss()
    return out


def _run_child(args: list[str]) -> dict[str, Any]:
    """Run one contender in a fresh interpreter; its last stdout line is its JSON."""
    done = subprocess.run([sys.executable, "-m", "tests.bench.bench_report", "--child", *args],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    if done.returncode != 0:
        raise RuntimeError(f"bench child {args[0]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _run_cli(db: Path, value: str) -> tuple[float, str]:
    shadow = Path(sys.executable).with_name("shadow")
    started = time.perf_counter()
    done = subprocess.run([str(shadow), "pairs", "show", "--key", f"load_id={value}", "--store", f"sqlite:///{db}"],
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "120"})
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"shadow pairs show --key load_id={value} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, done.stdout


# -- checks: the figures must be the generated data's -----------------------------------------------


def _check(name: str, got: Any, want: Any) -> None:
    if got != want:
        raise AssertionError(f"{name}: the bench measured {got!r}, the generated catalogue holds {want!r}")


def _check_near(name: str, got: float | None, want: float, tolerance: float) -> None:
    if got is None or abs(got - want) > tolerance * want:
        raise AssertionError(f"{name}: {got!r} is not within {tolerance:.0%} of {want!r}")


def _check_shadow(result: dict[str, Any], facts: Any) -> None:
    f = result["figures"]
    _check("report pairs", f["pairs"], facts.pairs)
    _check("report matched pairs", f["matched"], facts.matched)
    _check("report accepted pairs", f["accepted"], facts.pairs - facts.unexplained)
    _check("report new-side errors", f["new_errors"], facts.new_errors)
    _check("report legacy-side errors", f["legacy_errors"], facts.legacy_errors)
    _check("report quirks", f["quirks"], facts.quirks)
    _check("report differences", f["differences"], facts.differences)
    _check("report pairs per command", f["by_command"], dict(sorted(facts.by_command.items())))
    for target in ("legacy", "new"):
        # a percentile read from a histogram bin is within 4.5 % of the truth (rules.rollups)
        _check_near(f"report {target} p50", f["p50"][target], facts.latency_p50[target], 0.05)
        _check_near(f"report {target} p99", f["p99"][target], facts.latency_p99[target], 0.05)
    rate = 1 - facts.matched / facts.pairs
    if not 0.008 <= rate <= 0.012:
        raise AssertionError(f"the generated mismatch rate is {rate:.3%}, not about 1 %")


# -- the run ------------------------------------------------------------------------------------------


def _mb(n: float) -> str:
    return f"{n / 2 ** 20:,.0f} MiB"


def _s(n: float) -> str:
    return f"{n:,.2f} s" if n >= 0.1 else f"{n * 1000:,.1f} ms"


def main(pairs: int = 10_000_000, quirks: int = 10_000, folder: str = "/tmp/shadow-bench") -> dict[str, Any]:
    from tests.bench.catalogue_data import Spec, cached_catalogue, check_against_store

    checked = check_against_store(Path(folder) / "check")
    print(f"report bench: generator checked against Catalogue.store on 10,000 pairs (every table identical, "
          f"{checked:.1f} s)")
    spec = Spec(pairs=pairs, quirks=quirks)
    started = time.perf_counter()
    db, facts, reused = cached_catalogue(spec, folder)
    size = sum(p.stat().st_size for p in db.parent.glob(db.name + "*") if not p.name.endswith(".json"))
    how = (f"reused {db} (generated earlier in {facts.seconds:.0f} s)" if reused
           else f"generated {db} in {time.perf_counter() - started:.0f} s")
    print(f"catalogue: {facts.pairs:,} pair results, {1 - facts.matched / facts.pairs:.2%} mismatched, "
          f"{facts.differences:,} differences in {facts.quirks:,} quirks, {facts.new_errors:,} new-side "
          f"errors/timeouts; {_mb(size)} on disk; {how}")

    terminal = _run_child(["shadow", str(db)])
    _check_shadow(terminal, facts)
    with_html = _run_child(["shadow-html", str(db)])
    _check_shadow(with_html, facts)
    peer = _run_child(["pandas", str(db)])
    _check("pandas pairs", peer["figures"]["pairs"], facts.pairs)
    _check("pandas matched pairs", peer["figures"]["matched"], facts.matched)
    entity = _run_child(["entity", str(db), json.dumps(facts.lookups)])
    for got, want in zip(entity["lookups"], facts.lookups, strict=True):
        _check(f"entity audit {want['value']}: pairs", got["pairs"], want["pairs"])
        _check(f"entity audit {want['value']}: differences", got["differences"], want["differences"])
    cli = []
    for lookup in [x for x in facts.lookups if x["pairs"]][:3]:
        seconds, text = _run_cli(db, lookup["value"])
        if f"{lookup['pairs']} command(s) touched load_id={lookup['value']}" not in text:
            raise AssertionError(f"shadow pairs show --key load_id={lookup['value']} did not list "
                                 f"{lookup['pairs']} command(s):\n{text[:500]}")
        cli.append(seconds)
    print("  checked: pairs, matched, accepted, errors, quirks, differences, per-command pairs and latency p50/p99 "
          "of both reports, pandas' counts and every entity lookup, against the generated data")

    lookups = sorted(x["seconds"] for x in entity["lookups"])
    html_ok = "html" in with_html
    rows: list[tuple[str, str, str, str, str, str]] = []

    def row(figure: str, shadow: float, peer_value: float | None, fmt: Any, target: float, target_text: str) -> None:
        ratio = f"{peer_value / shadow:,.1f} x" if peer_value else ""
        rows.append((figure, fmt(shadow), fmt(peer_value) if peer_value else "-", ratio, target_text,
                     "yes" if shadow <= target else "NO"))

    row("report, terminal: seconds", terminal["seconds"], peer["seconds"], _s, TARGET_SECONDS, "<= 10 s")
    row("report, terminal: peak RSS", terminal["rss"], peer["rss"], _mb, TARGET_RSS, "<= 1 GiB")
    if html_ok:
        row("report, terminal + HTML: seconds", with_html["seconds"], peer["seconds"], _s, TARGET_SECONDS, "<= 10 s")
        row("report, terminal + HTML: peak RSS", with_html["rss"], peer["rss"], _mb, TARGET_RSS, "<= 1 GiB")
    row(f"entity audit, entity_history p50 ({len(lookups)} loads)", lookups[len(lookups) // 2], None, _s,
        TARGET_ENTITY, "< 2 s")
    row("entity audit, entity_history max", lookups[-1], None, _s, TARGET_ENTITY, "< 2 s")
    row(f"entity audit, `shadow pairs show` whole command, max of {len(cli)}", max(cli), None, _s, TARGET_ENTITY,
        "< 2 s")

    print(f"\nreport on {facts.pairs:,} stored pair results ({facts.quirks:,} quirks), one run, "
          "each contender in its own process; pandas = read_sql(pair_results) + groupby(command, zone) + "
          "latency quantiles")
    header = ("figure", "shadow", "pandas", "ratio", "target", "met")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for r in (header, tuple("-" * w for w in widths), *rows):
        print("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    print(f"\n  shadow: imports {_s(terminal['imports'])} (not counted), open + build_report {_s(terminal['build'])}, "
          f"render_terminal {_s(terminal['terminal'])} ({terminal['terminal_chars']:,} characters)")
    if html_ok:
        print(f"  shadow + HTML: open + build_report {_s(with_html['build'])}, render_terminal "
              f"{_s(with_html['terminal'])}, render_html {_s(with_html['html'])} ({with_html['html_bytes'] / 1e6:,.1f} MB)")
    else:
        print(f"  html: {with_html.get('html_error', 'not available yet')}")
    print(f"  pandas: imports {_s(peer['imports'])} (not counted), read_sql {_s(peer['read_sql'])}, "
          f"groupby + quantiles {_s(peer['groupby'])}")
    print(f"  entity audit: open_catalogue {_s(entity['open'])}, lookups "
          + ", ".join(f"{x['value']} {_s(x['seconds'])} ({x['pairs']} pairs)" for x in entity["lookups"])
          + f"; whole command {', '.join(_s(s) for s in cli)} (interpreter start and imports included)")
    return {"terminal": terminal, "html": with_html, "pandas": peer, "entity": entity, "cli": cli, "reused": reused}


def _child(argv: list[str]) -> None:
    kind, db = argv[0], argv[1]
    if kind == "shadow":
        result = _child_shadow(db, html=False)
    elif kind == "shadow-html":
        result = _child_shadow(db, html=True)
    elif kind == "pandas":
        result = _child_pandas(db)
    elif kind == "entity":
        result = _child_entity(db, json.loads(argv[2]))
    else:
        raise SystemExit(f"unknown bench child {kind!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2:])
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--pairs", type=int, default=10_000_000, help="stored pair results (default 10,000,000)")
        parser.add_argument("--quirks", type=int, default=10_000, help="quirks they fall into (default 10,000)")
        parser.add_argument("--folder", default="/tmp/shadow-bench", help="where the generated catalogue is kept")
        options = parser.parse_args()
        main(options.pairs, options.quirks, options.folder)
