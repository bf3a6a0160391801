"""The extension points a user may implement (STYLE.md, 3): one short module, typed Protocols.

Every method here may be called many times concurrently from one event loop.
None of them may block the loop, raise on bad input from a target (turn it into
an Outcome with status error instead), or log a secret.
"""

from __future__ import annotations

from typing import Any, Iterator, Protocol, runtime_checkable

from shadow.model import Command, Outcome, Pair, Target


@runtime_checkable
class CommandTarget(Protocol):
    """A system a command is sent to (legacy or new): HTTP, Kafka, in-process."""

    target: Target

    async def send(self, command: Command) -> Outcome:
        """Send one command; called once per command per target. Never raises: a
        refused connection, an error status or a timeout is an Outcome with that status."""
        ...

    async def close(self) -> None:
        """Release connections; called once when the run ends."""
        ...


@runtime_checkable
class StateReader(Protocol):
    """Reads back the state of the entities a command touched, after it ran."""

    async def read(self, command: Command) -> Any:
        """Return the touched entities as JSON-able data (None when there is nothing to
        read). Called after the command's outcome is known. May raise a ShadowError,
        which the caller records on the outcome."""
        ...

    async def close(self) -> None:
        """Release connections; called once when the run ends."""
        ...


@runtime_checkable
class PairSink(Protocol):
    """Where pairs go: memory, a JSONL file, the catalogue, a Kafka topic."""

    def write(self, pair: Pair) -> None:
        """Accept one pair. Must not block for long: buffer, and flush in close()."""
        ...

    def close(self) -> None:
        """Flush and release; called once."""
        ...


@runtime_checkable
class PairSource(Protocol):
    """Where the comparator reads pairs from."""

    def __iter__(self) -> Iterator[Pair]:
        """Yield pairs in the order they were written. Bad records raise InputError
        naming where they are."""
        ...
