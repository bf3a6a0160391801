"""`shadow.toml`: loaded, interpolated and validated once, at the edge (STYLE.md, 6).

The rest of the code receives a typed `Config`, never a raw dict and never
`os.environ`. A file that does not validate is refused with a ConfigError
naming the file, the key path and the reason (exit code 2).
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal, Mapping
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import core_schema

from shadow.errors import ConfigError, read_config_text
from shadow.secrets import mask_url, register_secret

__all__ = [
    "ColumnMapping",
    "CommandRouting",
    "Config",
    "CutoverConfig",
    "GateConfig",
    "GuardConfig",
    "Dsn",
    "KafkaConfig",
    "KafkaTarget",
    "ProxyConfig",
    "Mode",
    "Route",
    "RouteState",
    "SqlSource",
    "TableConfig",
    "TargetConfig",
    "UiConfig",
    "path_params",
    "load_config",
    "parse_config",
    "DEFAULT_STORE_URL",
]

DEFAULT_STORE_URL = "sqlite:///shadow.db"
Mode = Literal["legacy", "shadow", "reverse", "new"]

_VAR = re.compile(r"\$(\$)?\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


class Dsn:
    """A connection URL whose password never shows: str() and repr() are masked."""

    __slots__ = ("_url",)

    def __init__(self, url: str) -> None:
        self._url = url

    def reveal(self) -> str:
        """The real URL, password included: only for handing to a driver."""
        return self._url

    @property
    def masked(self) -> str:
        """The URL with its password replaced by ***."""
        return mask_url(self._url)

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return f"Dsn({self.masked!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dsn) and other._url == self._url

    def __hash__(self) -> int:
        return hash(self._url)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        def validate(value: Any) -> Dsn:
            if isinstance(value, Dsn):
                return value
            if not isinstance(value, str) or "://" not in value:
                raise ValueError("expected a URL such as 'sqlite:///shadow.db' or 'postgresql+psycopg://user@host/db'")
            password = urlsplit(value).password
            register_secret(password)
            return cls(value)

        return core_schema.no_info_plain_validator_function(
            validate, serialization=core_schema.plain_serializer_function_ser_schema(str)
        )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def path_params(template: str) -> list[str]:
    """The {parameter} names of a path template, in order."""
    return _PARAM.findall(template)


def _split_endpoint(value: str) -> tuple[str, str]:
    """'POST /loads/{id}' → ('POST', '/loads/{id}'), or ValueError saying what is wrong."""
    parts = value.split()
    if len(parts) != 2:
        raise ValueError(f"expected 'METHOD /path', e.g. 'POST /loads/{{load_id}}/assign', got {value!r}")
    method, path = parts[0].upper(), parts[1]
    if method not in _METHODS:
        raise ValueError(f"method {parts[0]!r} is not one of {', '.join(sorted(_METHODS))}")
    if not path.startswith("/"):
        raise ValueError(f"path {path!r} must start with '/'")
    bare = _PARAM.sub("", path)
    if "{" in bare or "}" in bare:
        raise ValueError(f"path {path!r}: a parameter is written {{name}}, name being letters, digits and '_' "
                         f"(not starting with a digit)")
    names = path_params(path)
    if len(set(names)) != len(names):
        raise ValueError(f"path {path!r} names a parameter twice")
    return method, path


class KafkaTarget(_Strict):
    """Reaching a target over Kafka: commands published to one topic, outcomes awaited on another."""

    bootstrap: str = Field(description="HOST:PORT[,HOST:PORT…] of the brokers")
    commands: str = Field(min_length=1, description="topic the commands are published to")
    outcomes: str = Field(min_length=1, description="topic the target answers on, by dispatch token")


class TargetConfig(_Strict):
    """How to reach one system."""

    url: str = Field(description="base URL of the system's HTTP API, http:// or https://; each request's path is "
                                 "appended to it (commands go to Kafka instead when kafka is set; reads stay HTTP)")
    timeout: float = Field(5.0, gt=0, description="seconds before a command counts as timed out")
    health: str = Field("/health", description="path of the health endpoint, appended to url: the guard probes the "
                                               "new engine's while it is primary in a zone (an answer below 500 is "
                                               "healthy)")
    state: Dsn | None = Field(None, description="SQLAlchemy URL of the system's own database, for reading state "
                                                "back ([routes.state]) and for `shadow reconcile`, e.g. "
                                                "mssql+pyodbc://… or postgresql+psycopg://…")
    headers: dict[str, str] = Field({}, description="header fields added to every request shadow-harness itself "
                                                    "sends this target (replayed commands, read-backs), e.g. "
                                                    "Authorization; the proxy forwards the caller's own. The values "
                                                    "are secrets", json_schema_extra={"secret": True})
    kafka: KafkaTarget | None = Field(None, description="send commands over Kafka instead of HTTP (reads stay HTTP)")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"expected an http(s) URL such as 'http://127.0.0.1:8080', got {mask_url(value)!r}")
        if urlsplit(value).username is not None:
            # It would reach the Host header; credentials belong in a header field, kept secret.
            raise ValueError(f"{mask_url(value)!r} carries user information ('user:password@'): remove it, and put "
                             f"credentials in this target's headers, e.g. headers = {{ Authorization = \"Basic …\" }}")
        return value.rstrip("/")

    @field_validator("headers")
    @classmethod
    def _headers_are_secret(cls, value: dict[str, str]) -> dict[str, str]:
        # Header values are usually credentials (Authorization): never print them.
        for header_value in value.values():
            register_secret(header_value)
        return value


Coercion = Literal["number", "string", "boolean"]


class SqlSource(_Strict):
    """How one side's state database is read for a command: a query, or a table and key columns."""

    query: str | None = Field(None, description="SQL with :named parameters from the command's keys or payload")
    table: str | None = Field(None, description="table name, optionally schema-qualified: dbo.Loads")
    key: dict[str, str] = Field({}, description="command key → column, for table")
    many: bool = Field(False, description="the rows as a list (else the one row, or null)")

    @model_validator(mode="after")
    def _query_or_table(self) -> "SqlSource":
        if (self.query is None) == (self.table is None):
            raise ValueError("give either query = \"SELECT …\" or table = \"…\" with key = { … }")
        if self.table is not None and not self.key:
            raise ValueError("table needs key = { command_key = \"column\" } to find the touched rows")
        return self


