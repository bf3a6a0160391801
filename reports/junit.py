"""The CI gate: a report as JUnit XML (junitparser) and a pass/fail decision that matches it.

One testsuite per command kind; in each, a `match rate` testcase (when a
minimum is given) and one testcase per quirk the command kind showed, failing
when the quirk's verdict is one of `fail_on`. The gate passes when no testcase
failed, and never on no data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from junitparser import Failure, JUnitXml, TestCase, TestSuite

from reports.query import Report
from rules.catalogue import VERDICTS
from shadow.errors import InputError

__all__ = ["Gate", "GateResult", "evaluate", "write_junit", "parse_fail_on"]


def parse_fail_on(text: str | None) -> frozenset[str]:
    """`--fail-on open,reproduce` as a set of verdicts (refusing unknown ones)."""
    verdicts = frozenset(v.strip() for v in (text or "").split(",") if v.strip())
    unknown = verdicts - set(VERDICTS)
    if unknown:
        raise InputError(f"--fail-on: {', '.join(sorted(unknown))} is not a verdict",
                         hint=f"use a comma-separated list of {', '.join(VERDICTS)}")
    return verdicts


@dataclass(frozen=True)
class Gate:
    """What the CI gate demands: a minimum accepted match rate (percent) and verdicts that fail."""

    min_match_rate: float | None = None
    fail_on: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.min_match_rate is not None and not 0 <= self.min_match_rate <= 100:
            raise InputError(f"--min-match-rate {self.min_match_rate} is not a percentage",
                             hint="give a number from 0 to 100, e.g. 99.5")


@dataclass(frozen=True)
class Check:
    """One testcase: its suite (command kind), name, and the failure message when it failed."""

    suite: str
    name: str
    failure: str | None = None
    kind: str = ""


@dataclass(frozen=True)
class GateResult:
    """Every check of the gate; it passed when none failed."""

    checks: list[Check] = field(default_factory=list)

    @property
    def failures(self) -> list[Check]:
        """The checks that failed."""
        return [c for c in self.checks if c.failure is not None]

    @property
    def passed(self) -> bool:
        """True when every check passed (and there was something to check)."""
        return bool(self.checks) and not self.failures


def evaluate(report: Report, gate: Gate) -> GateResult:
    """The gate's checks for a report: per command kind its accepted match rate, and every quirk's verdict."""
    checks: list[Check] = []
    if report.overall.pairs == 0:
        checks.append(Check("shadow", "pairs in scope", "no pair in the report's scope: the gate cannot pass on "
                                                         "no data", "no-data"))
    accepted = {m.name: m for m in report.accepted_by_command}
    commands = sorted({m.name for m in report.by_command} | {c for q in report.quirks for c in q.quirk.commands})
    for command in commands:
        if gate.min_match_rate is not None:
            rate = accepted[command].rate if command in accepted else None
            figure = "no pairs" if rate is None else f"{rate * 100:.3f} %"
            failed = rate is None or rate * 100 < gate.min_match_rate
            checks.append(Check(command, "match rate", f"accepted match rate {figure} < {gate.min_match_rate} %"
                                if failed else None, "match-rate"))
        for line in report.quirks:
            q = line.quirk
            if command not in q.commands:
                continue
            failure = None
            if q.verdict in gate.fail_on:
                failure = (f"quirk {q.id} is {q.verdict}: {q.description} — {line.differences:,} difference(s) in "
                           f"{line.pairs:,} pair(s)")
            checks.append(Check(command, f"quirk {q.id}: {q.description}", failure, q.verdict))
    return GateResult(checks)


def write_junit(report: Report, result: GateResult, path: Path) -> Path:
    """Write the checks as JUnit XML (one testsuite per command kind)."""
    xml = JUnitXml("shadow report")
    suites: dict[str, TestSuite] = {}
    for check in result.checks:
        suite = suites.get(check.suite)
        if suite is None:
            suite = suites[check.suite] = TestSuite(check.suite)
            for name, value in (("catalogue", report.catalogue), ("scope", report.scope.label),
                                ("overall_match_rate", _pct(report.overall.rate)),
                                ("accepted_match_rate", _pct(report.accepted.rate))):
                suite.add_property(name, value)
            xml.add_testsuite(suite)
        case = TestCase(check.name, classname=f"shadow.{check.suite}")
        if check.failure is not None:
            case.result = [Failure(check.failure, check.kind)]
        suite.add_testcase(case)
    for suite in suites.values():
        suite.update_statistics()
    xml.update_statistics()
    path.parent.mkdir(parents=True, exist_ok=True)
    xml.write(str(path), pretty=True)
    return path


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 100:.3f}"
