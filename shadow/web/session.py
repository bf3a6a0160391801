"""Who may decide on the triage page: sign-in with the token from the environment, sessions, CSRF, last visit.

Reading needs nothing. Deciding needs a session that signed in with the token the CLI read from the
environment (compared in constant time). Sessions live in this process's memory, keyed by a random id held
in an HttpOnly, SameSite=Strict cookie; each carries its own CSRF token, which every form posts back and
which is compared in constant time too. A restart signs everybody out, which is what a per-process secret
should do. The store is bounded: anonymous sessions (made by the sign-in form, for its CSRF token) are the
first to go when it is full.

The viewer's last visit rides in its own cookie (two times), so quirks first seen since then can be marked.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone

__all__ = ["Session", "Sessions", "SESSION_COOKIE", "VISIT_COOKIE", "token_matches", "Visits", "SignInThrottle"]

SESSION_COOKIE = "shadow_session"
VISIT_COOKIE = "shadow_visit"
_MAX_SESSIONS = 10_000


def token_matches(given: str, expected: str | None) -> bool:
    """The sign-in check: constant time in the token's content; never true when no token is configured."""
    if not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


@dataclass
class Session:
    """One browser's session: its CSRF token, and who signed in (None while anonymous)."""

    id: str
    csrf: str
    expires: float
    user: str | None = None
    flash: list[str] = field(default_factory=list)

    @property
    def signed_in(self) -> bool:
        """Whether this session may decide."""
        return self.user is not None and time.time() < self.expires

    def csrf_ok(self, given: str | None) -> bool:
        """Whether a form's CSRF token is this session's (constant time)."""
        return bool(given) and hmac.compare_digest(given.encode("utf-8"), self.csrf.encode("utf-8"))  # type: ignore[union-attr]


class Sessions:
    """The in-memory session store (bounded; expired sessions are dropped as they are met)."""

    def __init__(self, lifetime_s: float, *, anonymous_lifetime_s: float = 3600.0, limit: int = _MAX_SESSIONS) -> None:
        self.lifetime_s = lifetime_s
        self.anonymous_lifetime_s = anonymous_lifetime_s
        self.limit = limit
        self._store: OrderedDict[str, Session] = OrderedDict()

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id, if any."""
        if not session_id:
            return None
        session = self._store.get(session_id)
        if session is None:
            return None
        if time.time() >= session.expires:
            del self._store[session_id]
            return None
        return session

    def _new(self, user: str | None) -> Session:
        while len(self._store) >= self.limit:
            anonymous = next((k for k, s in self._store.items() if s.user is None), None)
            del self._store[anonymous if anonymous is not None else next(iter(self._store))]
        lifetime = self.lifetime_s if user is not None else self.anonymous_lifetime_s
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), time.time() + lifetime, user)
        self._store[session.id] = session
        return session

    def anonymous(self) -> Session:
        """A session for someone about to sign in (it carries the sign-in form's CSRF token)."""
        return self._new(None)

    def sign_in(self, previous: Session | None, user: str) -> Session:
        """A fresh session for a signed-in user; the previous one (and its id) is dropped."""
        if previous is not None:
            self._store.pop(previous.id, None)
        return self._new(user)

    def sign_out(self, session: Session) -> None:
        """Forget a session."""
        self._store.pop(session.id, None)


class SignInThrottle:
    """At most `attempts` failed sign-ins per client address in `window_s`: guessing the token stays slow."""

    def __init__(self, attempts: int = 10, window_s: float = 300.0) -> None:
        self.attempts, self.window_s = attempts, window_s
        self._failures: dict[str, list[float]] = {}

    def blocked(self, client: str) -> bool:
        """Whether this client has failed too often lately."""
        now = time.monotonic()
        recent = [t for t in self._failures.get(client, []) if now - t < self.window_s]
        if recent:
            self._failures[client] = recent
        else:
            self._failures.pop(client, None)
        return len(recent) >= self.attempts

    def failed(self, client: str) -> None:
        """Record a failed attempt."""
        if len(self._failures) > _MAX_SESSIONS:
            self._failures.clear()
        self._failures.setdefault(client, []).append(time.monotonic())


@dataclass(frozen=True)
class Visits:
    """The viewer's visits from the visit cookie: `since` is when the previous visit ended (None on a first one)."""

    since: datetime | None
    cookie: str

    # A gap this long between two pages starts a new visit.
    GAP_S = 30 * 60

    @classmethod
    def read(cls, value: str | None, now: float | None = None) -> "Visits":
        """Parse the cookie ("previous:last" epoch seconds) and roll it for this page view."""
        now = time.time() if now is None else now
        previous = last = None
        try:
            a, _, b = (value or "").partition(":")
            previous = float(a) if a else None
            last = float(b) if b else None
        except ValueError:
            previous = last = None
        if last is not None and now - last > cls.GAP_S:
            previous = last  # a new visit: what was seen by the end of the last one is "before"
        since = datetime.fromtimestamp(previous, timezone.utc) if previous is not None else None
        return cls(since, f"{'' if previous is None else int(previous)}:{int(now)}")
