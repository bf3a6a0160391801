"""The docs site: every key, command and option is described, the examples validate, the site builds strictly.

The references are generated from the code (shadow/docgen.py) on every build, so they cannot drift; what can
go missing is a description, which these tests name. The build runs `mkdocs build --strict` in a temporary
folder (a few seconds): a broken link or anchor, or a page left out of the navigation, fails it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from cutover.canary_plan import parse_plan
from reports.tables import COLUMNS
from rules.rulefile import parse_rule_file
from shadow import docgen
from shadow.config import parse_config

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs"
_TITLED = re.compile(r'^```toml title="([^"]+)"\n(.*?)^```', re.MULTILINE | re.DOTALL)


class _AnyEnv(Mapping[str, str]):
    """An environment in which every ${VAR} of an example is set."""

    def __getitem__(self, name: str) -> str:
        return "docs-example-value-7f3a9c"  # registered as a secret: a value no other test prints

    def __contains__(self, name: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def test_every_config_rule_file_and_plan_key_has_a_description() -> None:
    missing = docgen.undocumented_fields()
    assert not missing, "add description= to:\n" + "\n".join(missing)


def test_every_command_option_and_argument_has_help_text() -> None:
    missing = docgen.undocumented_commands()
    assert not missing, "add help text to:\n" + "\n".join(missing)


def test_the_config_reference_lists_every_section_and_key() -> None:
    page = docgen.config_reference()
    for heading in ("`[targets.legacy], [targets.new]`", "`[[routes]]`", "`[routes.state]`", "`[routing]`",
                    "`[routing.commands.<name>]`", "`[store]`", "`[proxy]`", "`[kafka]`", "`[tables.<name>]`",
                    "`[cutover.gates]`", "`[cutover.guard]`", "`[ui]`"):
        assert f"## {heading}" in page, heading
    sections = {heading: body for heading, body in re.findall(r"^## (.+?) \{#.*?\}\n(.*?)(?=^## |\Z)", page,
                                                                re.MULTILINE | re.DOTALL)}
    keys = {heading: re.findall(r"^\| \[?`([a-z_]+)`", body, re.MULTILINE) for heading, body in sections.items()}
    assert {"url", "timeout", "health", "state", "headers", "kafka"} <= set(keys["`[targets.legacy], [targets.new]`"])
    assert {"match", "command", "keys", "zone", "read", "state", "sample"} <= set(keys["`[[routes]]`"])
    assert "trip_after_s" in keys["`[cutover.guard]`"] and "key" in keys["`[tables.<name>]`"]
    assert "source" not in keys["Top level of `shadow.toml`"]  # Config.source is internal
    state_row = next(line for line in sections["`[targets.legacy], [targets.new]`"].splitlines()
                     if line.startswith("| `state`"))
    assert "**secret**" in state_row


def test_the_cli_reference_has_every_command_with_usage_and_options() -> None:
    page = docgen.cli_reference()
    for title in ("shadow replay", "shadow compare", "shadow quirks triage", "shadow cutover run", "shadow config check"):
        assert f"`{title}`" in page, title
    assert "shadow quirks triage [OPTIONS] QUIRK_IDS..." in page
    assert "| `--min-match-rate` |" in page
    assert "\\\\[" not in page  # help text's rich-markup escape (\\[store]) is shown as [store]


def test_the_report_page_documents_every_exported_column() -> None:
    page = (DOCS / "reference" / "reports.md").read_text(encoding="utf-8")
    assert "<!-- generated: report-columns -->" in page
    generated = docgen.report_columns()
    for table, columns in COLUMNS.items():
        section = generated.split(f"`{table}`:\n", 1)[1].lstrip("\n").split("\n\n", 1)[0]
        documented = [line.split("`")[1] for line in section.splitlines() if line.startswith("| `")]
        assert documented == [c.name for c in columns], table


def _titled_examples() -> list[tuple[str, str, str]]:
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        for title, text in _TITLED.findall(page.read_text(encoding="utf-8")):
            found.append((str(page.relative_to(DOCS)), title, text))
    return found


@pytest.mark.parametrize(("page", "title", "text"), _titled_examples(),
                         ids=[f"{p}:{t}" for p, t, _ in _titled_examples()])
def test_every_titled_example_validates(page: str, title: str, text: str) -> None:
    source = f"{page} ({title})"
    if title == "shadow.toml":
        parse_config(text, source=source, env=_AnyEnv())
    elif title.startswith("rules/"):
        parse_rule_file(text, source)
    elif title == "canary.toml":
        parse_plan(text, source=source)
    else:
        pytest.fail(f"{source}: a titled TOML example must be shadow.toml, rules/….toml or canary.toml")


def test_the_examples_cover_each_file_kind() -> None:
    titles = {title for _, title, _ in _titled_examples()}
    assert "shadow.toml" in titles and "canary.toml" in titles and any(t.startswith("rules/") for t in titles)


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    try:
        import material  # noqa: F401
        import mkdocs  # noqa: F401
    except ImportError:
        pytest.fail("the docs extra is not installed: `make install`, or pip install -e '.[dev,docs]'")
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-f", str(ROOT / "mkdocs.yml"),
                          "-d", str(tmp_path / "site")], capture_output=True, text=True, cwd=ROOT, timeout=240,
                         env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert run.returncode == 0, run.stdout + run.stderr
    for page in ("index.html", "reference/cli.html", "reference/config.html", "reference/rules.html"):
        assert (tmp_path / "site" / page).is_file(), page
    html = (tmp_path / "site" / "reference" / "config.html").read_text(encoding="utf-8")
    assert "fonts.googleapis.com" not in html  # the site works offline
