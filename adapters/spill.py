"""Pair sinks that degrade, never drop silently: a bounded buffer, then a local spill file, drained in order.

`DegradingSink` wraps the delivery of pairs to a store or a broker. Pairs wait
in a bounded in-memory buffer; a thread delivers them in batches. When a
delivery fails (the store or broker is down), that batch and every later one
go to an append-only spill file (fsync'd per batch), and the thread retries
by draining the file from its oldest pair: in order, chunk by chunk, the
drained offset saved after each delivered chunk. A chunk delivered again
after a crash counts nothing twice, because the store write is an upsert on
the dispatch token. When a pair can be neither delivered nor spilled (the
buffer is full, the disk is full) it is dropped, counted by reason and logged.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections import Counter, deque
from pathlib import Path
from typing import Callable, Iterator

from shadow.model import Pair, from_json, to_json

__all__ = ["SpillFile", "DegradingSink", "SpillBusy", "drain"]

log = logging.getLogger("shadow.spill")


class SpillBusy(OSError):
    """Another process (a running proxy) holds the spill file."""


class SpillFile:
    """An append-only JSON Lines file of pairs, with the byte offset drained so far kept beside it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.offset_path = self.path.with_name(self.path.name + ".offset")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_handle = None

    # -- ownership ---------------------------------------------------------------------

    def lock(self) -> None:
        """Own the file (one drainer at a time); raises SpillBusy when someone else does."""
        handle = open(self.path.with_name(self.path.name + ".lock"), "a")  # noqa: SIM115  (held until unlock)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise SpillBusy(f"{self.path} is being drained by another process (a running proxy?)") from None
        self._lock_handle = handle

    def unlock(self) -> None:
        """Give the file up."""
        if self._lock_handle is not None:
            fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
            self._lock_handle.close()
            self._lock_handle = None

    # -- writing -----------------------------------------------------------------------

    def append(self, pairs: list[Pair]) -> None:
        """Append pairs durably (one write and one fsync for the batch); OSError when the disk refuses."""
        data = b"".join(to_json(p) + b"\n" for p in pairs)
        with open(self.path, "ab") as handle:
            start = handle.tell()
            try:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            except OSError:
                try:
                    handle.truncate(start)  # no half-written line for a drain to trip on
                except OSError:
                    pass
                raise

    # -- reading -----------------------------------------------------------------------

    def offset(self) -> int:
        """Bytes already drained."""
        try:
            return int(self.offset_path.read_text() or 0)
        except (OSError, ValueError):
            return 0

    def size(self) -> int:
        """Bytes in the file."""
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def has_pending(self) -> bool:
        """Whether pairs wait in the file."""
        return self.size() > self.offset()

    def read(self, max_pairs: int) -> tuple[list[Pair], int]:
        """Up to max_pairs pairs from the drained offset on, and the offset after them."""
        start = self.offset()
        pairs: list[Pair] = []
        with open(self.path, "rb") as handle:
            handle.seek(start)
            position = start
            for line in handle:
                if not line.endswith(b"\n"):
                    break  # a line still being written
                position += len(line)
                pairs.append(from_json(line, Pair))
                if len(pairs) >= max_pairs:
                    break
        return pairs, position

    def pending(self) -> Iterator[Pair]:
        """Every pair not drained yet, oldest first."""
        with open(self.path, "rb") as handle:
            handle.seek(self.offset())
            for line in handle:
                if line.endswith(b"\n"):
                    yield from_json(line, Pair)

    def commit(self, offset: int) -> None:
        """Record that everything up to offset was delivered; an empty, fully drained file starts again."""
        if offset >= self.size():
            with open(self.path, "wb"):
                pass
            offset = 0
        temporary = self.offset_path.with_name(self.offset_path.name + ".tmp")
        with open(temporary, "w") as handle:
            handle.write(str(offset))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.offset_path)


