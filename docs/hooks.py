"""MkDocs hooks: the generated pages of the site, built from the code on every `mkdocs build` (shadow/docgen.py).

Whole pages are added as files; a hand-written page can hold `<!-- generated: NAME -->` on a line of its own,
replaced by the generated Markdown of that name.
"""

from __future__ import annotations

import re
from typing import Any

from mkdocs.structure.files import File, Files

from shadow import docgen

PAGES = {
    "reference/cli.md": docgen.cli_reference,
    "reference/canary-plan.md": docgen.canary_plan_reference,
    "reference/reference-pair.md": docgen.reference_pair,
}
SNIPPETS = {
    "report-columns": docgen.report_columns,
    "transition-classes": docgen.transition_classes,
    "metrics": docgen.metrics_reference,
    "config-keys": lambda: docgen.config_reference(whole_page=False),
    "rule-file-keys": lambda: docgen.rules_reference(whole_page=False),
    "performance": docgen.performance,
}
_MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.MULTILINE)


def on_files(files: Files, config: Any) -> Files:
    """Add the generated pages."""
    for path, make in PAGES.items():
        files.append(File.generated(config, path, content=make()))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Replace each generated-snippet marker of a hand-written page."""
    def expand(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in SNIPPETS:
            raise ValueError(f"{page.file.src_uri}: no generated snippet {name!r} (known: {', '.join(SNIPPETS)})")
        return SNIPPETS[name]()

    return _MARKER.sub(expand, markdown)
