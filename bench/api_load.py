"""Load test of the REST API: N concurrent clients poll job status and list jobs.

Starts a real ``curate serve`` on a free loopback port (its own state dir), fills the
store with finished job records, keeps a real pipeline job running for the whole
measurement, and runs ``--clients`` asyncio clients for ``--duration`` seconds. Each
client loops: ``GET /v1/jobs/{running id}`` (status), and every 4th request
``GET /v1/jobs?limit=20`` (listing). Prints throughput, p50/p99 per kind and the number
of 5xx responses. Target: no 5xx, status p99 < 200 ms.

    .venv/bin/python bench/api_load.py                # 50 clients, 60 s, local executor
    .venv/bin/python bench/api_load.py --ray          # the job runs on embedded Ray
    .venv/bin/python bench/api_load.py --data /work/shared/data/<dir>   # your own parquet
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_corpus(root: Path, data: str | None) -> str:
    """Input glob for the background job: ``--data`` or a generated sample corpus."""
    if data:
        return str(Path(data).resolve() / "**" / "*.parquet")
    from curate.sample_data import write_sample_corpus

    write_sample_corpus(root / "sample", target_mb=8.0, seed=0)
    return str(root / "sample" / "*" / "*.parquet")


def prefill(home: Path, n: int) -> None:
    """``n`` finished job records so listing works on a realistic table."""
    from api.store import Store

    s = Store(f"sqlite:///{home / 'curate.db'}")
    for i in range(n):
        jid = f"old{i:013d}"
        s.create_job(
            job_id=jid,
            name=f"old-{i}",
            spec={"name": f"old-{i}", "inputs": {}},
            job_dir=str(home / "jobs" / jid),
            outputs={"kept": f"/nowhere/{i}"},
        )
        s.transition(jid, "running", "driver pid 1")
        s.transition(jid, "succeeded", "succeeded", ledger={"len": {"in": 100, "kept": 90, "rejected": 10}})
    s.close()


def job_spec(inp: str, out: str, i: int) -> dict:
    return {
        "name": f"load-{i}",
        "seed": i,
        "settings": {"rows_per_shard": 500, "batch_size": 256},
        "inputs": {"docs": {"path": inp}},
        "nodes": [
            {"id": "len", "stage": "length_filter", "inputs": ["docs"], "params": {"min_words": 20}},
            {"id": "dd", "stage": "exact_dedup", "inputs": ["len"]},
        ],
        "outputs": {"kept": {"node": "dd", "path": f"{out}/run-{i}"}},
    }


async def keep_a_job_running(
    c: httpx.AsyncClient, inp: str, out: str, state: dict, stop: asyncio.Event
) -> None:
    i = 0
    while not stop.is_set():
        r = await c.post("/v1/jobs", json=job_spec(inp, out, i))
        r.raise_for_status()
        state["job"] = r.json()["id"]
        state["jobs"] += 1
        while not stop.is_set():
            j = (await c.get(f"/v1/jobs/{state['job']}", params={"include_spec": "false"})).json()
            if j["state"] not in ("queued", "running"):
                state["finished"].append(j["state"])
                break
            await asyncio.sleep(0.5)
        i += 1


class RawConn:
    """A minimal keep-alive HTTP/1.1 GET client on asyncio streams.

    httpx costs more CPU per request than the server does; on a 2-core box a heavy client
    would measure itself. This one only parses the status line and Content-Length."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        code = int(lines[0].split()[1])
        length = 0
        for ln in lines[1:]:
            if ln[:15].lower() == b"content-length:":
                length = int(ln[15:])
        if length:
            await self.reader.readexactly(length)
        return code

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def client(base: str, state: dict, stop: asyncio.Event, lat: dict, codes: dict) -> None:
    host, port = base.split("://")[1].split(":")
    conn = RawConn(host, int(port))
    k = 0
    while not stop.is_set():
        kind = "list" if k % 4 == 3 else "status"
        url = "/v1/jobs?limit=20" if kind == "list" else f"/v1/jobs/{state['job']}?include_spec=false"
        t = time.perf_counter()
        try:
            code: int | str = await conn.get(url)
        except (OSError, asyncio.IncompleteReadError, ValueError) as e:
            code = type(e).__name__
            await conn.close()
            conn = RawConn(host, int(port))
        lat[kind].append(time.perf_counter() - t)
        codes[code] = codes.get(code, 0) + 1
        k += 1
    await conn.close()


