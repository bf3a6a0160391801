"""roll-ups by hour (pairs, latency histograms, quirk occurrences), natural keys, report snapshots

Revision ID: 0003
Revises: 0002

Reports read hourly roll-ups instead of scanning pair_results; the entity
audit looks pairs up by any natural key. An existing catalogue is back-filled
from its pair results (and, for the keys, from its kept pairs).
"""

import zlib

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pair_hours",
        sa.Column("hour", sa.DateTime(), primary_key=True),
        sa.Column("command", sa.String(128), primary_key=True),
        sa.Column("zone", sa.String(64), primary_key=True),
        sa.Column("pairs", sa.Integer, nullable=False),
        sa.Column("matched", sa.Integer, nullable=False),
        sa.Column("differences", sa.Integer, nullable=False),
        sa.Column("legacy_errors", sa.Integer, nullable=False),
        sa.Column("new_errors", sa.Integer, nullable=False),
    )
    op.create_table(
        "latency_hours",
        sa.Column("hour", sa.DateTime(), primary_key=True),
        sa.Column("command", sa.String(128), primary_key=True),
        sa.Column("zone", sa.String(64), primary_key=True),
        sa.Column("target", sa.String(16), primary_key=True),
        sa.Column("bin", sa.Integer, primary_key=True),
        sa.Column("pairs", sa.Integer, nullable=False),
    )
    op.create_table(
        "quirk_hours",
        sa.Column("quirk", sa.String(32), primary_key=True),
        sa.Column("hour", sa.DateTime(), primary_key=True),
        sa.Column("command", sa.String(128), primary_key=True),
        sa.Column("zone", sa.String(64), primary_key=True),
        sa.Column("differences", sa.Integer, nullable=False),
        sa.Column("pairs", sa.Integer, nullable=False),
    )
    op.create_index("ix_quirk_hours_hour", "quirk_hours", ["hour"])
    op.create_table(
        "pair_keys",
        sa.Column("token", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("value", sa.String(256), nullable=False),
    )
    op.create_index("ix_pair_keys_name_value", "pair_keys", ["name", "value"])
    op.create_table(
        "report_snapshots",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("taken_at", sa.DateTime(), nullable=False),
        sa.Column("scope", sa.String(256), nullable=False),
        sa.Column("pairs", sa.Integer, nullable=False),
        sa.Column("matched", sa.Integer, nullable=False),
        sa.Column("accepted", sa.Integer, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_report_snapshots_scope", "report_snapshots", ["scope", "taken_at"])
    _backfill(op.get_bind())


def _backfill(conn: sa.Connection) -> None:
    """Build the new roll-ups and keys from what the catalogue already holds, a page at a time."""
    # Uses the live roll-up code: a later revision that changes these tables must bring its own back-fill.
    from rules.rollups import Contribution, HourlyRollups
    from rules.schema import differences, pair_keys, pair_results, pairs
    from shadow.model import Pair, from_json

    dialect = conn.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    last = ""
    while True:
        rows = conn.execute(sa.select(pair_results.c.token, pair_results.c.received_at, pair_results.c.command,
                                      pair_results.c.zone, pair_results.c.matched, pair_results.c.legacy_status,
                                      pair_results.c.new_status, pair_results.c.legacy_latency_ms,
                                      pair_results.c.new_latency_ms)
                            .where(pair_results.c.token > last).order_by(pair_results.c.token).limit(5000)).all()
        if not rows:
            break
        tokens = [row[0] for row in rows]
        occurrences: dict[str, list[tuple[str, str]]] = {}
        for token, fingerprint, quirk in conn.execute(
                sa.select(differences.c.token, differences.c.fingerprint, differences.c.quirk)
                .where(differences.c.token.in_(tokens))):
            occurrences.setdefault(token, []).append((fingerprint, quirk))
        hourly = HourlyRollups()
        for row in rows:
            hourly.add(Contribution(*row[1:], occurrences.get(row[0], ())), 1)
        for rollup in (hourly.pairs, hourly.latency, hourly.quirks):  # the tables this revision made, no later ones
            rollup.flush(conn, insert)
        keys = []
        for token, body in conn.execute(sa.select(pairs.c.token, pairs.c.body).where(pairs.c.token.in_(tokens))):
            pair = from_json(zlib.decompress(body), Pair)
            keys += [{"token": token, "name": k[:128], "value": str(v)[:256]} for k, v in pair.command.keys.items()]
        if keys:
            conn.execute(pair_keys.insert(), keys)
        last = tokens[-1]


def downgrade() -> None:
    for table in ("report_snapshots", "pair_keys", "quirk_hours", "latency_hours", "pair_hours"):
        op.drop_table(table)
