"""catalogue: pair results, pairs, differences, fingerprints, quirks, quirk roll-ups per zone

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pair_results",
        sa.Column("token", sa.String(64), primary_key=True),
        sa.Column("command", sa.String(128), nullable=False),
        sa.Column("zone", sa.String(64)),
        sa.Column("entity", sa.String(256)),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("compared_at", sa.DateTime(), nullable=False),
        sa.Column("matched", sa.Boolean, nullable=False),
        sa.Column("difference_count", sa.Integer, nullable=False),
        sa.Column("legacy_status", sa.String(16), nullable=False),
        sa.Column("new_status", sa.String(16), nullable=False),
        sa.Column("legacy_latency_ms", sa.Float, nullable=False),
        sa.Column("new_latency_ms", sa.Float, nullable=False),
        sa.Column("primary_target", sa.String(16), nullable=False),
    )
    op.create_index("ix_pair_results_received_at", "pair_results", ["received_at"])
    op.create_index("ix_pair_results_command_zone", "pair_results", ["command", "zone"])
    op.create_index("ix_pair_results_entity", "pair_results", ["entity"])
    op.create_table(
        "pairs",
        sa.Column("token", sa.String(64), primary_key=True),
        sa.Column("body", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "differences",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("quirk", sa.String(32), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("legacy_value", sa.Text),
        sa.Column("new_value", sa.Text),
    )
    op.create_index("ix_differences_token", "differences", ["token"])
    op.create_index("ix_differences_fingerprint", "differences", ["fingerprint"])
    op.create_index("ix_differences_quirk", "differences", ["quirk"])
    op.create_table(
        "fingerprints",
        sa.Column("fingerprint", sa.String(32), primary_key=True),
        sa.Column("quirk", sa.String(32), nullable=False),
        sa.Column("command", sa.String(128), nullable=False),
        sa.Column("pattern", sa.Text, nullable=False),
        sa.Column("change", sa.String(16), nullable=False),
        sa.Column("transition", sa.String(64), nullable=False),
        sa.Column("differences", sa.Integer, nullable=False),
        sa.Column("pairs", sa.Integer, nullable=False),
        sa.Column("first_seen", sa.DateTime()),
        sa.Column("last_seen", sa.DateTime()),
    )
    op.create_index("ix_fingerprints_quirk", "fingerprints", ["quirk"])
    op.create_table(
        "quirks",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("field", sa.Text, nullable=False),
        sa.Column("change", sa.String(16), nullable=False),
        sa.Column("transition", sa.String(64), nullable=False),
        sa.Column("differences", sa.Integer, nullable=False),
        sa.Column("pairs", sa.Integer, nullable=False),
        sa.Column("first_seen", sa.DateTime()),
        sa.Column("last_seen", sa.DateTime()),
        sa.Column("example_token", sa.String(64)),
        sa.Column("example_command", sa.String(128)),
        sa.Column("example_path", sa.Text),
        sa.Column("example_legacy", sa.Text),
        sa.Column("example_new", sa.Text),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("verdict_source", sa.String(64)),
        sa.Column("owner", sa.String(128)),
        sa.Column("note", sa.Text),
        sa.Column("ticket", sa.String(64)),
        sa.Column("updated_at", sa.DateTime()),
    )
    op.create_index("ix_quirks_verdict", "quirks", ["verdict"])
    op.create_table(
        "quirk_zones",
        sa.Column("quirk", sa.String(32), primary_key=True),
        sa.Column("zone", sa.String(64), primary_key=True),
        sa.Column("differences", sa.Integer, nullable=False),
        sa.Column("pairs", sa.Integer, nullable=False),
    )
    op.create_index("ix_quirk_zones_zone", "quirk_zones", ["zone"])


def downgrade() -> None:
    for table in ("quirk_zones", "quirks", "fingerprints", "differences", "pairs", "pair_results"):
        op.drop_table(table)