class ColumnMapping(_Strict):
    """How legacy rows map into the canonical (new) form: one mapping for state read-back and reconciliation."""

    rename: dict[str, str] = Field({}, description="legacy column → canonical (new) name")
    values: dict[str, dict[str, Any]] = Field({}, description="canonical column → {legacy value: canonical value}")
    coerce: dict[str, Coercion] = Field({}, description="canonical column → type, on both sides")


class RouteState(ColumnMapping):
    """State read back from each side's database, mapped into one canonical form."""

    legacy: SqlSource | None = Field(None, description="how legacy's database ([targets.legacy] state) is read")
    new: SqlSource | None = Field(None, description="how the new engine's database ([targets.new] state) is read")
    settle: float = Field(2.0, ge=0, description="seconds the new side may take to show the command's effect")
    quiet: float = Field(0.25, gt=0, description="unchanged this long, the new side is taken as settled")
    interval: float = Field(0.05, gt=0, description="seconds between reads while settling")


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$#@]*(\.[A-Za-z_][A-Za-z0-9_$#@]*)?$")


class TableConfig(ColumnMapping):
    """A table compared row by row between the two state databases (`shadow reconcile`)."""

    legacy: str = Field(description="the table in the legacy state database, optionally schema-qualified: dbo.Loads")
    new: str = Field(description="the table in the new state database, optionally schema-qualified: public.loads")
    key: list[str] = Field(min_length=1, description="canonical key column(s) that identify a row on both sides")
    columns: list[str] = Field([], description="canonical columns to compare (default: every column both sides have)")
    exclude: list[str] = Field([], description="canonical columns never compared (e.g. each side's own timestamps)")
    where: str | None = Field(None, description="SQL condition applied on both sides (--where overrides it)")
    legacy_where: str | None = Field(None, description="SQL condition for the legacy side only, in its column names")
    new_where: str | None = Field(None, description="SQL condition for the new side only")
    method: Literal["auto", "checksum", "stream"] = Field(
        "auto", description="checksum: in-database checksums of key ranges, bisected where they differ (same "
                            "database kind on both sides, one integer key); stream: sorted batches merged by key; "
                            "auto: checksum where it applies, else stream")
    batch: int = Field(100_000, ge=100, le=5_000_000, description="rows per batch read from each side")

    @field_validator("legacy", "new")
    @classmethod
    def _table_name(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError(f"expected a table name such as 'loads' or 'dbo.Loads', got {value!r}")
        return value

    @model_validator(mode="after")
    def _keys_compare_raw(self) -> "TableConfig":
        for name in self.key:
            if name in self.values or name in self.coerce:
                raise ValueError(f"key column {name!r} may not have values = or coerce = (keys are matched as stored)")
            if name in self.exclude:
                raise ValueError(f"key column {name!r} cannot be excluded")
        if len(set(self.key)) != len(self.key):
            raise ValueError(f"key lists a column twice: {self.key}")
        return self

    def legacy_name(self, canonical: str) -> str:
        """The legacy column holding a canonical column (the reverse of rename)."""
        for legacy, name in self.rename.items():
            if name == canonical:
                return legacy
        return canonical


class Route(_Strict):
    """Which requests are commands, of what kind, touching which entities."""

    match: str = Field(description="'METHOD /path/{param}': a request with this method whose path fits the "
                                   "template is a command of this route (other requests go to the primary only)")
    command: str = Field(min_length=1, description="the command kind these requests are, e.g. assign_load: the name "
                                                   "quirks, reports, gates and routing use")
    keys: list[str] = Field([], description="natural keys of the entities the command touches, e.g. load_id: taken "
                                            "from the path parameter of that name, else the body's top-level field")
    zone: str = Field("zone", description="path parameter or body field holding the zone")
    read: str | None = Field(None, description="'GET /path/{key}' that reads the touched entity back")
    state: RouteState | None = Field(None, description="read the touched entities from each side's database")
    sample: float = Field(1.0, ge=0.0, le=1.0, description="share of this route's commands that are mirrored and "
                                                           "compared (0–1); the rest go to the primary only")

    @field_validator("match")
    @classmethod
    def _valid_match(cls, value: str) -> str:
        _split_endpoint(value)
        return value

    @field_validator("read")
    @classmethod
    def _valid_read(cls, value: str | None) -> str | None:
        if value is not None and _split_endpoint(value)[0] != "GET":
            raise ValueError(f"a read-back must be a GET, got {value!r}")
        return value

    @property
    def method(self) -> str:
        """The HTTP method of the command."""
        return _split_endpoint(self.match)[0]

    @property
    def path(self) -> str:
        """The path template, e.g. '/loads/{load_id}/assign'."""
        return _split_endpoint(self.match)[1]

    @property
    def params(self) -> list[str]:
        """The path template's parameter names."""
        return path_params(self.path)

    @property
    def read_path(self) -> str | None:
        """The read-back's path template, e.g. '/loads/{load_id}' (None when not declared)."""
        return _split_endpoint(self.read)[1] if self.read else None


class CommandRouting(_Strict):
    """One command kind's own modes, where they differ from the zone-wide ones."""

    default: Mode | None = Field(None, description="this command kind's mode in zones not listed (else [routing] "
                                                   "zones / default)")
    zones: dict[str, Mode] = Field({}, description="zone → mode for this command kind")


class RoutingConfig(_Strict):
    """The cutover state: the mode per zone (and per command kind); flipping these lines is the cutover.

    Modes: legacy (no shadow), shadow (legacy primary, new mirrored), reverse (new primary,
    legacy mirrored and still compared), new (no shadow).
    """

    version: int = Field(0, ge=0, description="route-table version number: `shadow cutover execute` raises it on "
                                              "every flip (proxies report number-hash)")
    default: Mode = Field("shadow", description="mode of every zone and command kind not listed")
    zones: dict[str, Mode] = Field({}, description="zone → mode, for every command kind")
    commands: dict[str, CommandRouting] = Field({}, description="command kind → its own modes, overriding zones")
    hold: list[str] = Field([], description="zones whose commands every proxy holds while a flip propagates "
                                            "(written and removed by `shadow cutover execute`; bounded by "
                                            "[cutover] hold_during_flip_s)")


class GateConfig(_Strict):
    """Readiness gates a zone must pass before a flip (`shadow cutover check`); missing data always fails."""

    match_rate: float = Field(99.5, ge=0, le=100, description="minimum accepted match rate (percent) per command kind")
    last_pairs: int = Field(10_000, ge=1, description="the match rate is taken over this many latest pairs per "
                                                      "command kind and zone")
    min_pairs: int = Field(1_000, ge=1, description="fewer pairs than this per command kind and zone: not enough data")
    window_hours: float = Field(24.0, gt=0, description="hours looked back for open quirks, errors and latency")
    max_error_rate: float = Field(0.5, ge=0, le=100, description="maximum error/timeout rate (percent) of the shadow")
    latency_factor: float = Field(1.5, gt=0, description="the shadow's p95 latency may be at most this times the "
                                                          "primary's")
    stale_after_hours: float = Field(2.0, gt=0, description="a zone whose newest pair is older than this has stale "
                                                            "data: its match-rate gates fail")


class GuardConfig(_Strict):
    """The guard in every proxy, while the new engine is primary in a zone (modes reverse and new)."""

    trip_after_s: float = Field(4.0, gt=0, description="seconds of continuous failure of the new primary (commands "
                                                       "or health probe) before the zone is switched back to legacy")
    hold_max_s: float = Field(12.0, gt=0, description="a command that failed on the new primary is held at most this "
                                                      "long for the zone to resolve, then its failure is answered")
    hold_max: int = Field(1000, ge=0, description="commands held at most per zone; beyond, failures are answered")
    probe_interval_s: float = Field(0.25, gt=0, description="seconds between health probes of the new engine")


# What a flip to every other proxy may take (they check the file every `[proxy] reload_seconds`), plus a margin.
FLIP_ALLOWANCE_S = 1.0
GUARD_MARGIN_S = 2.0


class CutoverConfig(_Strict):
    """How cutover decides and guards: gate thresholds, the guard, and the availability budget of a flip."""

    gates: GateConfig = Field(GateConfig(), description="readiness gates evaluated by `shadow cutover check`")
    guard: GuardConfig = Field(GuardConfig(), description="the guard that rolls a failing zone back by itself")
    plan_valid_minutes: float = Field(30.0, gt=0, description="a plan older than this is refused by `execute`: "
                                                              "its gate figures describe another moment")
    hold_during_flip_s: float = Field(3.0, gt=0, le=10, description="while a flip propagates, a zone's commands "
                                                                    "wait at most this long for the new route table")
    availability_budget_s: float = Field(30.0, gt=0, le=30.0, description="hard cap on unavailability during and after "
                                                                          "a flip (seconds); the guard rolls back first")

    @model_validator(mode="after")
    def _guard_fits_the_budget(self) -> "CutoverConfig":
        guard, budget = self.guard, self.availability_budget_s
        if guard.trip_after_s + FLIP_ALLOWANCE_S + GUARD_MARGIN_S > budget:
            raise ValueError(f"guard.trip_after_s = {guard.trip_after_s:g} leaves no margin in the {budget:g} s budget: "
                             f"detection + {FLIP_ALLOWANCE_S:g} s for the flip + {GUARD_MARGIN_S:g} s margin must fit; "
                             f"use at most {budget - FLIP_ALLOWANCE_S - GUARD_MARGIN_S:g}")
        if not guard.trip_after_s < guard.hold_max_s <= budget:
            raise ValueError(f"guard.hold_max_s = {guard.hold_max_s:g} must be above trip_after_s "
                             f"({guard.trip_after_s:g}) and at most the budget ({budget:g})")
        return self


class StoreConfig(_Strict):
    """Where the catalogue lives, and where rule files are kept."""

    url: Dsn = Field(Dsn(DEFAULT_STORE_URL), description="SQLAlchemy URL of the catalogue database: a SQLite file "
                                                         "(relative to the config file's folder) or "
                                                         "postgresql+psycopg://… at scale")
    rules: Path = Field(Path("rules"), description="folder of the rule files (relative to the config file's folder)")


class ProxyConfig(_Strict):
    """`shadow proxy`: where it listens, how it mirrors, where pairs go."""

    listen: str = Field("127.0.0.1:8080", description="HOST:PORT the proxy listens on (--listen overrides)")
    max_body: int = Field(1_048_576, ge=1, description="bytes; a larger request body is answered 413")
    mirror: Literal["after", "parallel"] = Field("after", description="after: a command is mirrored once the "
                                                                     "primary has answered; parallel: sent to both at "
                                                                     "once (not in zones the guard watches)")
    queue: int = Field(1000, ge=1, description="mirrors waiting at most; beyond, a mirror is dropped and counted")
    concurrency: int = Field(64, ge=1, le=4096, description="mirrors in flight at once (one worker each)")
    pairs: Path = Field(Path("proxy-pairs.jsonl"), description="JSONL file the pairs are appended to with sink = "
                                                               "\"jsonl\" (relative to the config file's folder; "
                                                               "--pairs overrides)")
    sink: Literal["jsonl", "catalogue", "kafka"] = Field(
        "jsonl", description="where pairs go: jsonl (the pairs file), catalogue (compared and stored in [store] url, "
                             "in batches), kafka (published to [kafka] pairs for comparator workers)")
    # Comparing is the comparator workers' job; inline it costs the proxy ~7 % of its throughput (measured).
    compare: bool = Field(False, description="compare each pair as it is recorded, for the match-rate metric")
    admin: bool = Field(True, description="serve the admin endpoints /-/admin/status and /-/admin/reload (`shadow "
                                          "cutover execute` confirms each flip through them); they answer only "
                                          "callers bearing the token in admin_token_env")
    admin_token_env: str = Field("SHADOW_ADMIN_TOKEN", description="environment variable holding the admin token: "
                                                                    "/-/admin/* need Authorization: Bearer <it>, and "
                                                                    "`shadow cutover execute` sends it; unset: those "
                                                                    "endpoints answer 401")
    drain_seconds: float = Field(5.0, ge=0, description="on shutdown, queued mirrors may finish for up to this long "
                                                        "(seconds)")
    reload_seconds: float = Field(0.5, gt=0, description="how often the config file is checked for a new route table")
    spill_dir: Path = Field(Path("spill"), description="where pairs wait on disk while the catalogue store or the "
                                                       "Kafka broker is down (sink catalogue or kafka)")
    buffer: int = Field(10_000, ge=1, description="pairs waiting in memory for the store or broker; beyond, they go "
                                                  "to the spill file, and dropped (counted) only if that fails too")
    registry: bool = Field(True, description="register and heartbeat in the store, so `shadow cutover execute` "
                                             "waits for this proxy to run a new route table")

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected HOST:PORT such as '127.0.0.1:8080', got {value!r}")
        return value


class KafkaConfig(_Strict):
    """The event bus pairs travel on at scale (proxies and replay publish, comparator workers consume)."""

    bootstrap: str | None = Field(None, description="HOST:PORT[,HOST:PORT…] of the brokers")
    pairs: str = Field("shadow.pairs", min_length=1, description="topic of the pairs")
    group: str = Field("shadow-comparators", min_length=1, description="consumer group of the comparator workers")
    metrics_listen: str | None = Field(None, pattern=r"^(.+:)?\d{1,5}$",
                                       description="[HOST:]PORT where a comparator worker serves Prometheus /metrics "
                                                   "(a bare port: 127.0.0.1 only); unset: no metrics")


class ReplayConfig(_Strict):
    """Defaults for `shadow replay`."""

    concurrency: int = Field(32, ge=1, le=4096, description="commands in flight at once (--concurrency overrides)")
    pairs: Path = Field(Path("pairs.jsonl"), description="JSONL file the pairs are written to (relative to the config "
                                                         "file's folder; --out overrides)")


class UiConfig(_Strict):
    """`shadow ui`: the triage page for product owners."""

    host: str = Field("127.0.0.1", min_length=1, description="address the page listens on (127.0.0.1: this machine "
                                                            "only; 0.0.0.0 to let others in)")
    port: int = Field(8089, ge=1, le=65535, description="TCP port of the page")
    token_env: str = Field("SHADOW_UI_TOKEN", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                           description="environment variable holding the sign-in token; unset: the page is read-only")
    session_hours: float = Field(8.0, gt=0, le=24 * 30, description="hours a sign-in lasts")


class Config(_Strict):
    """The whole, validated `shadow.toml`."""

    targets: dict[Literal["legacy", "new"], TargetConfig] = Field(
        description="how to reach each system: [targets.legacy] and [targets.new], both required")
    routes: list[Route] = Field([], description="which requests are commands, of what kind, touching which entities")
    routing: RoutingConfig = Field(RoutingConfig(), description="the cutover state: the mode of each zone and command "
                                                                "kind")
    store: StoreConfig = Field(StoreConfig(), description="where the catalogue and the rule files are")
    replay: ReplayConfig = Field(ReplayConfig(), description="defaults for `shadow replay`")
    proxy: ProxyConfig = Field(ProxyConfig(), description="`shadow proxy`: listening, mirroring, where pairs go")
    kafka: KafkaConfig = Field(KafkaConfig(), description="the Kafka topic pairs travel on at scale, and the "
                                                          "comparator workers' group")
    tables: dict[str, TableConfig] = Field({}, description="tables `shadow reconcile` compares, by name")
    cutover: CutoverConfig = Field(CutoverConfig(), description="gate thresholds and the availability budget")
    ui: UiConfig = Field(UiConfig(), description="the triage page (`shadow ui`)")
    source: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _both_targets_and_unique_routes(self) -> Config:
        missing = [t for t in ("legacy", "new") if t not in self.targets]
        if missing:
            raise ValueError(f"[targets.{missing[0]}] is missing: both 'legacy' and 'new' must be configured")
        seen: dict[str, str] = {}
        for index, route in enumerate(self.routes):
            for side in ("legacy", "new"):
                if route.state is not None and getattr(route.state, side) is not None and \
                        self.targets[side].state is None:  # type: ignore[index]
                    raise ValueError(f"routes[{index}].state.{side} reads a database, but [targets.{side}] has no "
                                     f"state = \"<SQLAlchemy URL>\"")
            key = f"{route.method} {route.path}"
            if key in seen:
                raise ValueError(f"route {key!r} is declared twice (commands {seen[key]!r} and {route.command!r})")
            seen[key] = route.command
        for name in self.tables:
            if not re.match(r"^[A-Za-z0-9_\-]+$", name):
                raise ValueError(f"[tables.{name}]: a table's name may hold letters, digits, '_' and '-' only")
            for side in ("legacy", "new"):
                if self.targets[side].state is None:  # type: ignore[index]
                    raise ValueError(f"[tables.{name}] is reconciled from the state databases, but [targets.{side}] "
                                     f"has no state = \"<SQLAlchemy URL>\"")
        if self.proxy.sink == "kafka" and not self.kafka.bootstrap:
            raise ValueError("[proxy] sink = \"kafka\" needs [kafka] bootstrap = \"HOST:PORT\"")
        # A command sent to a hung new primary just before the guard trips waits out its own timeout before it
        # goes to legacy: that wait is part of the budget too.
        cutover, timeout = self.cutover, self.targets["new"].timeout  # type: ignore[index]
        room = cutover.availability_budget_s - cutover.guard.trip_after_s - FLIP_ALLOWANCE_S - GUARD_MARGIN_S
        if timeout > room:
            raise ValueError(f"[targets.new] timeout = {timeout:g}: a command to a hung new engine as primary waits "
                             f"that long, after the guard's {cutover.guard.trip_after_s:g} s to trip, "
                             f"{FLIP_ALLOWANCE_S:g} s for the flip and a {GUARD_MARGIN_S:g} s margin; that breaks the "
                             f"{cutover.availability_budget_s:g} s availability budget: use at most {room:g}")
        return self

    def route_for(self, command_kind: str) -> Route | None:
        """The route that declares a command kind, if any."""
        for route in self.routes:
            if route.command == command_kind:
                return route
        return None


def _interpolate(value: Any, env: Mapping[str, str], path: str) -> Any:
    """Replace ${VAR} / ${VAR:-default} in every string; $${VAR} is a literal."""
    if isinstance(value, str):
        def substitute(match: re.Match[str]) -> str:
            escaped, name, default = match.groups()
            if escaped:
                return match.group(0)[1:]
            if name in env:
                register_secret(env[name])
                return env[name]
            if default is not None:
                return default
            raise ConfigError(
                f"{path}: environment variable {name} is not set",
                hint=f"export {name}=… before running, or write ${{{name}:-default}} in the file",
            )

        return _VAR.sub(substitute, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, env, f"{path}.{k}" if path else k) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _resolve_relative(config: Config, base: Path) -> Config:
    """Relative rule folders and SQLite files are taken from the config file's folder."""
    store = config.store
    rules = store.rules if store.rules.is_absolute() else base / store.rules
    url = store.url.reveal()
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and ":memory:" not in url:
        url = "sqlite:///" + str((base / url[len("sqlite:///"):]).resolve())
    pairs = config.replay.pairs if config.replay.pairs.is_absolute() else base / config.replay.pairs
    proxy_pairs = config.proxy.pairs if config.proxy.pairs.is_absolute() else base / config.proxy.pairs
    spill_dir = config.proxy.spill_dir if config.proxy.spill_dir.is_absolute() else base / config.proxy.spill_dir
    return config.model_copy(
        update={
            "store": store.model_copy(update={"rules": rules, "url": Dsn(url)}),
            "replay": config.replay.model_copy(update={"pairs": pairs}),
            "proxy": config.proxy.model_copy(update={"pairs": proxy_pairs, "spill_dir": spill_dir}),
        }
    )


def parse_config(text: str, *, source: str = "<config>", env: Mapping[str, str] | None = None,
                 base: Path | None = None) -> Config:
    """Validate TOML text as a Config; errors name `source`, the key path and the reason."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}", hint="fix the syntax at the line and column shown") from None
    try:
        data = _interpolate(raw, os.environ if env is None else env, "")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc.message}", hint=exc.hint) from None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            reason = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                reason = "unknown key (check its spelling against the configuration reference, docs/reference/config.md)"
            lines.append(f"{source}: {_key_path(tuple(err['loc']))}: {reason}")
        raise ConfigError("\n".join(lines), hint="fix the key(s) above; `shadow config check` re-validates") from None
    config = config.model_copy(update={"source": Path(source) if base is not None else None})
    return _resolve_relative(config, base) if base is not None else config


def load_config(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a `shadow.toml`."""
    file = Path(path)
    text = read_config_text(file, "config file", "pass --config PATH, or run from the folder holding shadow.toml")
    return parse_config(text, source=str(file), env=env, base=file.resolve().parent)
