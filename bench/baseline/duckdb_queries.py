"""DuckDB baseline for `tierlog-bench query` and `tierlog-bench cold`: a table `logs`, then
each query `runs` times (after one warm-up run).

`tierlog-bench query` sends `file`, its NDJSON file, loaded into an in-memory table (load
time reported apart); `tierlog-bench cold` sends `files`, the cold tier's own Parquet
files, read where they lie through a view.

stdin:  {"file": path | "files": [path, ...], "runs": n, "queries": [[name, sql], ...]}
stdout: {"load_s": s, "rows": n, "threads": n, "results": [{"name", "seconds": [...], "rows": [[str, ...]]}]}
"""
import json
import sys
import time

import duckdb

req = json.load(sys.stdin)
con = duckdb.connect()
started = time.perf_counter()
if "files" in req:
    # A view cannot take parameters: the paths go in as SQL string literals.
    files = ", ".join("'" + f.replace("'", "''") + "'" for f in req["files"])
    con.execute(f"CREATE VIEW logs AS SELECT * FROM read_parquet([{files}])")
else:
    con.execute(
        "CREATE TABLE logs AS SELECT CAST(ts AS TIMESTAMP) AS _timestamp, level, component, message "
        "FROM read_json(?, format = 'newline_delimited', "
        "columns = {ts: 'VARCHAR', level: 'VARCHAR', component: 'VARCHAR', message: 'VARCHAR'})",
        [req["file"]],
    )
load_s = time.perf_counter() - started
(rows,) = con.execute("SELECT count(*) FROM logs").fetchone()
results = []
for name, sql in req["queries"]:
    con.execute(sql).fetchall()  # warm-up
    seconds, out = [], []
    for _ in range(req["runs"]):
        t = time.perf_counter()
        out = con.execute(sql).fetchall()
        seconds.append(time.perf_counter() - t)
    results.append({"name": name, "seconds": seconds, "rows": [[str(v) for v in row] for row in out]})
json.dump({"load_s": load_s, "rows": rows, "threads": con.execute("SELECT current_setting('threads')").fetchone()[0], "results": results}, sys.stdout)
