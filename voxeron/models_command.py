"""`voxeron models pull`: fetch the catalogue's speech models from upstream, verified.

The field path for boxes without the pip packages: each file of a model is downloaded from
its upstream layout (or a mirror given with --base-url) into `<dest>/<model>/`, checked
against the catalogue's SHA-256 and only then renamed into place. A partial download is
resumed with an HTTP Range request; if the resumed file does not verify it is fetched once
more from scratch; if that still does not verify the command refuses (exit 1) and keeps
nothing of that file. Files already present and intact are not fetched again.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from appliance.voice.speech_models import (
    CATALOGUE,
    UPSTREAM_HOST,
    ModelFile,
    SpeechModel,
    sha256_of,
    speech_model,
)

DEFAULT_DEST = Path("var/box/models")
_BLOCK = 1 << 20
_TIMEOUT_S = 60


class PullError(RuntimeError):
    """A file could not be fetched, or what was fetched is not the pinned file."""


def _download(url: str, part: Path, resume: bool) -> bool:
    """Write `url` into `part`, continuing after its current length when `resume` and the
    server honours the range; returns whether it continued."""
    have = part.stat().st_size if resume and part.is_file() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(req, timeout=_TIMEOUT_S) as resp:  # noqa: S310 (http/https URL)
            append = have > 0 and resp.status == 206
            with part.open("ab" if append else "wb") as out:
                for block in iter(lambda: resp.read(_BLOCK), b""):
                    out.write(block)
            return append
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # asked past the end: the partial file is already whole
            return True
        raise PullError(f"{url}: HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, OSError) as err:
        raise PullError(f"{url}: {err}") from err


def pull_file(model: SpeechModel, f: ModelFile, dest: Path, host: str) -> str:
    """Fetch one file into `dest`; returns 'present', 'resumed' or 'fetched'; raises PullError."""
    target = dest / f.name
    if target.is_file() and target.stat().st_size == f.size and sha256_of(target) == f.sha256:
        return "present"
    url = model.upstream_url(f, host)
    part = target.with_name(target.name + ".part")
    for resume in (True, False):
        resumed = _download(url, part, resume)
        got = sha256_of(part)
        if got == f.sha256:
            os.replace(part, target)
            return "resumed" if resumed else "fetched"
    part.unlink(missing_ok=True)
    raise PullError(f"{url}: sha256 {got} is not the pinned {f.sha256}; refused, nothing kept")


def pull(names: Sequence[str], dest: Path, host: str = UPSTREAM_HOST) -> list[str]:
    """Pull every model of `names` (all when empty); returns one line per file; raises PullError."""
    lines: list[str] = []
    for name in names or list(CATALOGUE):
        model = speech_model(name)
        mdir = dest / model.name
        mdir.mkdir(parents=True, exist_ok=True)
        for f in model.files:
            lines.append(f"{model.name}/{f.name}: {pull_file(model, f, mdir, host)}")
    return lines


def run_models(argv: Sequence[str] | None = None, *, args: argparse.Namespace | None = None) -> int:
    """The `voxeron models` command; 0 when every file is present and verified, else 1."""
    if args is None:
        ap = argparse.ArgumentParser(prog="voxeron models")
        add_arguments(ap)
        args = ap.parse_args(argv)
    try:
        for line in pull(args.names, Path(args.dest), args.base_url):
            print(line)
    except (PullError, ValueError) as err:
        print(f"models pull: {err}", file=sys.stderr)
        return 1
    print(f"models ok under {args.dest}")
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of `voxeron models` (shared by the CLI and `run_models`)."""
    p.add_argument("action", choices=["pull"])
    p.add_argument("names", nargs="*", metavar="NAME",
                   help=f"models to pull (default all): {', '.join(CATALOGUE)}")
    p.add_argument("--dest", default=str(DEFAULT_DEST), help="directory for the model dirs")
    p.add_argument("--base-url", default=UPSTREAM_HOST,
                   help="upstream host or a mirror with the same /<repo>/resolve/<rev>/ layout")
