"""quirk timelines: a covering index on quirk_hours (quirk, hour, differences)

Revision ID: 0005
Revises: 0004

The triage page draws a sparkline for each quirk of the list it shows; with the
index, a page of the most frequent quirks of a 10-million-pair catalogue reads
their hourly occurrences from the index alone.
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_quirk_hours_timeline", "quirk_hours", ["quirk", "hour", "differences"])


def downgrade() -> None:
    op.drop_index("ix_quirk_hours_timeline", "quirk_hours")
