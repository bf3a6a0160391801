"""Replay → compare → catalogue over the reference pair: every planted quirk is catalogued.

Starts REAL servers: the reference pair's legacy (SQLite) and new services as
subprocesses on free 127.0.0.1 ports (`shadow.demo.run.reference_pair`).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.jsonl import JsonlPairs
from reports.summary import summarise
from rules.catalogue import open_catalogue
from shadow.config import load_config
from shadow.demo.planted import TRANSITION_CLASSES, noise_paths, planted_quirks
from shadow.demo.run import demo_config_text, reference_pair
from shadow.demo.trace import generate_trace
from shadow.pipeline import compare_into
from shadow.replay import replay

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def catalogued(tmp_path_factory):
    """A 2,000-command trace replayed against the reference pair and compared."""
    workdir = tmp_path_factory.mktemp("e2e")
    with reference_pair(workdir) as (legacy_url, new_url):
        ports = [int(u.rsplit(":", 1)[1]) for u in (legacy_url, new_url)]
        (workdir / "shadow.toml").write_text(demo_config_text(*ports))
        config = load_config(workdir / "shadow.toml")
        stats = asyncio.run(replay(generate_trace(2000, seed=5), config, JsonlPairs(config.replay.pairs)))
    catalogue = open_catalogue(config.store.url.reveal())
    stored = compare_into(JsonlPairs(config.replay.pairs), catalogue)
    yield stats, stored, catalogue
    catalogue.close()


def test_every_command_was_answered_by_both_targets(catalogued) -> None:
    stats, stored, catalogue = catalogued
    assert stats.pairs == 2000
    assert stats.statuses["legacy"]["timeout"] == stats.statuses["new"]["timeout"] == 0
    tokens = {c.token for c in generate_trace(2000, seed=5)}
    assert len(tokens) < 2000  # the trace retries some commands with their token
    assert summarise(catalogue).overall.pairs == stored.pairs - stored.replaced == len(tokens)


@pytest.mark.parametrize("planted", planted_quirks(), ids=lambda q: q.id)
def test_planted_quirk_is_catalogued_at_its_documented_path(catalogued, planted) -> None:
    _, _, catalogue = catalogued
    classes = TRANSITION_CLASSES[planted.transition]
    hits = [q for q in catalogue.quirks() if q.pattern in planted.paths and q.transition in classes]
    assert hits, f"{planted.id}: no quirk at {planted.paths} with class {classes}"
    assert {q.command for q in hits} <= set(planted.commands)


def test_every_catalogued_difference_is_planted_or_noise(catalogued) -> None:
    _, _, catalogue = catalogued
    documented = {p for q in planted_quirks() for p in q.paths} | noise_paths()
    assert {q.pattern for q in catalogue.quirks()} <= documented


def test_comparing_again_changes_no_count(catalogued, tmp_path: Path) -> None:
    _, _, catalogue = catalogued
    before = ([(q.id, q.differences, q.pairs) for q in catalogue.quirks()], summarise(catalogue).to_dict())
    pairs = Path(catalogue.engine.url.database).with_name("pairs.jsonl")
    again = compare_into(JsonlPairs(pairs), catalogue)
    assert again.replaced == again.pairs
    assert ([(q.id, q.differences, q.pairs) for q in catalogue.quirks()], summarise(catalogue).to_dict()) == before


def test_shadow_demo_run_end_to_end(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "shadow", "demo", "run", "--commands", "400", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr
    assert "overall match rate" in result.stdout and "Quirks: top" in result.stdout
    assert (tmp_path / "shadow.db").exists() and len((tmp_path / "pairs.jsonl").read_text().splitlines()) == 400
