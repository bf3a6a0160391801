"""`shadow grafana-dashboard`: the Grafana dashboard for the proxies' and the comparator workers' metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from shadow.cli.common import app, err, examples, handle_errors


@app.command("grafana-dashboard", epilog=examples(
    "shadow grafana-dashboard -o shadow-dashboard.json",
    "shadow grafana-dashboard -o /var/lib/grafana/dashboards/shadow.json"))
@handle_errors
def grafana_dashboard_cmd(output: Optional[Path] = typer.Option(None, "--out", "-o",
                                                                help="write it to this file instead of stdout")) -> None:
    """Print the Grafana dashboard (JSON) for the proxies' and comparator workers' Prometheus metrics: import it
    in Grafana and pick your Prometheus data source."""
    from shadow.metrics import grafana_dashboard

    text = json.dumps(grafana_dashboard(), indent=2, ensure_ascii=False) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    err.print(f"dashboard written to {output}: Grafana → Dashboards → New → Import, then pick your Prometheus "
              f"data source")