async def run(args: argparse.Namespace, base: str, inp: str, out: str) -> None:
    limits = httpx.Limits(max_connections=args.clients + 5, max_keepalive_connections=args.clients + 5)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as c:
        stop = asyncio.Event()
        state: dict = {"job": None, "jobs": 0, "finished": []}
        bg = asyncio.create_task(keep_a_job_running(c, inp, out, state, stop))
        while state["job"] is None:
            await asyncio.sleep(0.1)
        # wait until the job is really running (driver started)
        for _ in range(600):
            j = (await c.get(f"/v1/jobs/{state['job']}")).json()
            if j["state"] == "running":
                break
            await asyncio.sleep(0.1)
        lat: dict = {"status": [], "list": []}
        codes: dict = {}
        t0 = time.perf_counter()
        tasks = [asyncio.create_task(client(base, state, stop, lat, codes)) for _ in range(args.clients)]
        await asyncio.sleep(args.duration)
        stop.set()
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - t0
        bg.cancel()
        running_at_end = (await c.get(f"/v1/jobs/{state['job']}")).json()["state"]
    n = sum(len(v) for v in lat.values())
    five = sum(v for k, v in codes.items() if isinstance(k, int) and k >= 500)
    errors = sum(v for k, v in codes.items() if not isinstance(k, int))
    print(f"clients={args.clients} duration={wall:.1f}s executor={'ray' if args.ray else 'local'}")
    print(f"requests={n} throughput={n / wall:.1f} req/s  status codes={codes}")
    for kind, xs in lat.items():
        if xs:
            a = np.array(xs) * 1000
            print(
                f"  {kind:<6} n={len(a):>6}  p50={np.percentile(a, 50):7.1f} ms  "
                f"p99={np.percentile(a, 99):7.1f} ms  max={a.max():7.1f} ms"
            )
    print(
        f"background jobs submitted={state['jobs']} finished={state['finished']} "
        f"last job at end: {running_at_end}"
    )
    p99 = float(np.percentile(np.array(lat["status"]) * 1000, 99)) if lat["status"] else float("inf")
    ok = five == 0 and errors == 0 and p99 < 200
    print(
        f"target (no 5xx, status p99 < 200 ms): {'PASS' if ok else 'FAIL'}  "
        f"(5xx={five}, transport errors={errors}, status p99={p99:.1f} ms)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--prefill", type=int, default=500, help="finished job records in the store")
    ap.add_argument("--ray", action="store_true", help="run the background job on an embedded Ray head")
    ap.add_argument("--data", default=None, help="directory of parquet files for the background job")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="curate-load-"))
    home, data = tmp / "home", tmp / "data"
    data.mkdir(parents=True)
    home.mkdir()
    inp = make_corpus(data, args.data)
    prefill(home, args.prefill)
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "CURATE_HOME": str(home),
        "CURATE_DATA_ROOTS": ",".join([str(data)] + ([str(Path(args.data).resolve())] if args.data else [])),
        "CURATE_MAX_JOBS": "1",
        "RAY_memory_monitor_refresh_ms": "0",
    }
    if not args.ray:
        env["CURATE_RAY_ADDRESS"] = "none"
    else:
        env.pop("CURATE_RAY_ADDRESS", None)
    log = open(tmp / "server.log", "wb")
    srv = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=str(REPO),
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if srv.poll() is not None:
                raise SystemExit(f"server exited:\n{(tmp / 'server.log').read_text()[-3000:]}")
            time.sleep(0.2)
        asyncio.run(run(args, base, inp, str(data / "out")))
    finally:
        srv.send_signal(signal.SIGTERM)
        try:
            srv.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(srv.pid, signal.SIGKILL)
        # drivers still running (the server leaves them for the next start): stop them
        from api.raycluster import EmbeddedRay
        from api.store import Store

        s = Store(f"sqlite:///{home / 'curate.db'}")
        for j in s.jobs_in(["running"]):
            try:
                os.killpg(int(j["pid"]), signal.SIGKILL)
            except (ProcessLookupError, TypeError, ValueError):
                pass
        s.close()
        EmbeddedRay(home).stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
