"""SQL analytics over the whole history (issue 14), with DuckDB.

- `cache`: the columnar copy of the index's events (a DuckDB database beside the index in the
  git dir, never committed), brought up to date from new positions only.
- `session`: a read-only DuckDB connection holding `events` and every projection table, the
  statement guard, the timeout, and how results are written.
- `stats`: the figures of `fleetgit stats`; `export`: the tables as Parquet, JSONL or CSV.

Only `fleetgit sql`, `stats` and `export` import this package: duckdb stays off every other
command's start path (tests/test_analytics.py checks it).
"""
