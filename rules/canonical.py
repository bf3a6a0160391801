"""One byte string per JSON meaning: the comparator's notion of equality."""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["canonical_bytes"]

_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def canonical_bytes(document: Any) -> bytes:
    """Keys sorted, compact, numbers as JSON writes them."""
    try:
        return orjson.dumps(document, option=_OPTS)
    except TypeError:
        # orjson refuses integers beyond 64 bits; the standard library writes them exactly.
        return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False).encode()
