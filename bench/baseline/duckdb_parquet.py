"""DuckDB baseline for `tierlog-bench migrate`: writes the rows of a log file as one
Parquet file with zstd, as DuckDB lays them out, and reports its size.

stdin:  {"file": path (.gz read as such), "format": "text" | "ndjson", "out": path}
stdout: {"rows": n, "bytes": n, "seconds": s}
A text log is one VARCHAR column, one row a line; NDJSON gets the columns DuckDB infers.
"""
import json
import os
import sys
import time

import duckdb

req = json.load(sys.stdin)
con = duckdb.connect()
if req["format"] == "text":
    source = (
        "read_csv(?, columns = {'line': 'VARCHAR'}, header = false, delim = '\\x01', quote = '', escape = '', "
        "strict_mode = false)"
    )
else:
    source = "read_json_auto(?, format = 'newline_delimited')"
started = time.perf_counter()
con.execute(f"COPY (SELECT * FROM {source}) TO '{req['out']}' (FORMAT parquet, COMPRESSION zstd)", [req["file"]])
seconds = time.perf_counter() - started
(rows,) = con.execute("SELECT count(*) FROM read_parquet(?)", [req["out"]]).fetchone()
print(json.dumps({"rows": rows, "bytes": os.path.getsize(req["out"]), "seconds": seconds}))
