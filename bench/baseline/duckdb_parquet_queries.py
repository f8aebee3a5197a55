"""DuckDB baseline for `tierlog-bench cold`: a view `logs` over the cold tier's own Parquet
files (read where they lie, nothing loaded first), then each query `runs` times.

stdin:  {"files": [path, ...], "runs": n, "queries": [[name, sql], ...]}
stdout: {"rows": n, "threads": n, "results": [{"name", "seconds": [...], "rows": [[str, ...]]}]}
"""
import json
import sys
import time

import duckdb

req = json.load(sys.stdin)
con = duckdb.connect()
# A view cannot take parameters: the paths go in as SQL string literals.
files = ", ".join("'" + f.replace("'", "''") + "'" for f in req["files"])
con.execute(f"CREATE VIEW logs AS SELECT * FROM read_parquet([{files}])")
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
json.dump({"rows": rows, "threads": con.execute("SELECT current_setting('threads')").fetchone()[0], "results": results}, sys.stdout)
