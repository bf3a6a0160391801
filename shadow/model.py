"""The vocabulary every part of shadow-harness speaks: command, outcome, pair.

This module imports nothing else of ours (DESIGN.md, "Layout"). The types are
msgspec Structs: typed, validated on decode, and the fastest JSON round trip
available to Python, which matters on the proxy's and comparator's hot paths.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime, timezone
from typing import Any, TypeVar

import msgspec

__all__ = [
    "Command",
    "Outcome",
    "Pair",
    "Status",
    "Target",
    "ModelError",
    "new_token",
    "utcnow",
    "to_json",
    "from_json",
]


class Target(str, enum.Enum):
    """A system a command can be sent to."""

    LEGACY = "legacy"
    NEW = "new"

    @property
    def other(self) -> "Target":
        """The other target of the pair."""
        return Target.NEW if self is Target.LEGACY else Target.LEGACY


class Status(str, enum.Enum):
    """How a target dealt with a command."""

    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"


def new_token() -> str:
    """A fresh dispatch token (UUID4, canonical text form)."""
    return str(uuid.uuid4())


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


class Command(msgspec.Struct, kw_only=True):
    """One dispatch action: assign a load, reassign, cancel, update a stop's ETA ..."""

    kind: str
    payload: Any = None
    keys: dict[str, str] = {}
    zone: str | None = None
    # A command that arrives without a dispatch token gets one (see __post_init__).
    token: str | None = None
    received_at: datetime = msgspec.field(default_factory=utcnow)

    def __post_init__(self) -> None:
        if not self.token:
            self.token = new_token()
        if self.received_at.tzinfo is None:
            # Naive timestamps are taken as UTC so ordering and windows stay sound.
            self.received_at = self.received_at.replace(tzinfo=timezone.utc)


class Outcome(msgspec.Struct, kw_only=True):
    """What one target did with one command, and the state it left behind."""

    target: Target
    status: Status
    http_status: int | None = None
    response: Any = None
    state: Any = None
    latency_ms: float = 0.0
    error: str | None = None
    settle_ms: float | None = None   # how long the state took to settle (eventually consistent targets)
    settled: bool | None = None      # whether it came to match the other side before the deadline


class Pair(msgspec.Struct, kw_only=True):
    """A command with both outcomes: the unit that flows to the comparator."""

    command: Command
    legacy: Outcome
    new: Outcome
    primary: Target = Target.LEGACY
    error: str | None = None  # what went wrong recording it (e.g. a body that is not JSON)

    @property
    def token(self) -> str:
        """The command's dispatch token: the pair's identity everywhere."""
        return self.command.token  # type: ignore[return-value]

    def outcome(self, target: Target) -> Outcome:
        """The outcome of one target."""
        return self.legacy if target is Target.LEGACY else self.new


class ModelError(ValueError):
    """A JSON document does not fit the model; the message names the field."""


_encoder = msgspec.json.Encoder()
_decoders: dict[type, msgspec.json.Decoder] = {}
T = TypeVar("T", Command, Outcome, Pair)


def to_json(obj: Command | Outcome | Pair) -> bytes:
    """Encode a model object as compact JSON bytes."""
    return _encoder.encode(obj)


def from_json(data: bytes | str, kind: type[T]) -> T:
    """Decode JSON into a model object, validating every field."""
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise ModelError(f"not a valid {kind.__name__}: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise ModelError(f"not valid JSON for a {kind.__name__}: {exc}") from exc
