"""shadow.toml: validated once, refused with file + key path + reason, secrets never shown."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shadow.cli import app
from shadow.config import load_config, parse_config
from shadow.errors import ConfigError
from shadow.secrets import SecretFilter, mask_url

MINIMAL = """
[targets.legacy]
url = "http://127.0.0.1:8081"
[targets.new]
url = "http://127.0.0.1:8082"
"""


def refused(text: str, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="shadow.toml", **kwargs)
    assert info.value.exit_code == 2
    return str(info.value)


def test_minimal_config_gets_defaults() -> None:
    config = parse_config(MINIMAL)
    assert config.targets["legacy"].timeout == 5.0
    assert config.routing.default == "shadow"
    assert config.store.url.reveal() == "sqlite:///shadow.db"


def test_demo_config_declares_every_demo_command(demo_config) -> None:
    kinds = {r.command for r in demo_config.routes}
    assert kinds == {"create_load", "assign_load", "reassign_load", "cancel_load", "update_stop_eta"}
    assert demo_config.route_for("update_stop_eta").params == ["load_id", "seq"]


def test_syntax_error_names_file_and_line() -> None:
    message = refused("[targets.legacy\nurl = 1")
    assert "shadow.toml" in message and "line 1" in message


def test_wrong_value_names_the_key_path_and_reason() -> None:
    message = refused(MINIMAL + '\n[[routes]]\nmatch = "POST /a"\ncommand = "a"\n[[routes]]\nmatch = "FETCH /b"\ncommand = "b"')
    assert "shadow.toml: routes[1].match: method 'FETCH' is not one of" in message


def test_unknown_key_is_refused() -> None:
    message = refused(MINIMAL + "\n[store]\nurll = 'sqlite://'")
    assert "store.urll: unknown key" in message


def test_missing_target_is_refused() -> None:
    assert "[targets.new] is missing" in refused('[targets.legacy]\nurl = "http://a:1"')


def test_timeout_must_be_positive() -> None:
    assert "targets.legacy.timeout" in refused(MINIMAL.replace('8081"', '8081"\ntimeout = 0'))


def test_duplicate_route_is_refused() -> None:
    route = '\n[[routes]]\nmatch = "POST /a"\ncommand = "a"'
    assert "declared twice" in refused(MINIMAL + route + route.replace('"a"', '"b"'))


def test_variables_are_interpolated_from_the_environment() -> None:
    text = MINIMAL + '\n[store]\nurl = "postgresql+psycopg://shadow:${PGPASS}@db/${DB:-catalogue}"'
    config = parse_config(text, env={"PGPASS": "s3cret-pw"})
    assert config.store.url.reveal() == "postgresql+psycopg://shadow:s3cret-pw@db/catalogue"


def test_missing_variable_names_it_and_the_key() -> None:
    message = refused(MINIMAL + '\n[store]\nurl = "postgresql://u:${NOPE}@h/db"', env={})
    assert "store.url: environment variable NOPE is not set" in message


def test_escaped_variable_stays_literal() -> None:
    config = parse_config(MINIMAL.replace("[targets.new]", '[targets.legacy.headers]\nX = "$${KEEP}"\n[targets.new]'),
                          env={})
    assert config.targets["legacy"].headers["X"] == "${KEEP}"


def test_relative_store_and_rules_are_taken_from_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "shadow.toml").write_text(MINIMAL)
    config = load_config(tmp_path / "shadow.toml")
    assert config.store.url.reveal() == f"sqlite:///{tmp_path.resolve()}/shadow.db"
    assert config.store.rules == tmp_path.resolve() / "rules"


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.toml")


PASSWORD = "hunter2-very-secret"


def test_dsn_password_never_shows_in_repr_dump_or_logs(caplog) -> None:
    text = MINIMAL + '\n[store]\nurl = "postgresql+psycopg://shadow:${PGPASS}@db:5432/cat"'
    config = parse_config(text, env={"PGPASS": PASSWORD})
    assert PASSWORD not in repr(config) and PASSWORD not in str(config.store.url)
    assert PASSWORD not in config.model_dump_json()
    assert config.store.url.masked == "postgresql+psycopg://shadow:***@db:5432/cat"

    logger = logging.getLogger("shadow.test")
    handler = logging.StreamHandler()
    handler.addFilter(SecretFilter())
    caplog.handler.addFilter(SecretFilter())
    logger.warning("connecting to %s", config.store.url.reveal())
    logger.warning("the password is %s", PASSWORD)
    try:
        raise RuntimeError(f"connection to {config.store.url.reveal()} failed")
    except RuntimeError:
        logger.exception("boom")
    logged = caplog.text
    assert PASSWORD not in logged
    assert "shadow:***@db" in logged


def test_config_check_output_masks_the_password(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "shadow.toml"
    path.write_text(MINIMAL + '\n[store]\nurl = "postgresql+psycopg://shadow:${PGPASS}@db/cat"\n'
                    '[targets.legacy.headers]\nAuthorization = "Bearer ${API_TOKEN}"')
    monkeypatch.setenv("PGPASS", PASSWORD)
    monkeypatch.setenv("API_TOKEN", "tok-abcdef-123456")
    runner = CliRunner()
    for args in (["config", "check", "-c", str(path)], ["config", "check", "-c", str(path), "--json"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert PASSWORD not in result.output and "tok-abcdef-123456" not in result.output
        assert "***" in result.output


def test_bad_config_exits_2_with_one_red_line_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "shadow.toml"
    path.write_text(MINIMAL + "\n[routing]\ndefault = 'sideways'")
    result = CliRunner().invoke(app, ["config", "check", "-c", str(path)])
    assert result.exit_code == 2
    assert "routing.default" in result.output and "Traceback" not in result.output


def test_mask_url_keeps_everything_but_the_password() -> None:
    assert mask_url("mssql+pyodbc://sa:P%40ss@sql.internal:1433/dispatch?driver=FreeTDS") == \
        "mssql+pyodbc://sa:***@sql.internal:1433/dispatch?driver=FreeTDS"
    assert mask_url("sqlite:///shadow.db") == "sqlite:///shadow.db"


def test_a_target_url_with_user_information_is_refused_without_showing_the_password() -> None:
    message = refused(MINIMAL.replace("http://127.0.0.1:8081", "http://ops:hunter2@127.0.0.1:8081"))
    assert "targets.legacy.url" in message and "user information" in message and "headers" in message
    assert "hunter2" not in message
