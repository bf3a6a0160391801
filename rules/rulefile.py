"""Rule files: versioned, reviewable TOML in the user's migration repo.

One file per quirk or per concern, in the folder `[store] rules` names. A file
may hold a verdict on one quirk (`[quirk]`), normalisation steps applied before
comparison (`[[normalise]]`), and paths known to be noise (`[[noise]]`):

    # Legacy pads driver names to CHAR(20); the new engine trims. Retired.
    [quirk]
    id = "3f1c0a9e2b7d"
    verdict = "retire"
    owner = "dana"
    note = "nobody relies on the padding"
    ticket = "DISP-812"

    [[normalise]]
    path = "**.driver_name"
    trim = true

A file that does not validate is refused with its name, line or key, and reason.
"""

from __future__ import annotations

import tomllib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rules.paths import DEEP, PathGlob
from shadow.errors import ConfigError

__all__ = ["Tolerance", "TimestampRule", "NormaliseStep", "NoisePath", "QuirkDecision", "RuleFile", "RuleSet",
           "load_rules", "parse_rule_file", "Verdict"]

Verdict = Literal["open", "reproduce", "retire", "noise"]
ACTIONS = ("ignore", "trim", "casefold", "null_equals_empty", "value_map", "unordered", "coerce", "tolerance",
           "timestamp", "redact")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _glob(value: str) -> str:
    try:
        glob = PathGlob.compile(value)
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    if glob.segments and glob.segments[-1][0] == DEEP:
        raise ValueError(f"path {value!r} ends with '**': name what to match below it, e.g. '**.created_at'")
    return value


class Tolerance(_Strict):
    """Numbers within `absolute` of each other, or within `relative` × the larger, are equal."""

    absolute: float = Field(0.0, ge=0, description="numbers at most this far apart are equal, e.g. 0.01")
    relative: float = Field(0.0, ge=0, description="numbers at most this share of the larger one apart are equal, "
                                                   "e.g. 1e-6")

    @model_validator(mode="after")
    def _some(self) -> "Tolerance":
        if self.absolute == 0 and self.relative == 0:
            raise ValueError("give absolute = … or relative = … (both are 0)")
        return self


