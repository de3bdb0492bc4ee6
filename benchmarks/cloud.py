"""`voxeron bench cloud`: the cloud API and integration worker under load, on PostgreSQL.

A benchmark, not a test: it prints figures and asserts nothing. Everything is real and
local: a throwaway PostgreSQL database (dropped afterwards), the API served by uvicorn
in its own process, open-loop load from httpx (requests leave on schedule whether or
not earlier ones answered, and latency counts from the scheduled send, so a slow server
cannot hide its queue), the integration worker against the fake Square POS (its own
process) answering every order after 50 ms.

Figures: API p50/p95 at `--rate` requests/s spread over `--tenants` tenants, each with
its own token; worker throughput (actions/s) draining a backlog; order event ingested
-> POS write acknowledged p50/p95 at a steady order rate; isolation: one tenant
flooding at 10x its request quota while another's p95 is compared with its unloaded one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import psycopg

from cloud.control.audit import ChangeContext
from cloud.control.tenants import Quotas, TenantCreate, create_tenant, existing_tenant
from cloud.control.tokens import TokenCreate, issue_token
from cloud.db import Database, open_database
from sync.contracts.errors import Correlation
from sync.contracts.events import EventEnvelope, OrderSubmitted
from sync.contracts.order import Order, OrderLine
from sync.ids import new_id

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
REPO = Path(__file__).resolve().parents[1]
POS_DELAY_MS = 50
QUOTA_RPS = 10
BOOT = "bench-ops-" + "o" * 40


@dataclass(frozen=True)
class Throwaway:
    url: str
    role: str


@contextmanager
def throwaway_database() -> Iterator[Throwaway]:
    run = uuid.uuid4().hex[:10]
    name, role = f"vx_bench_{run}", f"vx_bench_app_{run}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield Throwaway(f"postgresql://postgres@127.0.0.1:5432/{name}", role)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')
            admin.execute(f'DROP ROLE IF EXISTS "{role}_fleet"')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer at {url}")


@contextmanager
def process(cmd: list[str], env: dict[str, str], health_url: str, what: str,
            ) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL)
    try:
        _wait_http(health_url, proc, what)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _ctx() -> ChangeContext:
    return ChangeContext(actor="bench", request_id=new_id("job"), now=datetime.now(UTC))


def make_tenants(db: Database, count: int, prefix: str) -> list[tuple[str, str]]:
    """`count` tenants with the default request quota and one read/write token each."""
    out = []
    for i in range(count):
        tenant_id = f"{prefix}{i:04d}"
        create_tenant(db, _ctx(), TenantCreate(tenant_id=tenant_id, name=f"bench {i}",
                                               quotas=Quotas(api_requests_per_s=QUOTA_RPS)))
        with existing_tenant(db, tenant_id) as tx:
            token = issue_token(tx, _ctx(), TokenCreate(
                name="bench", scopes=["tenant:read", "tenant:write"], expires_in_days=1))
        out.append((tenant_id, token.secret))
    return out


# Open-loop HTTP load.

Target = tuple[str, dict[str, str]]


async def _one(client: httpx.AsyncClient, at: float, target: Target) -> tuple[int, float]:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, at - loop.time()))
    try:
        r = await client.get(target[0], headers=target[1])
        status = r.status_code
    except httpx.HTTPError:
        status = 0
    return status, loop.time() - at


async def open_loop(client: httpx.AsyncClient, targets: list[Target], rate: float,
                    start_in: float = 0.2) -> list[tuple[int, float]]:
    """Send targets[i] at start + i/rate, concurrently; (status, latency from schedule)."""
    start = asyncio.get_running_loop().time() + start_in
    return await asyncio.gather(*(_one(client, start + i / rate, t)
                                  for i, t in enumerate(targets)))


def _pct(latencies: list[float], q: float) -> float:
    return float(np.percentile(np.array(latencies) * 1000.0, q)) if latencies else float("nan")


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=256,
                                                             max_keepalive_connections=256))


def _tenant_targets(base: str, tenant_id: str, secret: str, rnd: random.Random) -> Target:
    path = rnd.choice(("", "", "", "/devices"))
    return f"{base}/api/v1/tenants/{tenant_id}{path}", {"Authorization": f"Bearer {secret}"}


def api_load(base: str, tenants: list[tuple[str, str]], rate: float, duration: float,
             ) -> dict[str, float]:
    rnd = random.Random(417)
    n = int(rate * duration)
    targets = [_tenant_targets(base, *tenants[rnd.randrange(len(tenants))], rnd)
               for _ in range(n)]

    async def go() -> list[tuple[int, float]]:
        async with _client() as client:
            await open_loop(client, targets[:50], 50)  # warm connections and caches
            t0 = time.perf_counter()
            res = await open_loop(client, targets, rate)
            go.elapsed = time.perf_counter() - t0  # type: ignore[attr-defined]
            return res

    results = asyncio.run(go())
    ok = [lat for st, lat in results if st == 200]
    return {"requests": n, "ok": len(ok), "errors": n - len(ok),
            "p50_ms": _pct(ok, 50), "p95_ms": _pct(ok, 95), "p99_ms": _pct(ok, 99),
            "achieved_rps": n / go.elapsed}  # type: ignore[attr-defined]


def isolation(base: str, victim: tuple[str, str], flooder: tuple[str, str],
              duration: float) -> dict[str, float]:
    """The victim at half its quota, alone and then beside a flooder at 10x its quota."""
    rnd = random.Random(7)
    victim_rate, flood_rate = QUOTA_RPS / 2, QUOTA_RPS * 10
    v_targets = [_tenant_targets(base, *victim, rnd) for _ in range(int(victim_rate * duration))]
    f_targets = [_tenant_targets(base, *flooder, rnd) for _ in range(int(flood_rate * duration))]

    async def go() -> tuple[list[tuple[int, float]], list[tuple[int, float]],
                            list[tuple[int, float]]]:
        async with _client() as client:
            await open_loop(client, v_targets[:10], 10)
            alone = await open_loop(client, v_targets, victim_rate)
            beside, flood = await asyncio.gather(open_loop(client, v_targets, victim_rate),
                                                 open_loop(client, f_targets, flood_rate))
            return alone, beside, flood

    alone, beside, flood = asyncio.run(go())
    a = [lat for st, lat in alone if st == 200]
    b = [lat for st, lat in beside if st == 200]
    return {"victim_p95_alone_ms": _pct(a, 95), "victim_p95_flooded_ms": _pct(b, 95),
            "victim_errors": sum(st != 200 for st, _ in alone + beside),
            "flood_429": sum(st == 429 for st, _ in flood), "flood_sent": len(flood),
            "flood_200": sum(st == 200 for st, _ in flood)}


# Integration worker against the fake POS.

def _order_event(tenant_id: str, number: int) -> EventEnvelope:
    now = datetime.now(UTC)
    device_id = f"{tenant_id}-box"
    order = Order(order_id=new_id("ord"), tenant_id=tenant_id, device_id=device_id,
                  call_id=new_id("call"), number=number, lines=[
                      OrderLine(line_id="l1", item_id="pizza_margherita",
                                name="Margherita pizza", quantity=1, unit_price_cents=1450)],
                  total_cents=1450, currency="EUR", blueprint_hash="bench", created_at=now)
    return EventEnvelope(event_id=new_id("evt"), tenant_id=tenant_id, device_id=device_id,
                         seq=number, occurred_at=now, correlation=Correlation(),
                         data=OrderSubmitted(order=order))


def _succeeded(db: Database, tenants: list[str]) -> int:
    total = 0
    for tenant_id in tenants:
        with db.tenant(tenant_id) as tx:
            row = tx.fetch_one("SELECT COUNT(*) AS n FROM integration_actions WHERE "
                               "tenant_id = :tenant_id AND state = 'succeeded'", {})
            total += int(row["n"]) if row else 0
    return total


def _wait_succeeded(db: Database, tenants: list[str], want: int, timeout_s: float) -> float:
    t0 = time.perf_counter()
    while _succeeded(db, tenants) < want:
        if time.perf_counter() - t0 > timeout_s:
            raise RuntimeError(f"worker did not finish {want} actions in {timeout_s:.0f} s")
        time.sleep(0.05)
    return time.perf_counter() - t0


def worker_figures(url: str, role: str, tenants: list[str], backlog: int, steady_rate: float,
                   steady_s: float) -> dict[str, float] | str:
    try:
        from cloud.integration.claims import ClaimPolicy
        from cloud.integration.order_inbox import record_order_events
        from cloud.integration.pos_square import SquareConfig
        from cloud.integration.remediation import put_integration
        from cloud.integration.secret_box import SecretBox, new_key
        from cloud.integration.worker import Worker
    except ImportError as exc:
        return f"n/a (integration worker not present: {exc})"
    if str(REPO) not in sys.path:  # the fake POS lives with the test peers
        sys.path.insert(0, str(REPO))
    from tests.peers.fake_square import ACCESS_TOKEN, LOCATION_ID

    secrets = SecretBox([new_key()], "benchmark")  # sealing/opening counts in the figures
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "tests.peers.fake_square", "--port", str(port)]
    db = open_database(url, app_role=role, pool_size=20)
    with process(cmd, env, f"http://127.0.0.1:{port}/_fake/stats", "fake Square"):
        steady_n = int(steady_rate * steady_s)
        r = httpx.post(f"http://127.0.0.1:{port}/_fake/faults", json={
            "kind": "slow", "count": backlog + steady_n + 100, "delay_ms": POS_DELAY_MS})
        r.raise_for_status()
        for tenant_id in tenants:
            put_integration(db, tenant_id, "square", SquareConfig(
                base_url=f"http://127.0.0.1:{port}", access_token=ACCESS_TOKEN,  # type: ignore[arg-type]
                location_id=LOCATION_ID), True, _ctx(), secrets)
        record_order_events(db, [_order_event(tenants[i % len(tenants)], i + 1)
                                 for i in range(backlog)], datetime.now(UTC))
        worker = Worker(db, "bench-worker", ClaimPolicy(lane_cap=4), parallel=16,
                        secrets=secrets)
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop, 0.01), daemon=True)
        thread.start()
        try:
            drained_s = _wait_succeeded(db, tenants, backlog, 600)
            # Steady state: orders arrive at steady_rate; latency ingest -> POS acknowledged.
            steady_from = datetime.now(UTC)
            t0 = time.perf_counter()
            for i in range(steady_n):
                time.sleep(max(0.0, t0 + i / steady_rate - time.perf_counter()))
                record_order_events(db, [_order_event(tenants[i % len(tenants)],
                                                      backlog + i + 1)], datetime.now(UTC))
            _wait_succeeded(db, tenants, backlog + steady_n, 600)
        finally:
            stop.set()
            thread.join(30)
            worker.close()
        lat: list[float] = []
        for tenant_id in tenants:
            with db.tenant(tenant_id) as tx:
                rows = tx.fetch_all("SELECT created_at, updated_at FROM integration_actions "
                                    "WHERE tenant_id = :tenant_id AND state = 'succeeded'", {})
            for row in rows:
                created, updated = (datetime.fromisoformat(v) if isinstance(v, str) else v
                                    for v in (row["created_at"], row["updated_at"]))
                if created >= steady_from:  # the backlog's latencies are its queue
                    lat.append((updated - created).total_seconds())
    db.close()
    return {"backlog": backlog, "drain_s": drained_s, "actions_per_s": backlog / drained_s,
            "steady_orders": len(lat), "steady_rate": steady_rate,
            "p50_ms": _pct(lat, 50), "p95_ms": _pct(lat, 95)}


def app_factory() -> object:
    from cloud.config import CloudConfig
    from cloud.control.app import create_app

    return create_app(CloudConfig())


def serve(port: int, workers: int) -> None:
    """The API process: `python -m benchmarks.cloud --serve PORT` with VOXERON_CLOUD_*."""
    import uvicorn

    uvicorn.run("benchmarks.cloud:app_factory", factory=True, host="127.0.0.1", port=port,
                workers=workers, log_level="warning", access_log=False)


def _cpu_s(pid: int) -> float:
    """User+system CPU seconds of a process and its children (uvicorn workers)."""
    total = 0.0
    pids = [pid] + [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def main(args: list[str]) -> int:
    p = argparse.ArgumentParser(prog="voxeron bench cloud", description=__doc__.splitlines()[0])
    p.add_argument("--tenants", type=int, default=1000)
    p.add_argument("--rate", type=float, default=200.0, help="API requests/s (open loop)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of API load")
    p.add_argument("--isolation-s", type=float, default=15.0)
    p.add_argument("--backlog", type=int, default=600, help="orders queued for the worker")
    p.add_argument("--order-rate", type=float, default=20.0, help="orders/s, steady phase")
    p.add_argument("--order-s", type=float, default=10.0)
    p.add_argument("--redis-url", default=None, help="e.g. redis://127.0.0.1:6379/15")
    p.add_argument("--api-workers", type=int, default=1, help="uvicorn worker processes")
    p.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    opts = p.parse_args(args)
    if opts.serve is not None:
        serve(opts.serve, opts.api_workers)
        return 0
    return run(opts)


def run(opts: argparse.Namespace) -> int:
    import tempfile

    with throwaway_database() as pg, tempfile.TemporaryDirectory() as tmp:
        db = open_database(pg.url, app_role=pg.role)
        t0 = time.perf_counter()
        tenants = make_tenants(db, opts.tenants, "bench-")
        iso = make_tenants(db, 2, "iso-")
        pos_tenants = [t for t, _ in make_tenants(db, 20, "pos-")]
        setup_s = time.perf_counter() - t0
        db.close()
        port = _free_port()
        env = {**os.environ, "PYTHONPATH": str(REPO), "VOXERON_CLOUD_DATABASE_URL": pg.url,
               "VOXERON_CLOUD_DATABASE_APP_ROLE": pg.role,
               "VOXERON_CLOUD_DB_PATH": str(Path(tmp) / "cloud.sqlite3"),
               "VOXERON_CLOUD_TENANT_CA_DIR": str(Path(tmp) / "ca"),
               "VOXERON_CLOUD_BOOTSTRAP_OPS_TOKEN": BOOT}
        if opts.redis_url:
            env["VOXERON_CLOUD_REDIS_URL"] = opts.redis_url
        base = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "benchmarks.cloud", "--serve", str(port),
               "--api-workers", str(opts.api_workers)]
        with process(cmd, env, f"{base}/healthz", "API server") as server:
            cpu0, own0 = _cpu_s(server.pid), time.process_time()
            api = api_load(base, tenants, opts.rate, opts.duration)
            api["server_cpu_ms"] = (_cpu_s(server.pid) - cpu0) * 1000 / (api["requests"] + 50)
            api["client_cpu_ms"] = (time.process_time() - own0) * 1000 / (api["requests"] + 50)
            isol = isolation(base, iso[0], iso[1], opts.isolation_s)
        work = worker_figures(pg.url, pg.role, pos_tenants, opts.backlog, opts.order_rate,
                              opts.order_s)

    print(f"voxeron bench cloud  (PostgreSQL, {opts.tenants} tenants + tokens made in "
          f"{setup_s:.1f} s; cache: {opts.redis_url or 'off'})")
    print(f"{'figure':<48}{'value':>14}")
    rows: list[tuple[str, str]] = [
        ("API target rate / achieved (req/s)", f"{opts.rate:.0f} / {api['achieved_rps']:.0f}"),
        ("API requests ok / failed", f"{api['ok']:.0f} / {api['errors']:.0f}"),
        ("API p50 (ms)", f"{api['p50_ms']:.1f}"), ("API p95 (ms)", f"{api['p95_ms']:.1f}"),
        ("API p99 (ms)", f"{api['p99_ms']:.1f}"),
        (f"API server CPU per request ({opts.api_workers} proc) (ms)",
         f"{api['server_cpu_ms']:.2f}"),
        ("load client CPU per request (ms)", f"{api['client_cpu_ms']:.2f}")]
    if isinstance(work, str):
        rows.append(("worker throughput (actions/s)", work))
        rows.append(("order ingested -> POS ack p95 (ms)", work))
    else:
        rows += [(f"worker throughput, POS at {POS_DELAY_MS} ms (actions/s)",
                  f"{work['actions_per_s']:.1f}"),
                 (f"  backlog {work['backlog']:.0f} drained in (s)", f"{work['drain_s']:.1f}"),
                 (f"ingested -> POS ack p50 at {work['steady_rate']:.0f} orders/s (ms)",
                  f"{work['p50_ms']:.0f}"),
                 (f"ingested -> POS ack p95 at {work['steady_rate']:.0f} orders/s (ms)",
                  f"{work['p95_ms']:.0f}")]
    ratio = isol["victim_p95_flooded_ms"] / isol["victim_p95_alone_ms"]
    rows += [("isolation: victim p95 alone (ms)", f"{isol['victim_p95_alone_ms']:.1f}"),
             ("isolation: victim p95, flooder at 10x quota (ms)",
              f"{isol['victim_p95_flooded_ms']:.1f}"),
             ("isolation: flooded / alone", f"{ratio:.2f} ({'within' if ratio <= 1.2 else 'OVER'} 20%)"),
             ("isolation: flooder 200 / 429 / sent",
              f"{isol['flood_200']:.0f} / {isol['flood_429']:.0f} / {isol['flood_sent']:.0f}"),
             ("isolation: victim non-200 answers", f"{isol['victim_errors']:.0f}")]
    for name, value in rows:
        print(f"{name:<48}{value:>14}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
