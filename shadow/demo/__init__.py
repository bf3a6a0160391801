"""The reference dispatch pair (legacy on SQLite, new in memory) and its trace generator."""

from shadow.demo.legacy import legacy_app
from shadow.demo.new import new_app
from shadow.demo.roster import ZONES
from shadow.demo.serve import serve
from shadow.demo.trace import generate_trace, write_trace

__all__ = ["legacy_app", "new_app", "serve", "generate_trace", "write_trace", "ZONES"]
