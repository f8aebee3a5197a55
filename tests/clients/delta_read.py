"""Reads a tierlog cold table as any Delta Lake user would, with Python `deltalake`
(delta-rs) and Polars, and prints what they see as one JSON object.

argv: table URI, storage options as JSON ("{}" for a local table), then txn app ids,
`by:COLUMN` for the row count per value of COLUMN, `files` for each live file's
`_timestamp` range as its rows hold it (read from the file, not from the log's stats),
its row count and whether its rows are in `_timestamp` order,
and `version:N` to read version N instead of the newest (time travel).
"""
import json
import sys

import deltalake
import polars as pl


def main():
    uri, options = sys.argv[1], json.loads(sys.argv[2])
    version = next((int(a[len("version:"):]) for a in sys.argv[3:] if a.startswith("version:")), None)
    table = deltalake.DeltaTable(uri, version=version, storage_options=options or None)
    # One snapshot for every figure: the table may get a commit between two reads.
    frame = pl.read_delta(uri, version=table.version(), storage_options=options or None)
    uri_root = uri.rstrip("/") + "/"
    keys = frame.select(["_topic", "_partition", "_offset"]).unique()
    print(json.dumps({
        "version": table.version(),
        "operations": [
            entry.get("operation") for entry in reversed(table.history()) if entry.get("version", 0) <= table.version()
        ],
        "files": len(table.file_uris()),
        "rows": frame.height,
        "distinct_offsets": keys.height,
        "columns": {name: str(dtype) for name, dtype in frame.schema.items()},
        "txn": {app: table.transaction_version(app) for app in sys.argv[3:] if ":" not in app and app != "files"},
        "file_times": {
            uri[len(uri_root):]: file_time(uri, options) for uri in table.file_uris()
        } if "files" in sys.argv[3:] else None,
        "latest_version": deltalake.DeltaTable(uri, storage_options=options or None).version(),
        "counts": {
            column: {str(k): v for k, v in frame.group_by(column).len().iter_rows()}
            for column in (a[3:] for a in sys.argv[3:] if a.startswith("by:"))
        },
    }))


def file_time(uri, options):
    """[oldest, newest] `_timestamp` of a data file (µs since the epoch), its rows, and
    whether they are in `_timestamp` order."""
    times = pl.read_parquet(uri, columns=["_timestamp"], storage_options=options or None)["_timestamp"].dt.epoch("us")
    return [times.min(), times.max(), len(times), bool((times.diff().drop_nulls() >= 0).all())]


if __name__ == "__main__":
    main()
