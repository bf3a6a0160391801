"""`shadow init`: a commented shadow.toml that validates as written, from two URLs and an OpenAPI file.

With an OpenAPI (3.x) or Swagger (2.0) document, every POST, PUT, PATCH and DELETE
operation becomes a `[[routes]]` entry: its command kind from the operationId (else
from the method and path), its path parameters as the natural keys, the zone from a
path parameter or body field named like one, and a read-back where the document has
a GET of the touched entity. GET operations are reads: served by the primary only,
never mirrored; they are listed in a comment. What cannot be used is skipped, and the
file says why in a comment. The text is checked with the same validator as every
other command before anything is written.
"""

from __future__ import annotations

import json
import re
import textwrap
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import tomlkit
from pydantic import BaseModel

from shadow.config import (CutoverConfig, GateConfig, GuardConfig, KafkaConfig, ProxyConfig, UiConfig, parse_config,
                           path_params)
from shadow.errors import ConfigError, read_config_text

__all__ = ["ApiRoutes", "ApiRoute", "init_files", "load_openapi", "routes_from_openapi", "scaffold_config"]

DEFAULT_LEGACY = "http://127.0.0.1:8081"
DEFAULT_NEW = "http://127.0.0.1:8082"
WRITE_METHODS = ("post", "put", "patch", "delete")
ZONE_NAMES = ("zone", "zone_id", "zoneId", "zone_code", "region", "region_id")
_TEMPLATE_PART = re.compile(r"(\{[^{}]*\})")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ApiRoute:
    """One operation of the document, as the config will hold it."""

    method: str                      # upper case
    path: str                        # template; parameters renamed to identifiers where needed
    operation: str                   # the operationId, or "" when the document has none
    summary: str = ""
    command: str = ""                # command kind (writes only)
    keys: tuple[str, ...] = ()
    zone: str | None = None          # None: the default ("zone")
    read: str | None = None          # "GET /loads/{load_id}"
    renamed: tuple[tuple[str, str], ...] = ()


@dataclass
class ApiRoutes:
    """What an OpenAPI document gives: command routes, reads, what was skipped and why."""

    source: str
    title: str = ""
    prefix: str = ""
    commands: list[ApiRoute] = field(default_factory=list)
    reads: list[ApiRoute] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def load_openapi(path: Path) -> dict[str, Any]:
    """An OpenAPI or Swagger document from a JSON or YAML file, or a ConfigError saying what is wrong."""
    text = read_config_text(path, "OpenAPI file", "pass the path of your API's openapi.yaml or .json")
    try:
        if text.lstrip().startswith("{"):
            document = json.loads(text)
        else:
            import yaml

            document = yaml.safe_load(text)
    except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError (and its many subclasses)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{path}: neither JSON nor YAML: {reason}", hint="check the file is an OpenAPI document") from None
    if not isinstance(document, dict) or not ({"openapi", "swagger"} & set(document)):
        raise ConfigError(f"{path}: not an OpenAPI document (no 'openapi' or 'swagger' field at the top)",
                          hint="pass an OpenAPI 3.x or Swagger 2.0 file")
    if not isinstance(document.get("paths"), dict):
        raise ConfigError(f"{path}: the document has no 'paths' object", hint="an OpenAPI document lists its "
                                                                             "operations under paths:")
    return document


def _words(text: str) -> list[str]:
    """'assignLoad', 'Loads.Assign-v2' → ['assign', 'load'], ['loads', 'assign', 'v2'] (ASCII letters and digits)."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", text)
    return [w.lower() for w in re.findall(r"[A-Za-z0-9]+", spaced)]


def _identifier(name: str, taken: set[str]) -> str:
    """A path parameter's name as an identifier the route table can capture, unique in its path."""
    ident = re.sub(r"[^A-Za-z0-9_]", "_", name) or "param"
    return _unique(ident if _IDENTIFIER.match(ident) else f"p_{ident}", taken)


def _unique(name: str, taken: set[str]) -> str:
    """name, or name_2, name_3 … the first not taken; it is taken from then on."""
    unique, n = name, 2
    while unique in taken:
        unique, n = f"{name}_{n}", n + 1
    taken.add(unique)
    return unique


def _template(path: str) -> tuple[str, list[str], list[tuple[str, str]]] | str:
    """(template with identifier parameters, their names, renames) or the reason the path cannot be used."""
    if not path.startswith("/"):
        return "does not start with '/'"
    if re.search(r"\s", path):
        return "holds white space"
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in path):
        return "holds a control character"
    parts = _TEMPLATE_PART.split(path)
    if any("{" in p or "}" in p for p in parts if not _TEMPLATE_PART.fullmatch(p)):
        return "has an unbalanced '{' or '}'"
    taken: set[str] = set()
    names: list[str] = []
    renamed: list[tuple[str, str]] = []
    out = []
    for part in parts:
        if _TEMPLATE_PART.fullmatch(part):
            original = part[1:-1]
            ident = _identifier(original, taken)
            if ident != original:
                renamed.append((original, ident))
            names.append(ident)
            out.append("{" + ident + "}")
        else:
            out.append(part)
    return "".join(out), names, renamed


