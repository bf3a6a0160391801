"""A canary plan file (zones, steps, soak, `[sla]`) and the progress of its run as kept in `canary_progress`.

The plan is validated once, at the edge: a file that does not validate is
refused with file, key and reason. Its identity is a hash of its content
(comments and layout aside): the key its progress is kept under, so a changed
plan (another zone, another threshold) is a new run.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cutover.sla import SlaThresholds
from rules.schema import canary_progress
from shadow.errors import ConfigError, read_config_text

__all__ = ["CanaryPlan", "CanaryStep", "CanaryProgress", "parse_plan", "load_plan", "progress_of", "all_progress",
           "RANK"]

RANK = {"legacy": 0, "shadow": 1, "reverse": 2, "new": 3}  # the order modes go in, from legacy to new


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class CanaryStep(_Strict):
    """One mode a zone moves to, and how long it soaks there."""

    mode: Literal["shadow", "reverse", "new"] = Field(description="the mode the zone is flipped to")
    soak_seconds: float | None = Field(None, gt=0, description="this step's soak time (else the plan's)")


class CanaryPlan(_Strict):
    """A canary plan file: zones in order, the steps each goes through, the soak time and the SLA."""

    zones: list[str] = Field(min_length=1, description="the zones, in the order they are moved")
    steps: list[CanaryStep] = Field(min_length=1, description="modes each zone goes through, in order: \"reverse\" "
                                                              "or { mode = \"new\", soak_seconds = 1800 }")
    soak_seconds: float = Field(600.0, gt=0, description="how long each step soaks before the next (seconds)")
    command: str | None = Field(None, min_length=1, description="flip only this command kind (else the whole zone)")
    gates: Literal["first-step", "every-step"] = Field(
        "first-step", description="which flips must pass the gates: the first of each zone (later ones stand on "
                                  "the soak just passed), or every one")
    wait_seconds: float = Field(10.0, gt=0, description="seconds a flip waits for every proxy before reverting")
    sla: SlaThresholds = Field(SlaThresholds(), description="what every soak must hold")

    @field_validator("steps", mode="before")
    @classmethod
    def _mode_names(cls, value: Any) -> Any:
        return [{"mode": v} if isinstance(v, str) else v for v in value] if isinstance(value, list) else value

    @model_validator(mode="after")
    def _forward_and_unique(self) -> CanaryPlan:
        seen: set[str] = set()
        for zone in self.zones:
            if not zone.strip():
                raise ValueError("zones: a zone name is empty")
            if zone.casefold() in seen:
                raise ValueError(f"zones: {zone!r} is listed twice")
            seen.add(zone.casefold())
        for index in range(1, len(self.steps)):
            before, after = self.steps[index - 1].mode, self.steps[index].mode
            if RANK[after] <= RANK[before]:
                raise ValueError(f"steps[{index}]: {after!r} after {before!r}: a canary only moves forward "
                                 f"(shadow → reverse → new); `shadow cutover rollback` moves back")
        return self

    @property
    def id(self) -> str:
        """The plan's identity: a hash of its content (comments and layout aside), the key of its progress."""
        material = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(material.encode()).hexdigest()[:16]

    def soak_for(self, step: CanaryStep) -> float:
        """The step's soak time in seconds."""
        return step.soak_seconds if step.soak_seconds is not None else self.soak_seconds

    def schedule(self) -> list[tuple[str, CanaryStep]]:
        """Every (zone, step), in the order they run: all of a zone's steps before the next zone."""
        return [(zone, step) for zone in self.zones for step in self.steps]


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse_plan(text: str, *, source: str = "<plan>") -> CanaryPlan:
    """Validate a plan file's TOML text; errors name `source`, the key and the reason."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}", hint="fix the syntax at the line and column shown") \
            from None
    try:
        return CanaryPlan.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            reason = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                reason = "unknown key (check its spelling against the canary-plan reference, docs/reference/canary-plan.md)"
            loc = tuple(p for p in err["loc"] if p not in ("str", "CanaryStep"))  # not the union's branch names
            lines.append(f"{source}: {_key_path(loc)}: {reason}" if loc else f"{source}: {reason}")
        raise ConfigError("\n".join(lines), hint="fix the key(s) above, then run the plan again") from None


def load_plan(path: str | Path) -> CanaryPlan:
    """Read and validate a canary plan file."""
    file = Path(path)
    text = read_config_text(file, "plan file", "pass the path of a canary plan (TOML)")
    return parse_plan(text, source=str(file))



# -- progress ---------------------------------------------------------------------------

def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(timezone.utc).isoformat()


def _parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@dataclass
class CanaryProgress:
    """Where a plan stands, as persisted in `canary_progress` after every transition."""

    plan: str
    total: int
    plan_file: str
    step: int = 0                       # the next step to run (index into the schedule)
    status: str = "running"             # running | halted | done
    phase: str = "flip"                 # flip (not flipped yet) | flipping (flip under way) | soak
    zone: str | None = None
    mode: str | None = None             # the current step's mode
    from_mode: str | None = None
    started_at: datetime | None = None  # when the current soak began
    flipped: bool = False               # the current step was flipped by the canary (else soaked in place)
    owner: str | None = None            # the controller running it now (None: nobody)
    zone_start: dict[str, str] = field(default_factory=dict)  # zone → its mode when the canary found it
    passed: dict[str, Any] | None = None  # the soak just passed: the evidence a later step may stand on
    reason: str | None = None
    last_check: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    updated_at: datetime | None = None

    def state_json(self) -> str:
        """The `state` column."""
        data = asdict(self)
        for key in ("plan", "step", "updated_at"):
            data.pop(key)
        data["started_at"] = _iso(self.started_at)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_row(cls, row: Any) -> CanaryProgress:
        """Read a `canary_progress` row."""
        data = json.loads(row.state)
        data["started_at"] = _parse_time(data.get("started_at"))
        updated = row.updated_at.replace(tzinfo=timezone.utc) if row.updated_at else None
        return cls(plan=row.plan, step=row.step, updated_at=updated, **data)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view."""
        data = asdict(self)
        data["started_at"], data["updated_at"] = _iso(self.started_at), _iso(self.updated_at)
        return data


def progress_of(engine: sa.Engine, plan_id: str) -> CanaryProgress | None:
    """A plan's persisted progress, if it ever ran."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(canary_progress).where(canary_progress.c.plan == plan_id)).first()
    return None if row is None else CanaryProgress.from_row(row)


def all_progress(engine: sa.Engine) -> list[CanaryProgress]:
    """Every plan that ever ran, most recently active first."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(canary_progress).order_by(canary_progress.c.updated_at.desc())).all()
    return [CanaryProgress.from_row(r) for r in rows]
