"""The Grafana dashboard (`shadow grafana-dashboard`) queries only metrics the code exports, and charts them all.

What "exported" means is read from the exposition text itself: a ProxyMetrics and a WorkerMetrics are
created and `prometheus_client.generate_latest` renders their registries, as `/-/metrics` and a worker's
`/metrics` do. The metric names of every PromQL expression on the dashboard (panels and template
variables) must be among the sample names found there.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterator

import pytest
from prometheus_client import generate_latest
from typer.testing import CliRunner

from shadow.cli import app
from shadow.metrics import ProxyMetrics, WorkerMetrics, grafana_dashboard

SUFFIXES = {"counter": ("",), "gauge": ("",), "untyped": ("",), "summary": ("", "_sum", "_count"),
            "histogram": ("_bucket", "_sum", "_count"), "info": ("",)}
# PromQL words that look like identifiers but are no metric: keywords, and label lists after these.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
            "inf", "nan"}
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
IDENTIFIER = re.compile(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")
NAME_MATCHER = re.compile(r'__name__\s*=~?\s*"([^"]*)"')
LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$", re.S)


def exposition() -> str:
    """What the proxy's and a worker's metrics endpoints serve (every metric, labelled ones included)."""
    worker = WorkerMetrics("shadow.pairs", group="shadow-comparators", catalogue="sqlite:///shadow.db")
    worker.lag.labels("shadow.pairs").set(0)
    return generate_latest(ProxyMetrics().registry).decode() + generate_latest(worker.registry).decode()


def exported() -> tuple[set[str], dict[str, set[str]]]:
    """Every sample name the endpoints can serve, and each metric family's sample names by family name."""
    names: set[str] = set()
    families: dict[str, set[str]] = {}
    for line in exposition().splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(" ", 3)
            samples = {family + suffix for suffix in SUFFIXES.get(kind, ("",))}
            if family.endswith("_created"):
                continue  # prometheus_client's creation stamps: exported, not worth a panel
            families[family] = samples
            names |= samples
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names, families


def expressions(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and template variable query."""
    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} query {target['refId']}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            label_values = LABEL_VALUES.match(query)
            yield f"variable ${variable['name']}", label_values.group(1) if label_values else query


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: not functions, keywords, label names or variables."""
    names = {name for matcher in NAME_MATCHER.findall(expr) for name in matcher.split("|")}
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)   # strings: label values, regexes, Grafana $variables
    expr = re.sub(r"\{[^}]*\}", "", expr)             # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)            # range and subquery selectors: [$__rate_interval]
    expr = GROUPING.sub("", expr)                     # by (le), on (instance) …
    for name, call in IDENTIFIER.findall(expr):
        if not call and name.lower() not in KEYWORDS:
            names.add(name)
    return names


def test_every_metric_the_dashboard_queries_is_exported() -> None:
    names, _ = exported()
    missing = {}
    for where, expr in expressions(grafana_dashboard()):
        unknown = sorted(metric_names(expr) - names)
        if unknown:
            missing[where] = unknown
    assert not missing, f"the dashboard queries metrics the code does not export: {missing}"


def test_the_metric_name_parser_sees_through_promql() -> None:
    expr = ('sum by (le, instance) (rate(shadow_proxy_primary_latency_seconds_bucket{job=~"$job", kind="x"}'
            '[$__rate_interval])) / ignoring(status) group_left sum(shadow_x_total offset 5m) or vector(0) '
            'and on (instance) {__name__=~"a_total|b"}')
    assert metric_names(expr) == {"shadow_proxy_primary_latency_seconds_bucket", "shadow_x_total", "a_total", "b"}


def test_every_expression_is_promql_and_a_real_parser_finds_the_same_metric_names() -> None:
    promql = pytest.importorskip("promql_parser", reason="pip install -e '.[dev]' (promql-parser)")
    grafana = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "1m"}  # Grafana fills these in

    for where, expr in expressions(grafana_dashboard()):
        text = expr
        for variable, value in grafana.items():
            text = text.replace(variable, value)
        try:
            tree = promql.parse(text)
        except Exception as exc:
            pytest.fail(f"{where} is not PromQL: {exc}\n{expr}")
        assert selected_names(promql, tree) == metric_names(expr), where


def selected_names(promql: Any, tree: Any) -> set[str]:
    """The metric names of a parsed expression's vector selectors (by name or by a __name__ matcher)."""
    names: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql.VectorSelector):
            names.update([node.name] if node.name else [])
            names.update(name for matcher in node.matchers.matchers if matcher.name == "__name__"
                         for name in matcher.value.split("|"))
        return True

    promql.walk(tree, visit)
    return names


def test_every_exported_metric_is_on_the_dashboard() -> None:
    _, families = exported()
    queried = set().union(*(metric_names(expr) for _, expr in expressions(grafana_dashboard())))
    uncharted = sorted(family for family, samples in families.items() if not samples & queried)
    assert not uncharted, (f"exported but on no panel of shadow/grafana/dashboard.json: {uncharted} — add a query "
                           f"for each (and a line in docs/reference/metrics.md)")


def test_the_dashboard_asks_for_a_prometheus_data_source_and_filters_by_job_and_instance() -> None:
    dashboard = grafana_dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert {"job", "instance"} <= set(variables)
    ids = []
    for panel in dashboard["panels"]:
        ids.append(panel["id"])
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            for selector in re.findall(r"\{[^}]*\}", target["expr"]):
                assert 'job=~"$job"' in selector and 'instance=~"$instance"' in selector, (panel["title"], selector)
    assert len(ids) == len(set(ids)), "panel ids repeat"


def test_shadow_grafana_dashboard_prints_the_dashboard_or_writes_it(tmp_path) -> None:
    runner = CliRunner()
    printed = runner.invoke(app, ["grafana-dashboard"], prog_name="shadow")
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.stdout) == grafana_dashboard()
    target = tmp_path / "dashboard.json"
    written = runner.invoke(app, ["grafana-dashboard", "-o", str(target)], prog_name="shadow")
    assert written.exit_code == 0, written.output
    assert json.loads(target.read_text()) == grafana_dashboard()