def _shape(template: str) -> str:
    """A template with its parameter names erased: '/loads/{id}' and '/loads/{load_id}' have one shape."""
    return _TEMPLATE_PART.sub("{}", template)


def _resolve(document: dict[str, Any], node: Any, depth: int = 0) -> Any:
    """Follow local $refs ('#/components/schemas/Load'), a few levels deep."""
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and depth < 8:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            return {}
        target: Any = document
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part) if isinstance(target, dict) else None
        node, depth = target, depth + 1
    return node if isinstance(node, dict) else {}


def _body_fields(document: dict[str, Any], operation: dict[str, Any]) -> list[str]:
    """Top-level property names of an operation's JSON request body (OpenAPI 3 or Swagger 2)."""
    schema: Any = None
    body = _resolve(document, operation.get("requestBody"))
    content = body.get("content") if isinstance(body.get("content"), dict) else {}
    for media, entry in content.items():
        if "json" in str(media) and isinstance(entry, dict):
            schema = entry.get("schema")
            break
    for parameter in operation.get("parameters") or []:
        parameter = _resolve(document, parameter)
        if parameter.get("in") == "body":
            schema = parameter.get("schema")
    names: list[str] = []
    for part in [schema, *(_resolve(document, schema).get("allOf") or [])]:
        properties = _resolve(document, part).get("properties")
        if isinstance(properties, dict):
            names.extend(str(name) for name in properties if str(name) not in names)
    return names


def _prefix(document: dict[str, Any]) -> str:
    """The path every operation sits under: OpenAPI 3's first server URL path, or Swagger 2's basePath."""
    from urllib.parse import urlsplit

    base = ""
    servers = document.get("servers")
    if isinstance(servers, list) and servers and isinstance(servers[0], dict):
        base = urlsplit(str(servers[0].get("url", ""))).path
    elif isinstance(document.get("basePath"), str):
        base = document["basePath"]
    base = base.rstrip("/")
    if "{" in base or re.search(r"\s", base) or (base and not base.startswith("/")):
        return ""  # a server variable: the prefix is not known until deployment
    return base


def routes_from_openapi(document: dict[str, Any], source: str = "<openapi>") -> ApiRoutes:
    """Command routes (writes) and reads (GETs) of an OpenAPI or Swagger document."""
    info = document.get("info") if isinstance(document.get("info"), dict) else {}
    found = ApiRoutes(source=source, title=str(info.get("title", "")), prefix=_prefix(document))
    commands: list[tuple[str, str, dict[str, Any], str, str, list[str], list[tuple[str, str]]]] = []
    get_shapes: dict[str, str] = {}
    for raw_path, item in document["paths"].items():
        if not isinstance(item, dict):
            continue
        raw = str(raw_path)
        shaped = _template(found.prefix + raw) if raw.startswith("/") else "does not start with '/'"
        if isinstance(shaped, str):
            methods = [m.upper() for m in (*WRITE_METHODS, "get") if m in item]
            if methods:
                found.skipped.append(f"{'/'.join(methods)} {raw_path}: the path {shaped}")
            continue
        template, names, renamed = shaped
        for method in (*WRITE_METHODS, "get"):
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            op_id = str(operation.get("operationId") or "")
            summary = " ".join(str(operation.get("summary") or "").split())
            if method == "get":
                found.reads.append(ApiRoute("GET", template, op_id, summary, renamed=tuple(renamed)))
                get_shapes.setdefault(_shape(template), template)
            else:
                commands.append((method.upper(), template, operation, op_id, summary, names, renamed))
    kinds: set[str] = set()
    seen: set[str] = set()
    for method, template, operation, op_id, summary, names, renamed in commands:
        if f"{method} {_shape(template)}" in seen:
            found.skipped.append(f"{method} {template}: declared twice (paths that differ only in parameter names "
                                 f"match the same requests)")
            continue
        seen.add(f"{method} {_shape(template)}")
        body = _body_fields(document, operation)
        keys = list(names)
        read = _read_back(template, keys, get_shapes)
        if not keys and read is None:
            # POST /loads with load_id in the body and a GET /loads/{…}: the body field is the key.
            one_more = get_shapes.get(_shape(template.rstrip("/") + "/{}"))
            last = path_params(one_more)[-1:] if one_more is not None else []
            if last and last[0] in body:
                keys = last
                read = f"GET {template.rstrip('/')}/{{{last[0]}}}"
        zone = next((z for z in ZONE_NAMES if z in names or z in body), None)
        kind = _command_kind(op_id, method, template, kinds)
        found.commands.append(ApiRoute(method, template, op_id, summary,
                                       command=kind, keys=tuple(keys), zone=zone, read=read, renamed=tuple(renamed)))
    return found


