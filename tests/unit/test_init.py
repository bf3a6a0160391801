"""`shadow init`: the file it writes validates as written, routes come from OpenAPI, nothing is overwritten."""

from __future__ import annotations

import json
import tomllib
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cutover.routing import RouteTable
from shadow.cli import app
from shadow.config import load_config, parse_config, path_params
from shadow.errors import ConfigError
from shadow.scaffold import init_files, routes_from_openapi, scaffold_config

DEMO = Path(__file__).resolve().parents[2] / "shadow" / "demo"
runner = CliRunner()


def _flat(text: str) -> str:
    """CLI output with rich's line wrapping undone."""
    return " ".join(text.split())


def test_the_default_file_validates_and_says_what_to_do(tmp_path: Path) -> None:
    path, rules, api = init_files(tmp_path / "shadow.toml")
    config = load_config(path)
    assert api is None and rules == tmp_path / "rules" and rules.is_dir() and not any(rules.iterdir())
    assert config.targets["legacy"].url == "http://127.0.0.1:8081" and config.routes == []
    assert config.routing.default == "shadow" and config.proxy.admin
    text = path.read_text()
    assert "shadow doctor" in text and "# [[routes]]" in text and "--legacy URL --new URL" in text
    # Commented keys are the model's defaults: uncommenting one still validates.
    uncommented = text.replace("# queue = 1000", "queue = 1000").replace("# [ui]", "[ui]").replace("# port = 8089",
                                                                                                  "port = 8089")
    assert parse_config(uncommented).ui.port == 8089


def test_urls_are_used_and_a_bad_one_writes_nothing(tmp_path: Path) -> None:
    path, _, _ = init_files(tmp_path / "shadow.toml", legacy="http://10.0.0.5:8080/", new="https://new.example:9443")
    config = load_config(path)
    assert config.targets["legacy"].url == "http://10.0.0.5:8080" and config.targets["new"].url == "https://new.example:9443"
    other = tmp_path / "other.toml"
    with pytest.raises(ConfigError, match="targets.new.url"):
        init_files(other, legacy="http://a:1", new="ftp://nope")
    assert not other.exists() and not (tmp_path / "rules-other").exists()


def test_an_existing_file_is_never_overwritten_without_force(tmp_path: Path) -> None:
    path = tmp_path / "shadow.toml"
    path.write_text("# mine\n")
    result = runner.invoke(app, ["init", "--config", str(path)])
    assert result.exit_code == 2 and "already exists" in _flat(result.output) and "--force" in _flat(result.output)
    assert path.read_text() == "# mine\n"
    result = runner.invoke(app, ["init", "--config", str(path), "--force", "--legacy", "http://127.0.0.1:9001"])
    assert result.exit_code == 0, result.output
    assert load_config(path).targets["legacy"].url == "http://127.0.0.1:9001"


def test_the_reference_pairs_openapi_gives_the_reference_config(tmp_path: Path) -> None:
    """The demo's hand-written shadow.toml and the one made from its OpenAPI document agree route for route."""
    result = runner.invoke(app, ["init", "--openapi", str(DEMO / "openapi.yaml"), "--config", str(tmp_path / "s.toml"),
                                 "--json"])
    assert result.exit_code == 0, result.output
    made = load_config(tmp_path / "s.toml")
    hand = load_config(DEMO / "shadow.toml")
    assert [(r.match, r.command, r.keys, r.read) for r in made.routes] == \
           [(r.match, r.command, r.keys, r.read) for r in hand.routes]
    assert all(r.zone == "zone" for r in made.routes)
    summary = json.loads(result.stdout)
    assert summary["reads"] == 2 and summary["skipped"] == []
    text = (tmp_path / "s.toml").read_text()
    assert "#   GET /loads/{load_id}  (getLoad)" in text  # GETs are reads: listed, never routes


