"""`voxeron models pull` against a real local HTTP server laid out like Hugging Face.

The server serves the pip-installed model files under `/<repo>/resolve/main/<file>` and
honours Range requests (as the upstream CDN does), so resuming is exercised for real.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from appliance.voice.asr_whisper import WhisperAsr
from appliance.voice.speech_models import (
    CATALOGUE,
    ModelUnavailableError,
    PipPart,
    locate_model,
    pip_part_path,
    sha256_of,
    verify_model_dir,
)

TINY = CATALOGUE["whisper-tiny.en"]
BASE = CATALOGUE["whisper-base"]


class RangeHandler(SimpleHTTPRequestHandler):
    """Static files with single-range support (206 Partial Content)."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib name)
        pass

    def send_head(self):  # type: ignore[no-untyped-def]
        rng = self.headers.get("Range")
        path = Path(self.translate_path(self.path))
        if not rng or not path.is_file():
            return super().send_head()
        start = int(rng.removeprefix("bytes=").split("-")[0])
        size = path.stat().st_size
        if start >= size:
            self.send_error(416)
            return None
        fh = path.open("rb")
        fh.seek(start)
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.send_header("Content-Length", str(size - start))
        self.end_headers()
        return fh


def _serve(root: Path) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(RangeHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """tiny.en intact (symlinks to the pip files); base with a corrupted config.json."""
    root = tmp_path_factory.mktemp("mirror")
    tiny = root / TINY.upstream_repo / "resolve" / "main"
    tiny.mkdir(parents=True)
    for f in TINY.files:
        (tiny / f.upstream_path).symlink_to(pip_part_path(f.parts[0]))
    base = root / BASE.upstream_repo / "resolve" / "main"
    base.mkdir(parents=True)
    config = next(f for f in BASE.files if f.name == "config.json")
    data = bytearray(pip_part_path(config.parts[0]).read_bytes())
    data[100] ^= 0x01  # one flipped bit
    (base / "config.json").write_bytes(bytes(data))
    yield from _serve(root)


def _pull(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from voxeron.cli import main; main()",
                           "models", "pull", *args], capture_output=True, text=True, timeout=300)


def test_pull_verifies_and_is_idempotent(mirror: str, tmp_path: Path) -> None:
    first = _pull("whisper-tiny.en", "--dest", str(tmp_path), "--base-url", mirror)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count(": fetched") == len(TINY.files)
    verify_model_dir(tmp_path / "whisper-tiny.en", TINY.pins)
    assert not list((tmp_path / "whisper-tiny.en").glob("*.part"))
    again = _pull("whisper-tiny.en", "--dest", str(tmp_path), "--base-url", mirror)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count(": present") == len(TINY.files) and "fetched" not in again.stdout
    # the pulled directory is a loadable, pinned model dir
    asr = WhisperAsr(tmp_path / "whisper-tiny.en", pins=TINY.pins)
    assert asr.model_dir == tmp_path / "whisper-tiny.en"


def test_partial_download_is_resumed_and_a_bad_prefix_redone(mirror: str, tmp_path: Path) -> None:
    mdir = tmp_path / "whisper-tiny.en"
    mdir.mkdir()
    vocab = next(f for f in TINY.files if f.name == "vocabulary.txt")
    whole = pip_part_path(vocab.parts[0]).read_bytes()
    (mdir / "vocabulary.txt.part").write_bytes(whole[:1000])  # a good prefix: resumed
    (mdir / "tokenizer.json.part").write_bytes(b"garbage" * 10)  # a bad prefix: redone
    out = _pull("whisper-tiny.en", "--dest", str(tmp_path), "--base-url", mirror)
    assert out.returncode == 0, out.stderr
    assert "whisper-tiny.en/vocabulary.txt: resumed" in out.stdout
    assert "whisper-tiny.en/tokenizer.json: fetched" in out.stdout  # resumed, refused, redone
    assert sha256_of(mdir / "vocabulary.txt") == vocab.sha256
    verify_model_dir(mdir, TINY.pins)


def test_corrupted_upstream_file_is_refused(mirror: str, tmp_path: Path) -> None:
    out = _pull("whisper-base", "--dest", str(tmp_path), "--base-url", mirror)
    assert out.returncode == 1
    assert "config.json" in out.stderr and "not the pinned" in out.stderr
    mdir = tmp_path / "whisper-base"
    assert not (mdir / "config.json").exists() and not list(mdir.glob("*.part"))


def test_unknown_model_and_unreachable_mirror_fail_clearly(tmp_path: Path) -> None:
    out = _pull("whisper-huge", "--dest", str(tmp_path))
    assert out.returncode == 1 and "unknown speech model 'whisper-huge'" in out.stderr
    out = _pull("whisper-tiny.en", "--dest", str(tmp_path), "--base-url", "http://127.0.0.1:9")
    assert out.returncode == 1 and "config.json" in out.stderr


def test_a_pulled_copy_is_what_the_loader_uses(mirror: str, tmp_path: Path) -> None:
    assert _pull("whisper-tiny.en", "--dest", str(tmp_path), "--base-url", mirror).returncode == 0
    assert locate_model(TINY, tmp_path) == tmp_path / "whisper-tiny.en"
    assert WhisperAsr.from_catalogue("whisper-tiny.en", tmp_path).model_dir == tmp_path / "whisper-tiny.en"


def test_a_model_neither_pulled_nor_installed_says_how_to_get_it(tmp_path: Path) -> None:
    f = TINY.files[0]
    gone = TINY.model_copy(update={"name": "whisper-gone", "files": (f.model_copy(update={
        "parts": (PipPart(package="no_such_model_package", path="x", sha256=f.sha256),)}),)})
    with pytest.raises(ModelUnavailableError, match="voxeron models pull whisper-gone"):
        locate_model(gone, tmp_path)
