"""DuckDB baseline for `tierlog-bench query`: loads the benchmark's NDJSON file into an
in-memory table `logs` (load time reported apart), then runs each query `runs` times.

stdin:  {"file": path, "runs": n, "queries": [[name, sql], ...]}
stdout: {"load_s": s, "rows": n, "results": [{"name", "seconds": [...], "rows": [[str, ...]]}]}
"""
import json
import sys
import time

import duckdb

req = json.load(sys.stdin)
con = duckdb.connect()
started = time.perf_counter()
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