def _read_back(template: str, keys: list[str], get_shapes: dict[str, str]) -> str | None:
    """The GET of the entity a command touches: the longest prefix of its path, ending in a parameter, that the
    document can GET — written with the command's own parameter names, so the proxy fills it from the keys."""
    parts = _TEMPLATE_PART.split(template)
    for end in range(len(parts) - 1, 0, -1):
        if not _TEMPLATE_PART.fullmatch(parts[end]):
            continue
        prefix = "".join(parts[: end + 1])
        if _shape(prefix) in get_shapes:
            return f"GET {prefix}"
    return None


def _command_kind(operation_id: str, method: str, template: str, taken: set[str]) -> str:
    """'assignLoad' → 'assign_load'; without an operationId, 'post_loads_assign'; unique in the file."""
    words = _words(operation_id)
    if not words:
        words = [method.lower(), *[w for part in _TEMPLATE_PART.sub("", template).split("/") for w in _words(part)]]
    kind = "_".join(words)
    return _unique(f"op_{kind}" if kind[0].isdigit() else kind, taken)


# -- the file ---------------------------------------------------------------------

def _toml(value: Any) -> str:
    """A value as TOML text (strings escaped as TOML needs, which JSON's rules do not cover)."""
    return tomlkit.item(value).as_string()


def _comment(text: str) -> str:
    """Text safe inside a TOML comment: no control characters (tab aside) and no lone surrogates."""
    return "".join(c if c == "\t" or unicodedata.category(c) not in ("Cc", "Cs") else "?" for c in text)


def _describe(model: type[BaseModel], name: str) -> str:
    description = model.model_fields[name].description or ""
    return " ".join(description.split())


def _optional(model: type[BaseModel], names: Iterable[str]) -> list[str]:
    """Commented-out keys at their defaults, each under its description (taken from the model)."""
    lines = []
    for name in names:
        info = model.model_fields[name]
        default = info.default
        value = default.as_posix() if isinstance(default, Path) else default
        lines += [f"# {line}" for line in textwrap.wrap(_describe(model, name), 100)]
        lines.append(f"# {name} = {_toml(value) if value is not None else '…'}")
    return lines


def _route_block(route: ApiRoute) -> list[str]:
    what = route.operation or "no operationId"
    if route.summary:
        what += f": {route.summary}"
    lines = ["[[routes]]", _comment(f"# {route.method} {route.path}  ({what})"[:200])]
    for original, ident in route.renamed:
        lines.append(_comment(f"# path parameter {{{original}}} is named {ident} here (the route table captures "
                              f"identifiers)"))
    lines.append(f"match = {_toml(f'{route.method} {route.path}')}")
    lines.append(f"command = {_toml(route.command)}")
    lines.append(f"keys = {_toml(list(route.keys))}")
    if route.zone is not None:
        lines.append(f"zone = {_toml(route.zone)}                 # path parameter or body field holding the zone")
    if route.read is not None:
        lines.append(f"read = {_toml(route.read)}")
    else:
        lines.append("# read = \"GET /…/{key}\"            # no GET of the touched entity found: add one to compare state")
    return lines


