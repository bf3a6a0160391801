"""The catalogue's tables (SQLAlchemy Core). Changes go through an Alembic revision."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# One row per pair, keyed by dispatch token: a re-compared pair replaces its row.
pair_results = sa.Table(
    "pair_results",
    metadata,
    sa.Column("token", sa.String(64), primary_key=True),
    sa.Column("command", sa.String(128), nullable=False),
    sa.Column("zone", sa.String(64)),
    sa.Column("entity", sa.String(256)),          # the first natural key's value, e.g. a load id
    sa.Column("received_at", sa.DateTime(timezone=False), nullable=False),
    sa.Column("compared_at", sa.DateTime(timezone=False), nullable=False),
    sa.Column("matched", sa.Boolean, nullable=False),
    sa.Column("difference_count", sa.Integer, nullable=False),
    sa.Column("legacy_status", sa.String(16), nullable=False),
    sa.Column("new_status", sa.String(16), nullable=False),
    sa.Column("legacy_latency_ms", sa.Float, nullable=False),
    sa.Column("new_latency_ms", sa.Float, nullable=False),
    sa.Column("primary_target", sa.String(16), nullable=False),
    sa.Index("ix_pair_results_received_at", "received_at"),
    sa.Index("ix_pair_results_command_zone", "command", "zone"),
    sa.Index("ix_pair_results_entity", "entity"),
    sa.Index("ix_pair_results_zone_command_received", "zone", "command", "received_at"),  # Alembic 0004: gates
)

# The pair itself (redacted, zlib-compressed JSON), so rules can be re-applied later.
pairs = sa.Table(
    "pairs",
    metadata,
    sa.Column("token", sa.String(64), primary_key=True),
    sa.Column("body", sa.LargeBinary, nullable=False),
)

# Field-level differences of the pairs that did not match.
differences = sa.Table(
    "differences",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("token", sa.String(64), nullable=False),
    sa.Column("fingerprint", sa.String(32), nullable=False),
    sa.Column("quirk", sa.String(32), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("legacy_value", sa.Text),   # JSON
    sa.Column("new_value", sa.Text),      # JSON
    sa.Index("ix_differences_token", "token"),
    sa.Index("ix_differences_fingerprint", "fingerprint"),
    sa.Index("ix_differences_quirk", "quirk"),
)

# One row per fingerprint (command kind + wildcarded path + change + transition class).
fingerprints = sa.Table(
    "fingerprints",
    metadata,
    sa.Column("fingerprint", sa.String(32), primary_key=True),
    sa.Column("quirk", sa.String(32), nullable=False),
    sa.Column("command", sa.String(128), nullable=False),
    sa.Column("pattern", sa.Text, nullable=False),
    sa.Column("change", sa.String(16), nullable=False),
    sa.Column("transition", sa.String(64), nullable=False),
    sa.Column("differences", sa.Integer, nullable=False),
    sa.Column("pairs", sa.Integer, nullable=False),
    sa.Column("first_seen", sa.DateTime(timezone=False)),
    sa.Column("last_seen", sa.DateTime(timezone=False)),
    sa.Index("ix_fingerprints_quirk", "quirk"),
)

# One row per quirk: one field behaving one way, wherever it showed; roll-ups kept as pairs are stored.
quirks = sa.Table(
    "quirks",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("field", sa.Text, nullable=False),
    sa.Column("change", sa.String(16), nullable=False),
    sa.Column("transition", sa.String(64), nullable=False),
    sa.Column("differences", sa.Integer, nullable=False),
    sa.Column("pairs", sa.Integer, nullable=False),
    sa.Column("first_seen", sa.DateTime(timezone=False)),
    sa.Column("last_seen", sa.DateTime(timezone=False)),
    sa.Column("example_token", sa.String(64)),
    sa.Column("example_command", sa.String(128)),
    sa.Column("example_path", sa.Text),
    sa.Column("example_legacy", sa.Text),  # JSON
    sa.Column("example_new", sa.Text),     # JSON
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("verdict_source", sa.String(64)),  # the rule file or detector that set it
    sa.Column("owner", sa.String(128)),
    sa.Column("note", sa.Text),
    sa.Column("ticket", sa.String(64)),
    sa.Column("updated_at", sa.DateTime(timezone=False)),
    sa.Index("ix_quirks_verdict", "verdict"),
)

# Per quirk and zone: answers "which quirks hit this zone" without scanning differences.
quirk_zones = sa.Table(
    "quirk_zones",
    metadata,
    sa.Column("quirk", sa.String(32), primary_key=True),
    sa.Column("zone", sa.String(64), primary_key=True),
    sa.Column("differences", sa.Integer, nullable=False),
    sa.Column("pairs", sa.Integer, nullable=False),
    sa.Index("ix_quirk_zones_zone", "zone"),
)

# -- roll-ups by hour (Alembic 0003): reports read these instead of scanning pair_results ---------
# DESIGN.md "Budgets": pandas read_sql + groupby of 10 M pairs took 45 s and 6 GB; these rows are
# moved as pairs are stored, so a report sums thousands of rows, not millions.

# Per hour, command kind and zone ('' when none): pairs, matches, errors on each side.
pair_hours = sa.Table(
    "pair_hours",
    metadata,
    sa.Column("hour", sa.DateTime(timezone=False), primary_key=True),
    sa.Column("command", sa.String(128), primary_key=True),
    sa.Column("zone", sa.String(64), primary_key=True),
    sa.Column("pairs", sa.Integer, nullable=False),
    sa.Column("matched", sa.Integer, nullable=False),
    sa.Column("differences", sa.Integer, nullable=False),
    sa.Column("legacy_errors", sa.Integer, nullable=False),
    sa.Column("new_errors", sa.Integer, nullable=False),
)

# Latency histograms per hour, command kind, zone and target: log-spaced bins (rules.rollups.latency_bin).
latency_hours = sa.Table(
    "latency_hours",
    metadata,
    sa.Column("hour", sa.DateTime(timezone=False), primary_key=True),
    sa.Column("command", sa.String(128), primary_key=True),
    sa.Column("zone", sa.String(64), primary_key=True),
    sa.Column("target", sa.String(16), primary_key=True),
    sa.Column("bin", sa.Integer, primary_key=True),
    sa.Column("pairs", sa.Integer, nullable=False),
)

# Per quirk, hour, command kind and zone: occurrences over time, for windows, trends and sparklines.
quirk_hours = sa.Table(
    "quirk_hours",
    metadata,
    sa.Column("quirk", sa.String(32), primary_key=True),
    sa.Column("hour", sa.DateTime(timezone=False), primary_key=True),
    sa.Column("command", sa.String(128), primary_key=True),
    sa.Column("zone", sa.String(64), primary_key=True),
    sa.Column("differences", sa.Integer, nullable=False),
    sa.Column("pairs", sa.Integer, nullable=False),
    sa.Index("ix_quirk_hours_hour", "hour"),
    sa.Index("ix_quirk_hours_timeline", "quirk", "hour", "differences"),  # Alembic 0005: the triage page's sparklines
)

# Every natural key of every pair: the entity audit (`shadow pairs show --key load_id=L-123`).
pair_keys = sa.Table(
    "pair_keys",
    metadata,
    sa.Column("token", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
    sa.Index("ix_pair_keys_name_value", "name", "value"),
)

# One small row per `shadow report` run: the trend across runs.
report_snapshots = sa.Table(
    "report_snapshots",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("taken_at", sa.DateTime(timezone=False), nullable=False),
    sa.Column("scope", sa.String(256), nullable=False),   # the filters, e.g. "zone=chi command=*"
    sa.Column("pairs", sa.Integer, nullable=False),
    sa.Column("matched", sa.Integer, nullable=False),
    sa.Column("accepted", sa.Integer, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),          # JSON: verdict counts, per-command rates, quirk ids
    sa.Index("ix_report_snapshots_scope", "scope", "taken_at"),
)

# -- cutover (Alembic 0004) ----------------------------------------------------------------------

# Every proxy registers and heartbeats here, so a flip knows whom to wait for.
proxies = sa.Table(
    "proxies",
    metadata,
    sa.Column("instance", sa.String(128), primary_key=True),
    sa.Column("address", sa.String(256), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),     # the route-table version it runs
    sa.Column("started_at", sa.DateTime(timezone=False), nullable=False),
    sa.Column("heartbeat_at", sa.DateTime(timezone=False), nullable=False),
    sa.Column("stopped_at", sa.DateTime(timezone=False)),
    sa.Column("guard", sa.Text),                             # JSON: the guard's state per zone
)

# Plans made by `shadow cutover plan`, executed (or refused) by `shadow cutover execute`.
cutover_plans = sa.Table(
    "cutover_plans",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=False), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("zone", sa.String(64), nullable=False),
    sa.Column("command", sa.String(128)),
    sa.Column("from_mode", sa.String(16), nullable=False),
    sa.Column("to_mode", sa.String(16), nullable=False),
    sa.Column("config_path", sa.Text, nullable=False),
    sa.Column("config_sha", sa.String(64), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),            # JSON: the diff, the gates, what the guard watches
    sa.Column("status", sa.String(16), nullable=False),      # planned | executed | refused | reverted
    sa.Column("updated_at", sa.DateTime(timezone=False), nullable=False),
)

# A canary plan's progress (`shadow cutover run`), so a restarted controller resumes where it stopped.
canary_progress = sa.Table(
    "canary_progress",
    metadata,
    sa.Column("plan", sa.String(64), primary_key=True),      # hash of the plan file's content
    sa.Column("step", sa.Integer, nullable=False),           # the next step to run
    sa.Column("state", sa.Text, nullable=False),             # JSON: status, current zone, step started, history
    sa.Column("updated_at", sa.DateTime(timezone=False), nullable=False),
)

# Latency histograms per day (Alembic 0006): a report over weeks sums these for its whole days and
# latency_hours only for the hours at its edges (at 10 M pairs over 60 days: 60 x fewer rows to sum).
latency_days = sa.Table(
    "latency_days",
    metadata,
    sa.Column("day", sa.DateTime(timezone=False), primary_key=True),
    sa.Column("command", sa.String(128), primary_key=True),
    sa.Column("zone", sa.String(64), primary_key=True),
    sa.Column("target", sa.String(16), primary_key=True),
    sa.Column("bin", sa.Integer, primary_key=True),
    sa.Column("pairs", sa.Integer, nullable=False),
)