class TimestampRule(_Strict):
    """Timestamps compared as UTC instants; naive ones taken in `assume_timezone`."""

    tolerance_ms: float = Field(0.0, ge=0, description="instants at most this many milliseconds apart are equal")
    assume_timezone: str = Field("UTC", description="IANA time zone a timestamp without an offset is taken in, "
                                                    "e.g. America/Chicago")

    @field_validator("assume_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if value.upper() == "UTC":
            return "UTC"
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as 'America/Chicago'") from None
        return value


class NormaliseStep(_Strict):
    """One normalisation at a path glob, applied to both outcomes before comparison."""

    path: str = Field(description="glob over the outcome document (status, response, state): [*] any list index, "
                                  "* any one key, ** any depth, e.g. state.stops[*].eta or **.driver_name")
    commands: list[str] = Field([], description="only for these command kinds (default: every kind)")
    ignore: bool = Field(False, description="leave the value out of the comparison on both sides (nothing else may "
                                            "be combined with it)")
    trim: bool = Field(False, description="text without surrounding whitespace, on both sides")
    casefold: bool = Field(False, description="text in one letter case, on both sides")
    null_equals_empty: bool = Field(False, description="an empty string, list or object is null, on both sides")
    value_map: dict[str, Any] | None = Field(None, description="value → replacement, applied on side, e.g. "
                                                               "{ A = \"assigned\" }; values not listed are kept")
    side: Literal["legacy", "new", "both"] = Field("legacy", description="the side value_map applies to")
    unordered: bool = Field(False, description="the list's order does not matter: both sides are sorted")
    key: str | None = Field(None, description="with unordered: the item field lists are sorted by, so items are "
                                              "matched by it, e.g. seq")
    coerce: Literal["number", "string", "boolean"] | None = Field(
        None, description="convert both sides to one type: \"12.50\" and 12.5 are one number, 1 and \"true\" one boolean")
    tolerance: Tolerance | None = Field(None, description="numbers within a tolerance are equal: "
                                                          "{ absolute = 0.01 } and/or { relative = 1e-6 }")
    timestamp: TimestampRule | None = Field(None, description="compare timestamps as UTC instants: "
                                                              "{ tolerance_ms = 5, assume_timezone = \"America/Chicago\" }")
    redact: bool = Field(False, description="mask the value before anything is stored (equal values stay equal, so "
                                            "they still compare)")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return _glob(value)

    @model_validator(mode="after")
    def _one_action(self) -> "NormaliseStep":
        chosen = [name for name in ACTIONS if getattr(self, name) not in (None, False)]
        if not chosen:
            raise ValueError(f"says nothing to do: give one of {', '.join(ACTIONS)}")
        if self.ignore and len(chosen) > 1:
            raise ValueError(f"ignore = true cannot be combined with {', '.join(c for c in chosen if c != 'ignore')}")
        if self.key is not None and not self.unordered:
            raise ValueError("key = … only applies with unordered = true")
        return self

    @property
    def actions(self) -> list[str]:
        """The actions this step takes, in the order they are applied."""
        return [name for name in ACTIONS if getattr(self, name) not in (None, False)]


class NoisePath(_Strict):
    """Differences at this path are non-deterministic: their quirks are noise."""

    path: str = Field(description="glob over the outcome document, as in [[normalise]]; quirks at matching paths "
                                  "get the verdict noise")
    reason: str = Field("", description="why the values are non-deterministic (shown as the quirk's note)")
    source: str = Field("manual", description="who declared it: manual, or auto:pattern (`shadow compare`) and "
                                              "auto:baseline (`shadow baseline`) for proposals (shown as the owner)")
    quirk: str | None = Field(None, description="the quirk a proposal came from (for reference)")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return _glob(value)


class QuirkDecision(_Strict):
    """A product owner's verdict on one quirk."""

    id: str = Field(min_length=6, description="the quirk's id, as `shadow quirks list` shows it")
    verdict: Verdict = Field(description="reproduce (the new engine must behave like legacy), retire (the "
                                         "difference is expected), noise (non-deterministic), or open (undecided)")
    owner: str | None = Field(None, description="who decided")
    note: str | None = Field(None, description="why")
    ticket: str | None = Field(None, description="a tracker key, e.g. DISP-812")
    decided_at: datetime | None = Field(None, description="when it was decided (UTC; written by `shadow quirks "
                                                          "triage` and the triage page)")


class RuleFile(_Strict):
    """One validated rule file."""

    quirk: QuirkDecision | None = Field(None, description="a verdict on one quirk")
    normalise: list[NormaliseStep] = Field([], description="steps applied to both outcomes before they are compared")
    noise: list[NoisePath] = Field([], description="paths known to be non-deterministic")
    path: Path | None = Field(None, exclude=True)


class RuleSet:
    """Every rule file of a folder, validated, in file-name order."""

    def __init__(self, files: list[RuleFile] | None = None, folder: Path | None = None) -> None:
        self.files = list(files or [])
        self.folder = folder

    @property
    def steps(self) -> list[NormaliseStep]:
        """All normalisation steps, file by file."""
        return [step for rule in self.files for step in rule.normalise]

    @property
    def noise(self) -> list[NoisePath]:
        """All declared noise paths."""
        return [noise for rule in self.files for noise in rule.noise]

    @property
    def decisions(self) -> dict[str, tuple[QuirkDecision, Path | None]]:
        """Quirk id → its verdict and the file that holds it."""
        return {rule.quirk.id: (rule.quirk, rule.path) for rule in self.files if rule.quirk is not None}

    def file_for(self, quirk_id: str) -> Path | None:
        """The rule file holding a quirk's verdict, if any."""
        found = self.decisions.get(quirk_id)
        return found[1] if found else None


def _line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    """The line where a key path starts, best effort (TOML tables and arrays of tables)."""
    lines = text.splitlines()
    table, index = (str(loc[0]), loc[1]) if len(loc) > 1 and isinstance(loc[1], int) else (str(loc[0]), None)
    key = next((str(p) for p in reversed(loc) if isinstance(p, str) and p != table), None)
    seen = -1
    start = 0
    for number, line in enumerate(lines):
        stripped = line.strip()
        if stripped in (f"[[{table}]]", f"[{table}]"):
            seen += 1
            if index is None or seen == index:
                start = number
                if key is None:
                    return number + 1
                for offset, candidate in enumerate(lines[number + 1:], start=number + 2):
                    if candidate.strip().startswith("["):
                        break
                    if candidate.strip().split("=")[0].strip() == key:
                        return offset
                return start + 1
    return None


def parse_rule_file(text: str, source: str = "<rules>") -> RuleFile:
    """Validate one rule file's text; ConfigError names the file, the line or key, and the reason."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}", hint="fix the syntax at the line shown") from None
    try:
        return RuleFile.model_validate(raw)
    except ValidationError as exc:
        messages = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            key = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[") or "(top level)"
            reason = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                reason = "unknown key (a rule file holds [quirk], [[normalise]] and [[noise]])"
            line = _line_of(text, loc) if loc else None
            where = f"{source}:{line}" if line else source
            messages.append(f"{where}: {key}: {reason}")
        raise ConfigError("\n".join(messages), hint="fix the rule file; `shadow rules check` re-validates") from None


def load_rules(folder: Path | None) -> RuleSet:
    """Every `*.toml` rule file of a folder (none when the folder does not exist)."""
    if folder is None or not folder.exists():
        return RuleSet([], folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: the rules folder is a file", hint="point [store] rules at a folder")
    files = []
    seen: dict[str, Path] = {}
    for path in sorted(folder.glob("*.toml")):
        rule = parse_rule_file(path.read_text(encoding="utf-8"), str(path))
        rule = rule.model_copy(update={"path": path})
        if rule.quirk is not None:
            if rule.quirk.id in seen:
                raise ConfigError(f"{path}: quirk {rule.quirk.id} already has a verdict in {seen[rule.quirk.id]}",
                                  hint="keep one file per quirk")
            seen[rule.quirk.id] = path
        files.append(rule)
    return RuleSet(files, folder)


def now_utc() -> datetime:
    """Decision time stamps are UTC, to the second."""
    return datetime.now(timezone.utc).replace(microsecond=0)
