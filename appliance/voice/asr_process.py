"""Speech recognition in a worker process per engine, so a crashing model cannot end a call.

The voice service starts one worker per out-of-process engine (`python -m
appliance.voice.asr_process ENGINE`). Parent and worker speak length-prefixed messages over
the worker's stdin/stdout: a 4-byte big-endian length, a JSON header, then for a request a
second length-prefixed block of 8 kHz int16 PCM. Errors come back as a code and message,
never as a traceback. The parent turns EOF, an exit code or a missed deadline into
ProviderDied, and the pool starts a fresh worker for later calls.
"""

from __future__ import annotations

import json
import logging
import os
import select
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import BinaryIO

import numpy as np

from appliance.voice.asr_whisper import Transcript, WhisperAsr
from appliance.voice.providers import AsrProvider, ProviderDied, ProviderError, ProviderUnavailable
from blueprints.menu import Menu
from sync.structured_log import fields

log = logging.getLogger(__name__)

MAX_MESSAGE = 16 * 1024 * 1024  # 15 min of 8 kHz audio: anything larger is a broken stream
LOAD_TIMEOUT_S = 60.0
DECODE_TIMEOUT_S = 20.0


class WorkerBusy(ProviderError):
    """The worker is decoding something else; a speculative decode just skips this round."""

    def __init__(self, provider: str) -> None:
        super().__init__(provider, "busy", "worker busy", retryable=True)


def engine(name: str, threads: int, cache_dir: Path | None = None,
           menu: Menu | None = None) -> AsrProvider:
    """The in-process engine a worker (or the session, for in-process ones) runs."""
    if name == "whisper-tiny.en":
        return WhisperAsr(threads=threads)
    if name == "whisper-base":
        from_catalogue = getattr(WhisperAsr, "from_catalogue", None)  # task E's loader
        if from_catalogue is None or cache_dir is None:
            raise ProviderUnavailable(name, "no Whisper base loader or no model cache dir")
        return from_catalogue(name, cache_dir, threads=threads)  # type: ignore[no-any-return]
    if name == "pocketsphinx":
        try:
            from appliance.voice.asr_pocketsphinx import PocketsphinxAsr
        except ImportError as err:
            raise ProviderUnavailable(name, "pocketsphinx recognizer not installed") from err
        if menu is None or cache_dir is None:
            raise ProviderUnavailable(name, "needs the menu (for its language model) and a cache dir")
        return PocketsphinxAsr(menu, cache_dir)
    raise ProviderUnavailable(name, "unknown ASR engine")


# -- framing -----------------------------------------------------------------------------------

def write_block(out: BinaryIO, data: bytes) -> None:
    out.write(struct.pack(">I", len(data)) + data)


