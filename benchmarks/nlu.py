"""Order understanding accuracy and latency on utterance files, e.g. the PIZZA dev set.

`voxeron bench nlu --menu pizza --input IN.jsonl --output OUT.jsonl` parses every line's
utterance ("src", or the dataset's own "dev.SRC"), writes {"src", "pred_exr"} per line, and
prints unordered exact match against the gold tree ("exr" or "dev.EXR") when present, plus
parse latency. `--menu pizza` builds the menu from the PIZZA catalogs at run time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from appliance.dialog.order_parser import OrderParser
from benchmarks.exr import ExrError, read_exr, same_tree, to_exr
from blueprints.catalog_import import pizza_menu
from blueprints.menu import Menu

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CATALOGS = REPO / ".." / "shared" / "data" / "pizza" / "catalogs"


def load_menu(name: str, catalogs: Path | None) -> Menu:
    """'pizza' = the PIZZA catalogs' menu; anything else = a tenant overlay name or YAML path."""
    if name == "pizza":
        return pizza_menu((catalogs or DEFAULT_CATALOGS).resolve())
    from blueprints.engine import compose_builtin

    menu = compose_builtin("restaurant_orders", name).menu
    if menu is None:
        raise SystemExit(f"overlay {name!r} has no menu")
    return menu


def _field(row: dict[str, Any], plain: str, suffix: str) -> str | None:
    """`plain`, else the dataset's split-prefixed key ('dev.SRC', 'test.EXR')."""
    if plain in row:
        return str(row[plain])
    return next((str(v) for k, v in row.items() if k.endswith(suffix)), None)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))] if s else 0.0


def main(argv: list[str]) -> int:
    """Run the benchmark; prints accuracy (when gold trees are given) and latency, returns 0."""
    ap = argparse.ArgumentParser(prog="voxeron bench nlu")
    ap.add_argument("--menu", default="pizza", help="'pizza' or a tenant overlay name/path")
    ap.add_argument("--catalogs", type=Path, help=f"PIZZA catalogs dir (default {DEFAULT_CATALOGS})")
    ap.add_argument("--input", type=Path, required=True, help="JSON lines with 'src' or 'dev.SRC'")
    ap.add_argument("--output", type=Path, help="write {'src', 'pred_exr'} per line here")
    ap.add_argument("--show-misses", type=int, default=0, help="print up to N misses")
    args = ap.parse_args(argv)

    menu = load_menu(args.menu, args.catalogs)
    parser = OrderParser(menu)
    rows = [json.loads(line) for line in args.input.read_text().splitlines() if line.strip()]
    out_rows, latencies_ms = [], []
    scored = hits = 0
    misses: list[tuple[str, str, str]] = []
    for row in rows:
        src = _field(row, "src", ".SRC")
        if src is None:
            print(f"skipping a line without 'src': {sorted(row)}")
            continue
        t0 = time.perf_counter()
        result = parser.parse(src)
        latencies_ms.append((time.perf_counter() - t0) * 1000)
        pred = to_exr(result, menu)
        out_rows.append({"src": src, "pred_exr": pred})
        gold = _field(row, "exr", ".EXR")
        if gold is not None:
            scored += 1
            try:
                ok = same_tree(read_exr(pred), read_exr(gold))
            except ExrError:
                ok = False
            hits += ok
            if not ok:
                misses.append((src, pred, gold))
    if args.output:
        args.output.write_text("".join(json.dumps(r) + "\n" for r in out_rows))
    for src, pred, gold in misses[:args.show_misses]:
        print(f"MISS {src}\n  pred {pred}\n  gold {gold}")
    print(f"nlu: menu={args.menu} utterances={len(out_rows)}")
    if scored:
        print(f"unordered exact match: {hits}/{scored} = {100 * hits / scored:.1f}%")
    print(f"parse latency: p50={percentile(latencies_ms, 50):.3f} ms "
          f"p99={percentile(latencies_ms, 99):.3f} ms max={max(latencies_ms, default=0):.3f} ms")
    return 0