def scaffold_config(*, legacy: str | None = None, new: str | None = None, api: ApiRoutes | None = None,
                    now: datetime | None = None) -> str:
    """The text of a commented shadow.toml; every active line validates, every optional key is shown commented."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d")
    origin = _comment(f" from {api.source} ({len(api.commands)} commands, {len(api.reads)} reads)") if api else ""
    lines = [
        f"# shadow.toml, written by `shadow init` on {stamp}{origin}.",
        "# Check it: `shadow config check`; check what it points at: `shadow doctor`.",
        "# Every key, its default and meaning: the configuration reference (docs/reference/config.md).",
        "# ${VAR} and ${VAR:-default} are read from the environment: keep passwords out of this file.",
        "",
        "[targets.legacy]                    # the system in production today: its answers go back to callers",
        f"url = {_toml(legacy or DEFAULT_LEGACY)}",
        "timeout = 5.0                       # seconds before a command counts as timed out",
        "health = \"/health\"                  # GET path that answers 2xx while the service is up (doctor, guard)",
        "# state = \"mssql+pyodbc://dispatch:${LEGACY_DB_PASSWORD}@db-host:1433/dispatch?driver=FreeTDS\"",
        "#   the legacy state database, to compare what each side wrote (see a route's [routes.state])",
        "",
        "[targets.new]                       # the new engine: receives a mirror of every command",
        f"url = {_toml(new or DEFAULT_NEW)}",
        "timeout = 5.0",
        "health = \"/health\"",
        "# state = \"postgresql+psycopg://dispatch:${NEW_DB_PASSWORD}@pg-host:5432/dispatch\"",
        "",
        "# Routes: which requests are commands (sent to the primary, mirrored to the other side and compared),",
        "# their command kind, and the keys of the entity they touch. Every other request is a read: served by",
        "# the primary only, never mirrored.",
    ]
    if legacy is None or new is None:
        lines.insert(5, "# The URLs below are the reference dispatch pair's (`shadow demo serve legacy|new`): "
                        "put your services' there, or rerun with --legacy URL --new URL.")
    if api is not None and api.prefix:
        lines.append(_comment(f"# Paths include the API's base path {api.prefix} (from the document's "
                              f"servers/basePath)."))
    if api is not None and api.commands:
        for route in api.commands:
            lines += ["", *_route_block(route)]
    else:
        lines += [
            "# No routes yet, so nothing is mirrored. One looks like this (`shadow init --openapi FILE` writes them all):",
            "# [[routes]]",
            "# match = \"POST /loads/{load_id}/assign\"",
            "# command = \"assign_load\"",
            "# keys = [\"load_id\"]",
            "# read = \"GET /loads/{load_id}\"       # read the touched entity back from each side after the command",
        ]
    if api is not None and api.reads:
        lines += ["", "# Reads in the document (primary only, never mirrored):"]
        lines += [_comment(f"#   GET {r.path}" + (f"  ({r.operation})" if r.operation else "")) for r in api.reads]
    if api is not None and api.skipped:
        lines += ["", "# Skipped: these operations could not become routes:"]
        lines += [_comment(f"#   {reason}") for reason in api.skipped]
    lines += [
        "",
        "[routing]                           # the cutover state; `shadow cutover execute` edits it, zone by zone",
        "version = 0",
        "default = \"shadow\"                  # legacy answers, the new engine is mirrored (legacy | shadow | reverse | new)",
        "zones = {}                          # zone → mode, e.g. { north = \"reverse\" }",
        "",
        "[store]                             # relative paths are taken from this file's folder",
        "url = \"sqlite:///shadow.db\"         # the catalogue; postgresql+psycopg://… for a team",
        "rules = \"rules\"                     # rule files: triage verdicts and normalisation, reviewed like code",
        "",
        "[proxy]                             # `shadow proxy`: put it in front of the dispatch API",
        "listen = \"127.0.0.1:8080\"",
        "sink = \"jsonl\"                      # where pairs go: jsonl (then `shadow compare FILE`), catalogue, kafka",
        "pairs = \"proxy-pairs.jsonl\"",
        "spill_dir = \"spill\"                 # pairs wait here while the store or broker is down",
        "admin = true                        # /-/admin endpoints, needed by `shadow cutover execute`",
        "admin_token_env = \"SHADOW_ADMIN_TOKEN\"  # environment variable holding their bearer token",
        *_optional(ProxyConfig, ("mirror", "queue", "max_body")),
        "",
        "# [kafka]                           # at scale: proxies publish pairs, `shadow compare --from-kafka` workers store",
        *_optional(KafkaConfig, ("bootstrap", "pairs", "group")),
        "",
        "# [cutover]",
        *_optional(CutoverConfig, ("plan_valid_minutes", "availability_budget_s")),
        "# [cutover.gates]                   # what `shadow cutover check` demands of a zone before a flip",
        *_optional(GateConfig, ("match_rate", "last_pairs", "min_pairs", "window_hours")),
        "# [cutover.guard]                   # rolls a zone back to legacy by itself when the new engine fails",
        *_optional(GuardConfig, ("trip_after_s", "hold_max_s")),
        "",
        "# [ui]                              # `shadow ui`: the triage page for product owners",
        *_optional(UiConfig, ("host", "port", "token_env")),
        "",
    ]
    return "\n".join(lines)


def init_files(path: Path, *, legacy: str | None = None, new: str | None = None, openapi: Path | None = None,
               force: bool = False) -> tuple[Path, Path, ApiRoutes | None]:
    """Write shadow.toml (validated first) and an empty rules folder beside it; (config, rules folder, routes)."""
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists; nothing was written",
                          hint="pass --force to replace it, or --config OTHER.toml to write another file")
    if path.is_dir():
        raise ConfigError(f"{path} is a folder", hint="pass --config FOLDER/shadow.toml")
    api = routes_from_openapi(load_openapi(openapi), str(openapi)) if openapi is not None else None
    text = scaffold_config(legacy=legacy, new=new, api=api)
    config = parse_config(text, source=str(path), base=path.resolve().parent)  # refuses bad URLs: nothing written
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    config.store.rules.mkdir(parents=True, exist_ok=True)
    return path, config.store.rules, api
