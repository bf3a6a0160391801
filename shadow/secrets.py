"""Keeping secrets out of every log line and every printed word.

Secrets reach shadow-harness only through `${VAR}` interpolation and through
passwords inside DSNs. Both are registered here when the config is loaded;
`redact` replaces them wherever text leaves the process (log records, CLI
output, error messages), and `mask_url` hides a URL's password for display.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import urlsplit, urlunsplit

__all__ = ["register_secret", "redact", "mask_url", "SecretFilter", "install_log_filter"]

_MASK = "***"
_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None
# URL userinfo with a password: scheme://user:PASSWORD@host
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^@\s]+)(?P<tail>@)")


def register_secret(value: str | None) -> None:
    """Remember a value that must never be printed or logged (short values are ignored)."""
    global _pattern
    # Three characters or fewer would mask ordinary words; nobody uses such a password.
    if not value or len(value) < 4:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        alternatives = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in alternatives))


def redact(text: str) -> str:
    """The text with every registered secret and every URL password masked."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{_MASK}{m['tail']}", text)
    pattern = _pattern
    return pattern.sub(_MASK, text) if pattern is not None else text


def mask_url(url: str) -> str:
    """A URL fit to display: its password replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    if parts.password is None:
        return redact(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:{_MASK}@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return redact(urlunsplit(parts._replace(netloc=netloc)))


class SecretFilter(logging.Filter):
    """A logging filter that masks secrets in the formatted message of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            # Tracebacks are formatted later from exc_info; format now, redacted.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def install_log_filter(logger: logging.Logger | None = None) -> None:
    """Attach the secret filter to every handler of a logger (root by default)."""
    target = logger or logging.getLogger()
    flt = SecretFilter()
    for handler in target.handlers:
        if not any(isinstance(f, SecretFilter) for f in handler.filters):
            handler.addFilter(flt)
