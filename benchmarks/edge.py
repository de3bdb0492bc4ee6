"""The box's write path and kitchen tickets, on a real store file and a real printer.

`voxeron bench edge` prints three figures:
- order.submit commit latency (order + ticket action + outbox event in one SQLite
  transaction, WAL, synchronous=FULL) over >= 1,000 orders, and from the same loop the
  durable outbox write rate (one order.submitted event per order);
- ticket print latency from the submit's commit to the ticket's last byte (its cut) at a
  real printer emulator (`voxeron printer-emulator` subprocess), with the real print
  agent loop running (`voxeron appliance edge` subprocess), once per poll interval given:
  the agent polls the store, so a ticket waits on average half a poll for its pass.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from appliance.edge.printer_emulator import ReceivedTicket
from appliance.store import LocalStore
from benchmarks.turn_latency import percentile
from sync.contracts.order import OrderLine
from sync.ids import new_id

VOXERON = str(Path(sys.executable).with_name("voxeron"))
TENANT, DEVICE = new_id("ten"), new_id("dev")
LINES = [
    OrderLine(line_id="l1", item_id="pizza_pepperoni", name="Pepperoni pizza", quantity=1,
              size="large", unit_price_cents=1699),
    OrderLine(line_id="l2", item_id="coke", name="Coke", quantity=2, unit_price_cents=250),
]


def submit(store: LocalStore) -> None:
    store.submit_order(tenant_id=TENANT, device_id=DEVICE, call_id=new_id("call"),
                       caller="+15550100", lines=LINES, currency="USD", blueprint_hash="bench",
                       idempotency_key=new_id("job"), now=datetime.now(UTC))


def commit_latency(work: Path, orders: int) -> tuple[list[float], float]:
    """(per-submit commit latencies in ms, outbox events/s over the whole loop)."""
    store = LocalStore(work / "box.sqlite3")
    latencies = []
    t0 = time.perf_counter()
    for _ in range(orders):
        t = time.perf_counter()
        submit(store)
        latencies.append((time.perf_counter() - t) * 1000)
    rate = orders / (time.perf_counter() - t0)
    assert store.outbox_depth() == orders
    store.close()
    return latencies, rate


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _process(args: list[str], log: Path, env: dict[str, str] | None = None,
             ) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        proc = subprocess.Popen([VOXERON, *args], env={**os.environ, **(env or {})},
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(15)


def _wait(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.002)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def print_latency(work: Path, tickets: int, poll_s: float) -> tuple[list[float], float]:
    """Submit one order at a time (at a random phase of the poll) and time its ticket;
    also returns the idle print agent's CPU use (%) over 5 s: the price of polling."""
    work.mkdir(parents=True)
    port = _free_port()
    out = work / "tickets"
    env = {"VOXERON_TENANT_ID": TENANT, "VOXERON_DEVICE_ID": DEVICE,
           "VOXERON_DATA_DIR": str(work / "box"), "VOXERON_PRINTER_URL": f"tcp://127.0.0.1:{port}",
           "VOXERON_PRINTER_POLL_S": str(poll_s)}
    store = LocalStore(work / "box" / "box.sqlite3")
    latencies: list[float] = []
    with _process(["printer-emulator", "--port", str(port), "--out", str(out)],
                  work / "emulator.log"):
        _wait(lambda: _listening(port), 20, "printer emulator")
        with _process(["appliance", "edge"], work / "edge.log", env) as agent:
            for i in range(tickets + 1):  # the first one warms up the agent and is not timed
                time.sleep(random.uniform(0, poll_s))
                submit(store)
                committed = datetime.now(UTC)
                _wait(lambda n=i: len(list(out.glob("ticket-*.json"))) > n, 30, f"ticket {i}")
                newest = max(out.glob("ticket-*.json"), key=lambda p: int(p.stem.split("-")[1]))
                ticket = ReceivedTicket.model_validate_json(newest.read_text())
                if i:
                    latencies.append((ticket.received_at - committed).total_seconds() * 1000)
            before = _cpu_seconds(agent.pid)
            time.sleep(5.0)
            idle_cpu = (_cpu_seconds(agent.pid) - before) / 5.0 * 100
    store.close()
    return latencies, idle_cpu


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="voxeron bench edge", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=1000, help="orders for the commit latency")
    ap.add_argument("--tickets", type=int, default=60, help="tickets timed per poll interval")
    ap.add_argument("--poll", default="0.2,0.05",
                    help="print-agent poll intervals to compare, seconds, comma separated")
    args = ap.parse_args(argv)
    polls = [float(p) for p in args.poll.split(",")]
    with tempfile.TemporaryDirectory(prefix="voxeron-bench-edge-") as tmp:
        work = Path(tmp)
        commits, rate = commit_latency(work, args.orders)
        print(f"cores: {os.cpu_count()}; store: SQLite WAL, synchronous=FULL, {work}")
        print(f"{'order.submit commit (n=' + str(len(commits)) + ')':<40}"
              f"p50 {percentile(commits, 50):6.2f} ms  p95 {percentile(commits, 95):6.2f} ms  "
              f"p99 {percentile(commits, 99):6.2f} ms  max {max(commits):6.2f} ms")
        print(f"{'durable outbox write rate':<40}{rate:,.0f} events/s (one event per order)")
        for poll in polls:
            lat, idle_cpu = print_latency(work / f"poll-{poll}", args.tickets, poll)
            print(f"{'ticket commit->cut, poll ' + str(poll) + ' s (n=' + str(len(lat)) + ')':<40}"
                  f"p50 {percentile(lat, 50):6.0f} ms  p95 {percentile(lat, 95):6.0f} ms  "
                  f"max {max(lat):6.0f} ms  idle agent CPU {idle_cpu:4.1f}%")
    return 0
