"""Runs SQL steps through psycopg 3 (libpq's extended query protocol) and prints what
the server answered, one JSON object per step, for the Rust tests to check.

stdin: {"conninfo": "...", "steps": [{"sql": "...", "params": [...] | null,
        "prepare": bool, "cursor": "name" | null}]}
Each step runs in its own transaction on one connection; a failed step is rolled back.
A step with "cursor" runs as a server-side cursor (DECLARE … CURSOR, then FETCH in
batches of 500 until the end). "new_connection": true opens a fresh connection first.
"""
import json
import sys

import psycopg


def main():
    spec = json.load(sys.stdin)
    conn = psycopg.connect(spec["conninfo"], connect_timeout=10)
    out = []
    for step in spec["steps"]:
        if step.get("new_connection"):
            conn.close()
            conn = psycopg.connect(spec["conninfo"], connect_timeout=10)
        try:
            if step.get("cursor"):
                with conn.cursor(name=step["cursor"]) as cur:
                    cur.itersize = 500
                    cur.execute(step["sql"], step.get("params"))
                    rows = []
                    while True:
                        batch = cur.fetchmany(500)
                        if not batch:
                            break
                        rows.extend(batch)
            else:
                with conn.cursor() as cur:
                    cur.execute(step["sql"], step.get("params"), prepare=step.get("prepare", False))
                    rows = cur.fetchall() if cur.description else []
            conn.commit()
            out.append({"rows": [[str(v) for v in r] for r in rows]})
        except psycopg.Error as e:
            conn.rollback()
            out.append({"sqlstate": e.sqlstate, "error": str(e).strip()})
    conn.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
