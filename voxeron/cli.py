"""The `voxeron` command: one entry point for every process and tool of the product.

This package is the composition root: it may import appliance and cloud; they never
import it. Heavy imports happen inside each subcommand so `voxeron --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

Handler = Callable[[argparse.Namespace], int]


def _contracts(args: argparse.Namespace) -> int:
    from sync.contracts.snapshots import check_snapshots, write_snapshots
    from voxeron.contracts_openapi import check_openapi, live_openapi, write_openapi

    root = Path(args.dir)
    if args.action == "write":
        for p in [*write_snapshots(root), write_openapi(root, live_openapi())]:
            if p:
                print(f"wrote {p}")
        return 0
    problems, notes = check_openapi(root, live_openapi())
    problems = check_snapshots(root) + problems
    for p in notes:
        print(f"contract note: {p}")
    for p in problems:
        print(f"contract violation: {p}", file=sys.stderr)
    if not problems:
        print(f"contracts ok: every surface matches its frozen snapshot under {root}/")
    return 1 if problems else 0


def _demo(args: argparse.Namespace) -> int:
    from voxeron.demo import DemoOptions, run_demo

    return run_demo(DemoOptions(work_dir=Path(args.dir), keep_running=args.keep_running,
                                caller_voice=args.voice))


def _call(args: argparse.Namespace) -> int:
    from voxeron.call_command import run_call

    return run_call(args.uri, args.say, wav=args.wav, voice=args.voice)


def _appliance(args: argparse.Namespace) -> int:
    from appliance.config import BoxIdentity, PrinterConfig, SetupConfig, SyncConfig, VoiceConfig

    identity = BoxIdentity()
    if args.role == "voice":
        from appliance.voice.service import run_voice

        run_voice(identity, VoiceConfig())
    elif args.role == "edge":
        from appliance.edge.print_agent import run_edge

        run_edge(identity, PrinterConfig())
    elif args.role == "sync":
        from appliance.sync_link import run_sync

        run_sync(identity, SyncConfig())
    elif args.role == "setup":
        from appliance.setup.app import run_setup

        run_setup(identity, SetupConfig())
    else:
        from voxeron.supervisor import run_appliance

        return run_appliance()
    return 0


def _cloud(args: argparse.Namespace) -> int:
    from cloud.config import CloudConfig

    if args.role == "token":
        from voxeron.cloud_token_command import run_token_command

        return run_token_command(args, CloudConfig())
    if args.role == "secrets":
        from voxeron.cloud_secrets_command import run_secrets_command

        return run_secrets_command(args, CloudConfig())
    if args.role == "retention":
        from voxeron.cloud_retention_command import run_retention_command

        return run_retention_command(CloudConfig())
    if args.role == "worker":  # the worker needs none of the API's modules
        from cloud.integration.service import WorkerConfig, run_worker

        run_worker(CloudConfig(), WorkerConfig())
        return 0
    from cloud.control.service import run_cloud

    run_cloud(CloudConfig())
    return 0


def _broker(args: argparse.Namespace) -> int:
    from voxeron.embedded_broker import run_broker

    run_broker(args.host, args.port)
    return 0


def _printer(args: argparse.Namespace) -> int:
    from appliance.edge.printer_emulator import run_emulator

    run_emulator(host=args.host, port=args.port, out_dir=Path(args.out), serial_path=args.serial,
                 has_counter=not args.no_cut_counter, paper_lines=args.paper_lines,
                 cut_delay_s=args.cut_delay_s)
    return 0


def _pos_emulator(args: argparse.Namespace) -> int:
    from voxeron.pos_emulator import run_emulator

    run_emulator(host=args.host, port=args.port)
    return 0


def _models(args: argparse.Namespace) -> int:
    from voxeron.models_command import run_models

    return run_models(args=args)


def _bench(args: argparse.Namespace) -> int:
    from benchmarks.runner import run_benchmark

    return run_benchmark(args.name, args.rest)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="voxeron", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="run the whole product on this machine and place one call")
    d.add_argument("--dir", default="var/demo", help="working directory (wiped first)")
    d.add_argument("--keep-running", action="store_true", help="leave the stack up afterwards")
    d.add_argument("--voice", default="piper", choices=["piper", "espeak", "flite"],
                   help="synthetic caller voice")
    d.set_defaults(fn=_demo)

    c = sub.add_parser("call", help="place a SIP call and say scripted lines")
    c.add_argument("uri", help="sip:user@ip:port of the box")
    c.add_argument("--say", action="append", required=True, help="a line to say (repeat)")
    c.add_argument("--wav", help="save what the agent said to this WAV file")
    c.add_argument("--voice", default="piper", choices=["piper", "espeak", "flite"])
    c.set_defaults(fn=_call)

    a = sub.add_parser("appliance", help="box processes")
    a.add_argument("role", choices=["run", "voice", "edge", "sync", "setup"],
                   help="run = all four under a supervisor")
    a.set_defaults(fn=_appliance)

    cl = sub.add_parser("cloud", help="cloud processes")
    cl.add_argument("role", choices=["run", "token", "worker", "secrets", "retention"],
                    help="run = API + ingest + dashboard; token create = issue an API token; "
                         "worker = integration worker (POS write-back, webhooks); "
                         "secrets rotate | new-key = integration secret keys; "
                         "retention = one data-retention pass now")
    cl.add_argument("action", nargs="?", choices=["create", "rotate", "new-key"],
                    help="with token: create; with secrets: rotate or new-key")
    cl.add_argument("--ops", action="store_true", help="token create: an ops token (ops:*)")
    cl.add_argument("--tenant", help="token create: a token of this tenant instead; "
                                     "secrets rotate: only this tenant's secrets")
    cl.add_argument("--name", default="cli", help="token create: a name for people")
    cl.add_argument("--expires-days", type=int, default=90,
                    help="token create: days until it expires (0 = never)")
    cl.set_defaults(fn=_cloud)

    b = sub.add_parser("broker", help="embedded MQTT broker (amqtt)")
    b.add_argument("role", choices=["run"])
    b.add_argument("--host", default="127.0.0.1")
    b.add_argument("--port", type=int, default=1883)
    b.set_defaults(fn=_broker)

    pe = sub.add_parser("printer-emulator", help="ESC/POS printer emulator (TCP 9100 or serial)")
    pe.add_argument("--host", default="127.0.0.1")
    pe.add_argument("--port", type=int, default=9100)
    pe.add_argument("--out", default="var/tickets")
    pe.add_argument("--serial", help="read from this serial device instead of TCP")
    pe.add_argument("--no-cut-counter", action="store_true",
                    help="behave like a printer that cannot report its cut counter")
    pe.add_argument("--paper-lines", type=int, default=None,
                    help="a short roll: paper runs out after this many lines (kill -USR1 refills)")
    pe.add_argument("--cut-delay-s", type=float, default=0.0,
                    help="a slow cutter: wait this long after each cut before answering")
    pe.set_defaults(fn=_printer)

    po = sub.add_parser("pos-emulator", help="POS emulator speaking the Square Orders API (dev)")
    po.add_argument("--host", default="127.0.0.1")
    po.add_argument("--port", type=int, default=8765)
    po.set_defaults(fn=_pos_emulator)

    k = sub.add_parser("contracts", help="check or write the frozen contract snapshots")
    k.add_argument("action", choices=["check", "write"])
    k.add_argument("--dir", default="contracts")
    k.set_defaults(fn=_contracts)

    be = sub.add_parser("bench", help="run a benchmark from benchmarks/ and print its figures")
    be.add_argument("name", help="benchmark name: turns, nlu, voice, edge, sync, cloud, ...")
    be.add_argument("rest", nargs=argparse.REMAINDER)
    be.set_defaults(fn=_bench)

    from voxeron.models_command import add_arguments as models_arguments

    mo = sub.add_parser("models", help="pull speech models from upstream, verified by SHA-256")
    models_arguments(mo)
    mo.set_defaults(fn=_models)
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    raise SystemExit(args.fn(args))