def test_swagger_base_path_odd_parameters_and_missing_operation_ids() -> None:
    document = {
        "swagger": "2.0", "basePath": "/api/v2/",
        "paths": {
            "/trips/{trip-id}/stops/{stop.no}": {"patch": {"summary": "move"}, "get": {"operationId": "getStop"}},
            "/trips/{trip-id}": {"get": {}, "delete": {"operationId": "Trips.Cancel"}},
            "/trips": {"post": {"parameters": [{"in": "body", "name": "b", "schema": {
                "properties": {"trip-id": {}, "region": {}}}}]}},
            "/broken/{x": {"post": {}},
            "relative/path": {"put": {}},
        },
    }
    api = routes_from_openapi(document, "swagger.json")
    assert api.prefix == "/api/v2"
    routes = {r.command: r for r in api.commands}
    patch = routes["patch_api_v2_trips_stops"]
    assert patch.path == "/api/v2/trips/{trip_id}/stops/{stop_no}" and patch.keys == ("trip_id", "stop_no")
    assert patch.read == "GET /api/v2/trips/{trip_id}/stops/{stop_no}"
    assert routes["trips_cancel"].read == "GET /api/v2/trips/{trip_id}"
    assert routes["post_api_v2_trips"].keys == () and routes["post_api_v2_trips"].zone == "region"
    assert len(api.skipped) == 2 and any("unbalanced" in s for s in api.skipped)
    config = parse_config(scaffold_config(api=api))
    table = RouteTable.from_config(config)
    found = table.match("PATCH", "/api/v2/trips/T-1/stops/3")
    assert found is not None and found[1] == {"trip_id": "T-1", "stop_no": "3"}
    assert table.match("GET", "/api/v2/trips/T-1") is None  # a read: not a command


@pytest.mark.parametrize("content, message", [
    ("{not json", "neither JSON nor YAML"),
    ("a: [1, 2\n", "neither JSON nor YAML"),
    ("title: an API\n", "not an OpenAPI document"),
    ('{"openapi": "3.0.0"}', "no 'paths'"),
])
def test_a_bad_openapi_file_is_refused_and_nothing_is_written(tmp_path: Path, content: str, message: str) -> None:
    spec = tmp_path / "api.yaml"
    spec.write_text(content)
    result = runner.invoke(app, ["init", "--openapi", str(spec), "--config", str(tmp_path / "shadow.toml")])
    assert result.exit_code == 2 and message in _flat(result.output)
    assert not (tmp_path / "shadow.toml").exists()
    result = runner.invoke(app, ["init", "--openapi", str(tmp_path / "missing.yaml"), "--config",
                                 str(tmp_path / "shadow.toml")])
    assert result.exit_code == 2 and "no such OpenAPI file" in _flat(result.output)


# -- property: any document gives a file that validates, with one route per write operation -----------------

_segment = st.one_of(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.~", min_size=1, max_size=8),
                     st.text(min_size=1, max_size=10).filter(lambda s: "{" not in s and "}" not in s and "/" not in s
                                                              and not any(c.isspace() for c in s))
                     .map(lambda s: "{" + s + "}"))
_path = st.lists(_segment, min_size=0, max_size=5).map(lambda parts: "/" + "/".join(parts))
_operation = st.fixed_dictionaries({}, optional={"operationId": st.text(max_size=20), "summary": st.text(max_size=40)})
_item = st.dictionaries(st.sampled_from(["get", "post", "put", "patch", "delete", "head"]), _operation, max_size=4)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(paths=st.dictionaries(_path, _item, max_size=8), prefix=st.sampled_from(["", "/v1", "/api/{version}"]))
def test_any_document_gives_a_valid_file_with_one_route_per_write(paths: dict, prefix: str) -> None:
    document = {"openapi": "3.1.0", "servers": [{"url": f"https://api.example{prefix}"}], "paths": paths}
    api = routes_from_openapi(document)
    text = scaffold_config(legacy="http://127.0.0.1:1", new="http://127.0.0.1:2", api=api)
    tomllib.loads(text)
    config = parse_config(text)
    def usable(path: str) -> bool:
        return not any(c.isspace() or unicodedata.category(c) in ("Cc", "Cs") for c in path)

    writes = sum(1 for path, item in paths.items() if usable(path) for m in item if m in ("post", "put", "patch", "delete"))
    twice = [s for s in api.skipped if "declared twice" in s]  # '/{a-b}' and '/{a_b}' are one template here
    assert len(config.routes) == writes - len(twice) == len(api.commands)
    assert len({r.command for r in config.routes}) == len(config.routes)
    assert all(r.method != "GET" for r in config.routes)
    table = RouteTable.from_config(config)  # every template compiles
    for route in config.routes:
        assert route.keys == route.params or (not route.params and len(route.keys) <= 1)
        if route.read is not None:
            assert set(path_params(route.read_path)) <= set(route.keys)
        assert table.match(route.method, route.path.replace("{", "").replace("}", "")) is not None
