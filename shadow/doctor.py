"""`shadow doctor`: is everything shadow.toml names reachable and sound? One line per check, a fix per failure.

Checks, in order: the config validates; each target answers its health path (or, over
Kafka, its topics exist); each state database connects and every read-back query and
reconciled table is accepted by it; the Kafka broker and topics, when configured; the
catalogue is at the latest Alembic revision; every rule file validates; the admin token
is set where the admin endpoints are on; nothing waits in the spill folder. A check
never changes anything: no catalogue is created or migrated, no topic made, no row written.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping

import sqlalchemy as sa

from shadow.config import Config, TableConfig, load_config
from shadow.errors import ShadowError
from shadow.secrets import mask_url

__all__ = ["Check", "diagnose", "head_revision", "catalogue_revision"]

Status = Literal["ok", "warn", "fail", "skip"]
MIN_TOKEN_CHARS = 16


@dataclass(frozen=True)
class Check:
    """One line of the doctor's table: what was checked, how it went, and what to do when it failed."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        """For --json."""
        return asdict(self)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return mask_url(text.splitlines()[0]) if text else type(exc).__name__


# -- targets ----------------------------------------------------------------------

def _http_health(name: str, url: str, health: str, timeout: float) -> Check:
    target = url + (health if health.startswith("/") else "/" + health)
    shown = mask_url(target)
    request = urllib.request.Request(target, headers={"User-Agent": "shadow-doctor", "X-Shadow": "doctor"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 (http(s) only: validated)
            return Check(f"target {name}", "ok", f"{shown} answered {answer.status}")
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:
            return Check(f"target {name}", "fail", f"{shown} answered {exc.code}",
                         f"the {name} service is up but failing: look at its logs")
        return Check(f"target {name}", "warn", f"{shown} answered {exc.code}: the service is reachable, its "
                                               f"health path is not",
                     f"set [targets.{name}] health to a GET path that answers 2xx (the guard probes it)")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Check(f"target {name}", "fail", f"{shown} did not answer: {_first_line(reason)}",  # type: ignore[arg-type]
                     f"start the {name} service, or fix [targets.{name}] url (host and port)")


def _kafka_topics(bootstrap: str, timeout: float) -> set[str]:
    from kafka.admin import KafkaAdminClient

    from adapters.kafka import check_brokers

    check_brokers(bootstrap, timeout=timeout)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="shadow-doctor",
                             request_timeout_ms=int(timeout * 1000) + 2000)
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def _kafka(name: str, bootstrap: str, wanted: Mapping[str, str], timeout: float, fix_topic: str) -> Check:
    try:
        topics = _kafka_topics(bootstrap, timeout)
    except Exception as exc:  # kafka-python raises many kinds; any means the broker cannot be used
        return Check(name, "fail", f"brokers {bootstrap}: {_first_line(exc)}",
                     "start the brokers, or fix the bootstrap HOST:PORT in the config")
    missing = [f"{topic} ({what})" for topic, what in wanted.items() if topic not in topics]
    if missing:
        return Check(name, "warn", f"brokers {bootstrap} answer; topics missing: {', '.join(missing)}", fix_topic)
    return Check(name, "ok", f"brokers {bootstrap}; topics {', '.join(wanted)}")


def check_targets(config: Config, timeout: float) -> Iterator[Check]:
    """Each target answers: its health path over HTTP, or its topics over Kafka."""
    for name in ("legacy", "new"):
        target = config.targets[name]  # type: ignore[index]
        yield _http_health(name, target.url, target.health, timeout)
        if target.kafka is not None:
            yield _kafka(f"target {name} kafka", target.kafka.bootstrap,
                         {target.kafka.commands: "commands", target.kafka.outcomes: "outcomes"}, timeout,
                         f"start the {name} engine in Kafka mode: it creates its topics")


# -- state databases --------------------------------------------------------------

def _probe(statement: sa.Executable) -> sa.Select[Any]:
    """The statement as a subquery that returns no row but must still be planned: its tables and columns must exist."""
    inner = statement.columns().subquery("doctor_probe") if isinstance(statement, sa.TextClause) \
        else statement.subquery("doctor_probe")  # type: ignore[attr-defined]
    return sa.select(sa.literal_column("*")).select_from(inner).where(sa.false())


def _table_probe(table: TableConfig, side: str) -> sa.Executable:
    """The reconciled table's key columns, as this side names them."""
    name = table.legacy if side == "legacy" else table.new
    schema, _, bare = name.rpartition(".")
    columns = [table.legacy_name(k) if side == "legacy" else k for k in table.key]
    return sa.select(*[sa.column(c) for c in columns]).select_from(sa.table(bare, schema=schema or None))


def check_state(config: Config, timeout: float) -> Iterator[Check]:
    """Each state database connects, and accepts every read-back statement and reconciled table."""
    for side in ("legacy", "new"):
        dsn = config.targets[side].state  # type: ignore[index]
        if dsn is None:
            continue
        name = f"state {side}"
        url = dsn.reveal()
        try:
            engine = _engine(url, timeout)
        except Exception as exc:  # a missing driver, a bad URL
            yield Check(name, "fail", f"{dsn.masked}: {_first_line(exc)}",
                        "fix the URL; for mssql+pyodbc install unixodbc and tdsodbc and add ?driver=FreeTDS")
            continue
        try:
            with engine.connect() as conn:
                yield Check(name, "ok", f"{dsn.masked} connects ({engine.dialect.name})")
                yield from _statements(conn, config, side)
        except sa.exc.DBAPIError as exc:
            yield Check(name, "fail", f"{dsn.masked}: {_first_line(exc)}",
                        f"check host, port, database, user and password in [targets.{side}] state "
                        f"(a password belongs in ${{VAR}}, from the environment)")
        finally:
            engine.dispose()


def _engine(url: str, timeout: float) -> sa.Engine:
    if url.startswith("sqlite"):
        database = sa.make_url(url).database
        if database and database != ":memory:" and not Path(database).exists():
            raise ShadowError(f"no such SQLite file {database}")
        return sa.create_engine(url)
    options: dict[str, Any] = {}
    if url.startswith("postgresql"):
        options["connect_args"] = {"connect_timeout": max(1, int(timeout))}
    elif url.startswith("mssql"):
        options["connect_args"] = {"timeout": max(1, int(timeout))}
    return sa.create_engine(url, **options)


def _statements(conn: sa.Connection, config: Config, side: str) -> Iterator[Check]:
    from adapters.sql import build_statement

    probes: list[tuple[str, sa.Executable, str]] = []
    for index, route in enumerate(config.routes):
        source = getattr(route.state, side) if route.state is not None else None
        if source is not None:
            probes.append((f"read-back {route.command} ({side})", build_statement(source),
                           f"fix routes[{index}].state.{side} ({route.match} → {route.command})"))
    for table_name, table in config.tables.items():
        probes.append((f"table {table_name} ({side})", _table_probe(table, side),
                       f"fix [tables.{table_name}] {side} (the table's name) or key (its key columns)"))
    for name, statement, fix in probes:
        probe = _probe(statement)
        transaction = conn.begin()
        try:
            conn.execute(probe, {key: None for key in probe.compile(dialect=conn.dialect).params})
            yield Check(name, "ok", "accepted by the database")
        except sa.exc.StatementError as exc:
            yield Check(name, "fail", _first_line(exc), fix)
        finally:
            transaction.rollback()


# -- Kafka, catalogue, rules, tokens, spill -----------------------------------------

def check_kafka(config: Config, timeout: float) -> Iterator[Check]:
    """The broker answers and the pairs topics exist (the first comparator worker creates them)."""
    if not config.kafka.bootstrap:
        return
    from shadow.workers import dead_topic, retry_topic

    topic = config.kafka.pairs
    yield _kafka("kafka", config.kafka.bootstrap, {topic: "pairs", retry_topic(topic): "retries",
                                                   dead_topic(topic): "dead letters"}, timeout,
                 f"start a comparator worker once (`shadow compare --from-kafka {topic}`): it creates them")


def head_revision() -> str:
    """The newest catalogue schema revision this version of shadow-harness knows."""
    from alembic.script import ScriptDirectory
    from alembic.config import Config as AlembicConfig

    from rules.catalogue import _MIGRATIONS

    config = AlembicConfig()
    config.set_main_option("script_location", str(_MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def catalogue_revision(url: str) -> str | None:
    """The catalogue's schema revision, None when it has none (empty database); never creates or migrates."""
    from alembic.runtime.migration import MigrationContext

    engine = _engine(url, 5.0)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def check_catalogue(config: Config) -> Check:
    """The catalogue is reachable and at the latest revision."""
    url = config.store.url.reveal()
    shown = config.store.url.masked
    head = head_revision()
    try:
        current = catalogue_revision(url)
    except ShadowError:
        return Check("catalogue", "warn", f"{shown} does not exist yet",
                     "`shadow catalogue upgrade` creates it (so does the first `shadow compare`)")
    except Exception as exc:  # sqlalchemy errors, a driver missing
        return Check("catalogue", "fail", f"{shown}: {_first_line(exc)}",
                     "check [store] url: host, port, database, user and password")
    if current == head:
        return Check("catalogue", "ok", f"{shown} at revision {head} (latest)")
    if current is None:
        return Check("catalogue", "fail", f"{shown} is empty (no schema revision)",
                     "`shadow catalogue upgrade` creates the tables")
    return Check("catalogue", "fail", f"{shown} at revision {current}, the latest is {head}",
                 "`shadow catalogue upgrade` migrates it (stop the proxies and workers of an older version first); a "
                 "revision this version does not know means the catalogue is newer: upgrade shadow-harness")


def check_rules(config: Config) -> Iterator[Check]:
    """Every rule file validates on its own, and no quirk has two verdicts."""
    from rules.rulefile import parse_rule_file

    folder = config.store.rules
    if not folder.exists():
        yield Check("rules", "warn", f"{folder} does not exist", f"mkdir {folder} (triage writes verdicts there)")
        return
    if not folder.is_dir():
        yield Check("rules", "fail", f"{folder} is a file", "point [store] rules at a folder")
        return
    files = sorted(folder.glob("*.toml"))
    failures = 0
    verdicts: dict[str, Path] = {}
    for path in files:
        try:
            rule = parse_rule_file(path.read_text(encoding="utf-8"), str(path))
        except (ShadowError, OSError, UnicodeDecodeError) as exc:
            failures += 1
            yield Check(f"rule file {path.name}", "fail", str(getattr(exc, "message", exc)).splitlines()[0],
                        "fix the line named; `shadow rules check` re-validates")
            continue
        if rule.quirk is not None:
            if rule.quirk.id in verdicts:
                failures += 1
                yield Check(f"rule file {path.name}", "fail", f"quirk {rule.quirk.id} already has a verdict in "
                                                             f"{verdicts[rule.quirk.id].name}", "keep one file per quirk")
            verdicts[rule.quirk.id] = path
    if not failures:
        yield Check("rules", "ok", f"{len(files)} rule file(s) in {folder} valid")


def check_tokens(config: Config, env: Mapping[str, str]) -> Iterator[Check]:
    """The admin token is set (and not trivially short) where the admin endpoints are on; the UI's sign-in."""
    name = config.proxy.admin_token_env
    token = env.get(name, "")
    if not config.proxy.admin:
        yield Check("admin token", "ok", "admin endpoints off ([proxy] admin = false)")
    elif not token:
        yield Check("admin token", "fail", f"{name} is not set: the proxy's admin endpoints answer 401 and "
                                           f"`shadow cutover execute` cannot confirm a flip",
                    f"export {name}=$(openssl rand -hex 32) where the proxies and cutover run, or set "
                    f"[proxy] admin = false")
    elif len(token) < MIN_TOKEN_CHARS:
        yield Check("admin token", "fail", f"{name} holds {len(token)} characters: guessable",
                    f"use at least {MIN_TOKEN_CHARS}: export {name}=$(openssl rand -hex 32)")
    else:
        yield Check("admin token", "ok", f"{name} is set ({len(token)} characters)")
    ui = config.ui.token_env
    if env.get(ui):
        yield Check("ui token", "ok", f"{ui} is set: product owners can sign in to triage")
    else:
        yield Check("ui token", "warn", f"{ui} is not set: the triage page is read-only",
                    f"export {ui}=… where `shadow ui` runs, to allow verdicts from the page")


def check_spill(config: Config) -> Iterator[Check]:
    """Nothing waits in the spill folder (pairs kept while a store or broker was down)."""
    from adapters.spill import SpillFile

    folder = config.proxy.spill_dir
    waiting = [path for path in sorted(folder.glob("*.spill")) if SpillFile(path).has_pending()] \
        if folder.is_dir() else []
    if waiting:
        yield Check("spill", "warn", f"{len(waiting)} spill file(s) in {folder} hold pairs not yet delivered",
                    "a running proxy drains them by itself; else `shadow spill drain`")


def diagnose(config_path: Path, *, env: Mapping[str, str] | None = None, timeout: float = 3.0) -> list[Check]:
    """Every check, in order; the config's failure stops the rest (they would only repeat it)."""
    environment = os.environ if env is None else env
    try:
        config = load_config(config_path, env=environment)
    except ShadowError as exc:
        return [Check("config", "fail", exc.message, exc.hint or "fix the key named; `shadow config check` re-validates")]
    checks = [Check("config", "ok", f"{config_path} valid: {len(config.routes)} route(s), "
                                    f"{len(config.tables)} reconciled table(s)")]
    checks += [*check_targets(config, timeout), *check_state(config, timeout), *check_kafka(config, timeout),
               check_catalogue(config), *check_rules(config), *check_tokens(config, environment), *check_spill(config)]
    return checks
