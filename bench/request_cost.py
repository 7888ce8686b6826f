"""What one request costs the web process (issue 9's last bar: the job polls of 42 race owners).

    .venv/bin/python bench/request_cost.py [--requests 2000] [--root DIR] [--profile FILE]

A real `nn-playground` process (bench/abuse_lib.Server, default settings, 2 workers, rate
limiting on but this client's address allowed its burst); a session with a REST `step` of 100,000
epochs running as a job, so `GET /api/jobs/{id}` is the poll an owner makes twice a
second during a race step. One client on one keep-alive connection (raw socket, so the client
itself costs little) sends `--requests` requests of each kind, one after the other, and the
web process's CPU time (/proc/<pid>/stat, all its threads) is divided by their count: CPU per
request, which a shared machine does not inflate the way it inflates wall-clock figures. Also
printed: requests/s on this one connection (wall-clock: depends on the machine's load), and the
CPU other programs used meanwhile. `--profile FILE` records the web process with py-spy while
the job polls run (speedscope JSON). `--root DIR` serves another checkout (before/after).
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.ops.metrics import cpu_seconds  # noqa: E402
from bench.abuse_lib import Server, children  # noqa: E402
from bench.classroom import machine_busy_seconds  # noqa: E402

# The client's own address is not rate limited to 20/s: these requests measure the server.
ENV = {"NN_PLAYGROUND_RATE_LIMIT_PER_SECOND": "100000", "NN_PLAYGROUND_RATE_LIMIT_BURST": "100000"}


class Connection:
    """One keep-alive HTTP/1.1 connection over a raw socket."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def request(self, method: str, path: str, token: str | None = None,
                body: bytes | None = None) -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
        if token:
            head += f"Authorization: Bearer {token}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.sock.sendall(head.encode() + b"\r\n" + (body or b""))
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(65536)
        header, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = header.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = next((int(line.split(b":", 1)[1]) for line in lines[1:]
                       if line.lower().startswith(b"content-length:")), 0)
        while len(rest) < length:
            rest += self.sock.recv(65536)
        self.buffer = rest[length:]
        return status, rest[:length]


def background(server: Server, seconds: float = 2.0) -> float:
    """The web process's CPU per second with no request (the running job's progress messages,
    the canary-less server's own timers): subtracted from the per-request figures."""
    pid = server.process.pid if server.process else 0
    web0 = cpu_seconds(pid) or 0.0
    time.sleep(seconds)
    return ((cpu_seconds(pid) or 0.0) - web0) / seconds


def measure(server: Server, conn: Connection, label: str, count: int, method: str, path: str,
            token: str | None = None, idle: float = 0.0) -> dict[str, float]:
    """`count` requests one after the other: CPU per request of the web process (less its
    `idle` CPU per second over the same time), requests/s on one connection."""
    pid = server.process.pid if server.process else 0
    workers = children(pid)
    for _ in range(50):  # warm (the route's first call builds caches)
        conn.request(method, path, token)
    web0, busy0, own0 = cpu_seconds(pid) or 0.0, machine_busy_seconds(), time.process_time()
    workers0 = sum(cpu_seconds(p) or 0.0 for p in workers)
    began = time.perf_counter()
    for _ in range(count):
        status, _ = conn.request(method, path, token)
        assert status == 200, (label, status)
    wall = time.perf_counter() - began
    web = (cpu_seconds(pid) or 0.0) - web0
    workers1 = sum(cpu_seconds(p) or 0.0 for p in workers)
    others = (machine_busy_seconds() - busy0) - web - (workers1 - workers0) - (
        time.process_time() - own0)
    row = {"cpu_us": (web - idle * wall) / count * 1e6, "per_second": count / wall,
           "others_cores": max(0.0, others / wall)}
    print(f"{label:<34} {row['cpu_us']:7.0f} us CPU/request (web process)   "
          f"{row['per_second']:6.0f} requests/s on one connection   "
          f"other programs {row['others_cores']:.2f} cores", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--profile", type=Path, default=None)
    args = parser.parse_args()
    with Server(env=ENV, root=args.root) as server:
        conn = Connection(server.port)
        status, body = conn.request("POST", "/api/sessions", body=b"{}")
        assert status == 201, body[:300]
        created = json.loads(body)
        session_id, token = created["id"], created["owner_token"]
        step = json.dumps({"type": "step", "n": 100_000}).encode()
        status, body = conn.request("POST", f"/api/sessions/{session_id}/commands", token, step)
        assert status == 202, (status, body[:300])
        job = json.loads(body)["job"]["id"]
        idle = background(server)
        print(f"web process with no request: {idle * 1000:.1f} ms CPU a second (subtracted)")
        measure(server, conn, "GET /health", args.requests, "GET", "/health", idle=idle)
        spy = None
        if args.profile is not None:
            spy = subprocess.Popen(
                [str(ROOT / ".venv/bin/py-spy"), "record", "--pid", str(server.process.pid),  # type: ignore[union-attr]
                 "--rate", "1000", "--format", "speedscope", "--nonblocking",
                 "-o", str(args.profile)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)
        measure(server, conn, "GET /api/jobs/{id} (job poll)", args.requests, "GET",
                f"/api/jobs/{job}", token, idle=idle)
        if spy is not None:
            spy.send_signal(2)
            spy.wait()
        measure(server, conn, "GET /api/sessions/{id}", args.requests, "GET",
                f"/api/sessions/{session_id}", idle=idle)
        conn.request("DELETE", f"/api/jobs/{job}", token)
        conn.request("DELETE", f"/api/sessions/{session_id}", token)


if __name__ == "__main__":
    main()
