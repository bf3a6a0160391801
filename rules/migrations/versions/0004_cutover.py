"""cutover: proxy registry and heartbeats, cutover plans, canary progress; gates' last-N index

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "proxies",
        sa.Column("instance", sa.String(128), primary_key=True),
        sa.Column("address", sa.String(256), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.Column("stopped_at", sa.DateTime()),
        sa.Column("guard", sa.Text),
    )
    op.create_table(
        "cutover_plans",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("zone", sa.String(64), nullable=False),
        sa.Column("command", sa.String(128)),
        sa.Column("from_mode", sa.String(16), nullable=False),
        sa.Column("to_mode", sa.String(16), nullable=False),
        sa.Column("config_path", sa.Text, nullable=False),
        sa.Column("config_sha", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "canary_progress",
        sa.Column("plan", sa.String(64), primary_key=True),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    # The gates read the last N pairs of a command kind in a zone.
    op.create_index("ix_pair_results_zone_command_received", "pair_results", ["zone", "command", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_pair_results_zone_command_received", "pair_results")
    for table in ("canary_progress", "cutover_plans", "proxies"):
        op.drop_table(table)
