"""Follows a tierlog live tail (GET /api/v1/tail, Server-Sent Events) with nothing but
Python's standard library: a client tierlog did not write.

usage: sse_follow.py URL [TOKEN] [--slow]

Prints one JSON line per event as it arrives: {"event", "data", "t"} (t: arrival time,
seconds since the epoch). With --slow it reads the stream up to `ready`, then stops
reading (a small receive buffer, so the server's writes back up) until a line arrives on
stdin; then it reads the rest and prints the events it finds.
"""

import http.client
import json
import socket
import sys
import time
import urllib.parse


def emit(event, data):
    print(json.dumps({"event": event, "data": data, "t": time.time()}), flush=True)


def events(lines):
    """(event, data) pairs from an iterator of decoded lines."""
    event, data = "message", []
    for line in lines:
        line = line.rstrip("\r\n")
        if line.startswith(":"):
            continue
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


def main():
    url = urllib.parse.urlsplit(sys.argv[1])
    args = sys.argv[2:]
    slow = "--slow" in args
    token = next((a for a in args if a != "--slow"), None)
    headers = {"Accept": "text/event-stream"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=300)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if slow:
        # Before connect, so the window the kernel offers stays small.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(300)
    sock.connect((url.hostname, url.port))
    conn.sock = sock
    conn.request("GET", f"{url.path}?{url.query}", headers=headers)
    response = conn.getresponse()
    if response.status != 200:
        emit("http_error", {"status": response.status, "body": response.read().decode()})
        return
    lines = (raw.decode() for raw in iter(response.readline, b""))
    stream = events(lines)
    for event, data in stream:
        emit(event, json.loads(data))
        if event == "ready":
            break
    if slow:
        sys.stdin.readline()
    for event, data in stream:
        emit(event, json.loads(data))


if __name__ == "__main__":
    main()
