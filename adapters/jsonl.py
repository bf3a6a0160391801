"""JSONL files: traces of commands, and pairs (one JSON document a line)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import IO, Iterator, TypeVar

from shadow.errors import InputError
from shadow.model import Command, ModelError, Pair, from_json, to_json

T = TypeVar("T", Command, Pair)
log = logging.getLogger(__name__)


def _read_lines(path: Path, kind: type[T]) -> Iterator[T]:
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file", hint="check the path; `shadow demo trace` writes a sample trace") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read: {exc}") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield from_json(line, kind)
            except ModelError as exc:
                if not line.endswith(b"\n"):
                    # The last line, unfinished: a proxy is still appending to this file. It is read next time.
                    log.warning("%s:%d: the last line is unfinished (a writer still appending?): not read",
                                path, number)
                    return
                raise InputError(
                    f"{path}:{number}: {exc}",
                    hint=f"fix or remove line {number}; nothing after it was read",
                ) from None


def read_commands(path: str | os.PathLike[str]) -> Iterator[Command]:
    """Commands of a JSONL trace, in file order."""
    return _read_lines(Path(path), Command)


class JsonlPairs:
    """Pairs in a JSONL file: a PairSink when written, a PairSource when read."""

    def __init__(self, path: str | os.PathLike[str], *, append: bool = False) -> None:
        self.path = Path(path)
        self._append = append
        self._handle: IO[bytes] | None = None
        self.written = 0

    def write(self, pair: Pair) -> None:
        """Append one pair as a line (buffered; flushed by flush and close)."""
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("ab" if self._append else "wb", buffering=1 << 16)
        self._handle.write(to_json(pair) + b"\n")
        self.written += 1

    def flush(self) -> None:
        """Push buffered lines to the file, so a reader (`shadow compare FILE`) sees them."""
        if self._handle is not None:
            self._handle.flush()

    def close(self) -> None:
        """Flush the file to disk."""
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None

    def __iter__(self) -> Iterator[Pair]:
        return _read_lines(self.path, Pair)


class JsonlCommands:
    """A growing JSONL trace of commands (`shadow proxy --capture`), readable by `shadow replay`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle: IO[bytes] = self.path.open("ab", buffering=1 << 16)
        self.written = 0

    def write(self, command: Command) -> None:
        """Append one command (buffered; flushed by flush and close)."""
        self._handle.write(to_json(command) + b"\n")
        self.written += 1

    def flush(self) -> None:
        """Push buffered lines to the file."""
        self._handle.flush()

    def close(self) -> None:
        """Flush and close the file."""
        if not self._handle.closed:
            self._handle.flush()
            self._handle.close()


def write_commands(path: str | os.PathLike[str], commands: list[Command]) -> int:
    """Write commands as a JSONL trace; returns how many."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as handle:
        for command in commands:
            handle.write(to_json(command) + b"\n")
    return len(commands)
