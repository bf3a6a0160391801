"""Read-only views of the catalogue (`reports.summary`: match rates overall, per command, per zone)."""
