"""One exception hierarchy for everything a person should read (STYLE.md, 5).

The CLI turns a ShadowError into one red line and its exit code, never a
traceback (unless --debug). Exit codes are documented in docs/reference/exit-codes.md.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ShadowError", "ConfigError", "InputError", "TargetError", "StoreError", "read_config_text"]


class ShadowError(Exception):
    """Base of every error meant for a person: says what, where, and what to do."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  → {self.hint}" if self.hint else self.message


class ConfigError(ShadowError):
    """A config or rule file that does not validate: file, key path, reason."""

    exit_code = 2


class InputError(ShadowError):
    """A trace or pairs file that cannot be read: file, line, reason."""

    exit_code = 2


class TargetError(ShadowError):
    """A target (legacy or new system) cannot be reached or used."""

    exit_code = 3


class StoreError(ShadowError):
    """The catalogue store cannot be opened or written."""

    exit_code = 4


def read_config_text(path: Path, what: str, hint: str) -> str:
    """A config-like file's text (UTF-8), or a ConfigError naming it: 'no such <what>' with the hint, or why not."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what}", hint=hint) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