def read_exact(inp: BinaryIO, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = inp.read(n - len(buf))
        if not chunk:
            raise EOFError("stream closed")
        buf += chunk
    return buf


def read_block(inp: BinaryIO) -> bytes:
    (n,) = struct.unpack(">I", read_exact(inp, 4))
    if n > MAX_MESSAGE:
        raise ValueError(f"message of {n} bytes is over the {MAX_MESSAGE} limit")
    return read_exact(inp, n)


# -- worker side -------------------------------------------------------------------------------

def serve(name: str, threads: int, inp: BinaryIO, out: BinaryIO, cache_dir: Path | None = None) -> int:
    """Load the engine, say ready, then answer transcribe requests until stdin closes."""
    try:
        asr = engine(name, threads, cache_dir)
        asr.load()
    except Exception as err:  # reported as data: the parent logs it and marks the engine dead
        write_block(out, json.dumps({"ready": False, "code": "load_failed",
                                     "message": f"{type(err).__name__}: {err}"}).encode())
        out.flush()
        return 2
    write_block(out, json.dumps({"ready": True, "pid": os.getpid()}).encode())
    out.flush()
    while True:
        try:
            head = json.loads(read_block(inp))
            pcm = np.frombuffer(read_block(inp), dtype=np.int16)
        except EOFError:
            return 0
        try:
            t = asr.transcribe(pcm, str(head.get("prompt", "")))
            reply = {"id": head.get("id"), "ok": True, "text": t.text, "confidence": t.confidence,
                     "audio_ms": t.audio_ms}
        except Exception as err:
            reply = {"id": head.get("id"), "ok": False, "code": "decode_failed",
                     "message": f"{type(err).__name__}: {err}"}
        write_block(out, json.dumps(reply).encode())
        out.flush()


# -- parent side -------------------------------------------------------------------------------

class AsrWorker:
    """One worker process for engine `name`; `transcribe` blocks (run it in a thread)."""

    def __init__(self, name: str, threads: int = 2, cache_dir: Path | None = None) -> None:
        self.name, self.threads, self.cache_dir = name, threads, cache_dir
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._seq = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def load(self) -> None:
        """Start the worker and wait until its model is loaded (raises ProviderError)."""
        with self._lock:
            if not self.alive:
                self._start()

    def _start(self) -> None:
        args = [sys.executable, "-m", "appliance.voice.asr_process", self.name, str(self.threads)]
        self._proc = subprocess.Popen(args + ([str(self.cache_dir)] if self.cache_dir else []),
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        hello = json.loads(self._read(LOAD_TIMEOUT_S))
        if not hello.get("ready"):
            self._kill()
            raise ProviderUnavailable(self.name, str(hello.get("message", "did not load")))
        log.info("asr worker ready", extra=fields(provider=self.name, pid=self.pid))

    def transcribe(self, pcm8k: np.ndarray, prompt: str = "", *, wait: bool = True,
                   timeout_s: float = DECODE_TIMEOUT_S) -> Transcript:
        """Decode in the worker; ProviderDied if it is gone or silent past `timeout_s`, and
        WorkerBusy when `wait` is False and another decode holds the worker."""
        if not self._lock.acquire(blocking=wait):
            raise WorkerBusy(self.name)
        try:
            if not self.alive:
                raise ProviderDied(self.name, self.exit_note())
            self._seq += 1
            assert self._proc is not None and self._proc.stdin is not None
            try:
                write_block(self._proc.stdin, json.dumps({"id": self._seq, "prompt": prompt}).encode())
                write_block(self._proc.stdin, np.ascontiguousarray(pcm8k, dtype=np.int16).tobytes())
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError) as err:
                raise ProviderDied(self.name, f"pipe closed: {err}; {self.exit_note()}") from err
            reply = json.loads(self._read(timeout_s))
        finally:
            self._lock.release()
        if not reply.get("ok"):
            raise ProviderError(self.name, str(reply.get("code")), str(reply.get("message")))
        return Transcript(str(reply["text"]), float(reply["confidence"]), int(reply["audio_ms"]))

    def _read(self, timeout_s: float) -> bytes:
        """One message from the worker; a silent worker past the deadline is killed."""
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        buf = b""
        need = 4
        header_done = False
        while len(buf) < need:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(0.0, left))
            if not ready:
                self._kill()
                raise ProviderDied(self.name, f"no answer within {timeout_s:.1f} s (killed)")
            chunk = os.read(fd, need - len(buf))
            if not chunk:
                raise ProviderDied(self.name, f"EOF; {self.exit_note()}")
            buf += chunk
            if not header_done and len(buf) == 4:
                (n,) = struct.unpack(">I", buf)
                if n > MAX_MESSAGE:
                    self._kill()
                    raise ProviderDied(self.name, f"garbled reply of {n} bytes (killed)")
                need, header_done = 4 + n, True
        return buf[4:]

    def exit_note(self) -> str:
        if self._proc is None:
            return "never started"
        try:
            code = self._proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return "still running"
        return f"exit code {code}"

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def stop(self) -> None:
        """Close stdin so the worker exits on its own; kill it if it lingers."""
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=3.0)
        except subprocess.TimeoutExpired:
            self._kill()
        if proc.stdout is not None:
            proc.stdout.close()


class SerialAsr:
    """An in-process engine behind a lock: one decode at a time, like a worker (pocketsphinx
    decoders and a shared Whisper model are not for concurrent use). Engine failures come
    out as ProviderError, as a worker reports them, so a broken in-process engine fails a
    call over instead of ending it."""

    def __init__(self, name: str, inner: AsrProvider) -> None:
        self.name, self.inner = name, inner
        self._lock = threading.Lock()

    def load(self) -> None:
        try:
            self.inner.load()
        except ProviderError:
            raise
        except Exception as err:  # the worker's load_failed, in-process
            raise ProviderUnavailable(self.name, f"{type(err).__name__}: {err}") from err

    def transcribe(self, pcm8k: np.ndarray, prompt: str = "", *, wait: bool = True) -> Transcript:
        if not self._lock.acquire(blocking=wait):
            raise WorkerBusy(self.name)
        try:
            return self.inner.transcribe(pcm8k, prompt)
        except ProviderError:
            raise
        except Exception as err:  # the worker's decode_failed: the next turn may do better
            raise ProviderError(self.name, "decode_failed", f"{type(err).__name__}: {err}") from err
        finally:
            self._lock.release()


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m appliance.voice.asr_process ENGINE [THREADS [CACHE_DIR]]",
              file=sys.stderr)
        return 2
    threads = int(argv[1]) if len(argv) > 1 else 2
    cache_dir = Path(argv[2]) if len(argv) > 2 else None
    protocol = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a library that prints must not corrupt the protocol stream
    return serve(argv[0], threads, sys.stdin.buffer, protocol, cache_dir)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
