"""Reads the export's Parquet table with DuckDB, as an analyst would, for the export
test (export.rs): row and request counts, cost and token sums per day and user and per
day and model key, the column types, and the result of the departments query that
docs/operations.md and the README show, run as it is written there (only its two paths
replaced).

Usage: duckdb_check.py TABLE_DIR DEPARTMENTS_CSV OPERATIONS_MD; prints one JSON object.
"""

import json
import os
import re
import sys

import duckdb

# The paths the documented query names, replaced by the test's.
DOC_TABLE = "/data/lake/chokepoint_usage"
DOC_CSV = "departments.csv"


def sql_block(path, heading):
    """The first SQL block under `heading` in the Markdown file at `path`."""
    text = open(path, encoding="utf-8").read()
    section = text.split(heading, 1)
    if len(section) != 2:
        sys.exit(f"{path}: no {heading!r} section")
    match = re.search(r"```sql\n(.*?)```", section[1], re.S)
    if not match:
        sys.exit(f"{path}: no sql block under {heading!r}")
    return match.group(1)


def documented_query(operations):
    """The operations guide's departments query, which the README shows too."""
    query = sql_block(operations, "### Cost by department and model")
    readme = os.path.join(os.path.dirname(operations), "..", "README.md")
    if sql_block(readme, "## Operations") != query:
        sys.exit("README.md's Operations query differs from docs/operations.md's")
    return query


def rows(con, sql):
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def main():
    table, csv, doc = sys.argv[1:4]
    con = duckdb.connect()
    con.execute(
        f"CREATE VIEW usage AS SELECT * FROM read_parquet('{table}/date=*/*.parquet', "
        "hive_partitioning = true)"
    )
    totals = """sum("chokepoint.cost_micros")::BIGINT AS cost_micros,
        sum("gen_ai.usage.input_tokens")::BIGINT AS input_tokens,
        sum("gen_ai.usage.output_tokens")::BIGINT AS output_tokens"""
    query = documented_query(doc).replace(DOC_TABLE, table).replace(DOC_CSV, csv)
    out = {
        "columns": rows(con, "SELECT column_name, column_type FROM (DESCRIBE usage)"),
        "counts": rows(
            con,
            """SELECT count(*) AS rows,
                 count(DISTINCT "chokepoint.request_id") AS request_ids,
                 count(*) FILTER (WHERE CAST(date AS VARCHAR) <> "chokepoint.date") AS off_day
               FROM usage""",
        )[0],
        "by_user": rows(
            con,
            f"""SELECT CAST(date AS VARCHAR) AS day, "chokepoint.user" AS id, {totals}
                FROM usage GROUP BY ALL ORDER BY ALL""",
        ),
        "by_model": rows(
            con,
            f"""SELECT CAST(date AS VARCHAR) AS day, "chokepoint.model_key" AS id, {totals}
                FROM usage WHERE "chokepoint.model_key" IS NOT NULL
                GROUP BY ALL ORDER BY ALL""",
        ),
        "groups": rows(
            con,
            """SELECT "chokepoint.request_id" AS id, "chokepoint.groups" AS groups,
                 epoch_ms("chokepoint.time_unix_ms") AS ms
               FROM usage ORDER BY 1""",
        ),
        "departments": rows(con, query),
    }
    print(json.dumps(out, default=str))


main()
