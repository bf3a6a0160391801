"""A/A baseline over real HTTP: two legacy reference services given the same commands.

Starts REAL servers: two legacy reference services (each with its own fresh SQLite
file) as subprocesses on free 127.0.0.1 ports (`shadow.demo.run.reference_services`).
"""

from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from adapters.jsonl import write_commands
from rules.noise import BASELINE_FILE
from rules.rulefile import load_rules
from shadow.baseline import run_baseline
from shadow.cli import app
from shadow.config import load_config
from shadow.demo.planted import noise_paths
from shadow.demo.run import demo_config_text, reference_services
from shadow.demo.trace import generate_trace
from shadow.errors import ShadowError

pytestmark = pytest.mark.integration


def test_paths_that_differ_between_two_legacies_become_noise_rules(tmp_path) -> None:
    with reference_services(tmp_path, ("legacy", "legacy")) as (first, second):
        port = int(first.rsplit(":", 1)[1])
        (tmp_path / "shadow.toml").write_text(demo_config_text(port, 1))
        config = load_config(tmp_path / "shadow.toml")
        result = asyncio.run(run_baseline(generate_trace(400, seed=9), config, second_url=second, sample=300,
                                          rules_folder=config.store.rules))
    assert result.pairs == 300
    # Only ids and wall-clock stamps differ between two runs of the same code; never a behaviour.
    assert set(result.noisy) <= noise_paths()
    assert {"state.created_at", "state.updated_at"} <= set(result.noisy)
    declared = {n.path for n in load_rules(config.store.rules).noise}
    assert declared == set(result.noisy) and result.file == config.store.rules / BASELINE_FILE


def test_baseline_command_and_its_refusals(tmp_path) -> None:
    trace = tmp_path / "trace.jsonl"
    write_commands(trace, generate_trace(120, seed=4))
    with reference_services(tmp_path, ("legacy", "legacy")) as (first, second):
        port = int(first.rsplit(":", 1)[1])
        (tmp_path / "shadow.toml").write_text(demo_config_text(port, 1))
        result = CliRunner().invoke(app, ["baseline", str(trace), "--second", second, "--sample", "100",
                                          "-c", str(tmp_path / "shadow.toml")])
        assert result.exit_code == 0, result.output
        assert "noise path(s) written to" in result.output
        same = CliRunner().invoke(app, ["baseline", str(trace), "--second", first, "-c", str(tmp_path / "shadow.toml")])
        assert same.exit_code == 1 and "second legacy instance" in same.output
    with pytest.raises(ShadowError):
        asyncio.run(run_baseline([], load_config(tmp_path / "shadow.toml"), second_url=first,
                                 rules_folder=tmp_path / "rules"))
