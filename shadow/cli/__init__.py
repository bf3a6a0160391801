"""The `shadow` command: a thin skin over the library (STYLE.md, 2).

Every command parses its arguments, calls one importable function, and renders
the result — a rich table for people, `--json` for scripts.
"""

from shadow.cli import catalogue, config, cutover, demo, reconcile, report, spill, traffic  # noqa: F401  (each registers its commands)
from shadow.cli import ui  # noqa: F401  (shadow ui: the triage page)
from shadow.cli import doctor, init  # noqa: F401  (shadow init, shadow doctor, shadow catalogue upgrade: onboarding)
from shadow.cli import canary  # noqa: F401  (shadow cutover run / canary-status: canary plans)
from shadow.cli import grafana  # noqa: F401  (shadow grafana-dashboard)
from shadow.cli.common import (app, audit_app, config_app, cutover_app, demo_app, pairs_app, quirks_app,
                               rules_app, spill_app)

app.add_typer(demo_app, name="demo")
app.add_typer(quirks_app, name="quirks")
app.add_typer(rules_app, name="rules")
app.add_typer(pairs_app, name="pairs")
app.add_typer(cutover_app, name="cutover")
app.add_typer(spill_app, name="spill")
app.add_typer(audit_app, name="audit")
app.add_typer(config_app, name="config")

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the `shadow` console script."""
    app(prog_name="shadow")
