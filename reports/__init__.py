"""Read-only views of the catalogue: summaries now; terminal, HTML, CSV/Parquet/JSON and JUnit reports to come."""
