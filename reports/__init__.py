"""Read-only views of the catalogue: the report (terminal, HTML, tables, JUnit gate), the entity audit.

`from reports import frames, build_report, Scope` in a notebook; names load on first use,
so importing one view does not import pandas and pyarrow for the others.
"""

from importlib import import_module
from typing import Any

_HOMES = {"build_report": "reports.query", "Scope": "reports.query", "Report": "reports.query",
          "parse_when": "reports.query", "frames": "reports.tables", "export": "reports.tables",
          "entity_history": "reports.entity", "summarise": "reports.summary"}

__all__ = list(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'reports' has no attribute {name!r}")
    return getattr(import_module(_HOMES[name]), name)