class DegradingSink:
    """A PairSink delivering in batches from a thread; spilling while delivery fails; draining when it works again."""

    def __init__(self, name: str, deliver: Callable[[list[Pair]], None], spill: SpillFile, *, buffer: int = 10_000,
                 batch: int = 500, max_age: float = 0.25, retry_s: float = 1.0) -> None:
        self.name, self.spill = name, spill
        self._deliver = deliver
        self._buffer, self._batch, self._max_age, self._retry_s = buffer, batch, max_age, retry_s
        # The writer appends and the thread collects every max_age: a deque, not a queue.Queue, whose every put
        # would wake the thread and hand the GIL over (in the proxy, 500 times a second, each one a wait for the
        # event loop). The writer wakes the thread early only when a whole batch is waiting, or to stop it.
        self._pending: deque[Pair] = deque()
        self._wake = threading.Event()
        self._closing = False
        self.delivered = self.spilled = self.drained = 0
        self.dropped: Counter[str] = Counter()
        self.degraded_since: float | None = None
        self._last_try = 0.0
        self._draining = False  # the last chunk drained went through: go on at once
        self._warned: set[str] = set()
        spill.lock()
        if spill.has_pending():  # left by an earlier run (a crash, a store down at shutdown): drain it first
            self.degraded_since = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"{name}-sink", daemon=True)
        self._thread.start()

    @property
    def buffered(self) -> int:
        """Pairs waiting in memory."""
        return len(self._pending)

    def write(self, pair: Pair) -> None:
        """Queue a pair (never blocks); a full buffer drops it, counted and logged."""
        if len(self._pending) >= self._buffer:
            self._drop("buffer_full", 1)
            return
        self._pending.append(pair)
        if len(self._pending) == self._batch:
            self._wake.set()

    def close(self) -> None:
        """Deliver (or spill) what is buffered, then stop; nothing buffered is lost on a clean stop."""
        self._closing = True
        self._wake.set()
        self._thread.join()
        self.spill.unlock()

    # -- the thread ----------------------------------------------------------------------

    def _drop(self, reason: str, n: int) -> None:
        self.dropped[reason] += n
        if reason not in self._warned:  # once per reason, not once per pair
            self._warned.add(reason)
            log.error("%s sink: %d pair(s) dropped: %s (counted in the metrics; later drops are not logged)",
                      self.name, n, reason)

    def _next_batch(self) -> list[Pair]:
        """Up to a batch of the oldest pairs waiting, once max_age has passed, a batch is waiting or a spill drains."""
        if not (self._closing or self._draining or len(self._pending) >= self._batch):
            self._wake.wait(self._max_age)
            self._wake.clear()  # a wake lost to this race is harmless: the length is checked again next time
        take = min(self._batch, len(self._pending))
        return [self._pending.popleft() for _ in range(take)]

    def _run(self) -> None:
        while True:
            closing = self._closing  # read before the batch: whatever was written before close() is in it or later ones
            batch = self._next_batch()
            if batch:
                if self.degraded_since is None and self._try_deliver(batch):
                    self.delivered += len(batch)
                else:
                    self._to_spill(batch)  # behind whatever the file holds already: order is kept
            if self.degraded_since is not None and (self._draining or
                                                    time.monotonic() - self._last_try >= self._retry_s):
                self._drain_chunk()
            if closing and not self._pending:
                break
        while self.degraded_since is not None and self._drain_chunk():
            pass  # closing: deliver what can go now; the rest stays in the file for the next start

    def _try_deliver(self, batch: list[Pair]) -> bool:
        try:
            self._deliver(batch)
            return True
        except Exception as exc:
            self.degraded_since = self._last_try = time.monotonic()
            log.error("%s sink: delivery failed (%s: %s); pairs go to %s until it works again", self.name,
                      type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc) else "", self.spill.path)
            return False

    def _to_spill(self, batch: list[Pair]) -> None:
        try:
            self.spill.append(batch)
            self.spilled += len(batch)
        except OSError as exc:
            self._drop(f"spill_failed: {exc.strerror or type(exc).__name__}", len(batch))

    def _drain_chunk(self) -> bool:
        """Deliver the spill file's oldest chunk; True when it went (and the file had one)."""
        pairs, offset = self.spill.read(self._batch) if self.spill.has_pending() else ([], 0)
        if pairs:
            try:
                self._deliver(pairs)
            except Exception:
                self._draining, self._last_try = False, time.monotonic()
                return False  # still down: try again after retry_s
            self.spill.commit(offset)
            self.drained += len(pairs)
        if self.spill.has_pending():
            self._draining = True
            return True
        if self.degraded_since is not None:
            log.warning("%s sink: delivering again after %.1f s; %d pair(s) drained from %s so far", self.name,
                        time.monotonic() - self.degraded_since, self.drained, self.spill.path)
        self.degraded_since, self._draining = None, False
        return bool(pairs)


def drain(spill: SpillFile, deliver: Callable[[list[Pair]], None], *, chunk: int = 500,
          on_progress: Callable[[int], None] | None = None) -> int:
    """Deliver a spill file's pending pairs, oldest first, recording the offset after each chunk; how many went.

    The caller owns the file (`lock`). A delivery that raises stops the drain where it was.
    """
    drained = 0
    while spill.has_pending():
        pairs, offset = spill.read(chunk)
        if not pairs:
            break
        deliver(pairs)
        spill.commit(offset)
        drained += len(pairs)
        if on_progress is not None:
            on_progress(len(pairs))
    return drained
