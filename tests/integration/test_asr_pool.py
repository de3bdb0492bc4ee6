"""AsrPool loads each engine once: a call that needs an engine being preloaded waits for that
load instead of starting another, and a stopped pool leaves no engine behind.

Real engines: pocketsphinx in-process (menu LM built into a temp cache dir)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from appliance.voice.asr_pool import AsrPool
from appliance.voice.asr_process import SerialAsr
from appliance.voice.providers import ProviderUnavailable
from blueprints.engine import compose_builtin


def test_get_during_a_preload_shares_its_one_load(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="appliance.voice.asr_pool")
    pool = AsrPool(set(), cache_dir=tmp_path, menu=compose_builtin("restaurant_orders",
                                                                   "demo_pizza").menu)
    try:
        assert pool.preload("pocketsphinx")
        assert not pool.preload("pocketsphinx")  # already loading: nothing new started
        engine = pool.get("pocketsphinx")  # waits for the preload's engine
        assert isinstance(engine, SerialAsr) and pool.get("pocketsphinx") is engine
        assert not pool.preload("pocketsphinx")  # loaded: nothing to do
    finally:
        pool.stop()
    loads = [r.fields for r in caplog.records if r.getMessage() == "asr engine loaded"]  # type: ignore[attr-defined]
    assert [(f["provider"], f["reason"]) for f in loads] == [("pocketsphinx", "preload")]
    assert not pool.preload("pocketsphinx")  # a stopped pool loads nothing more


def test_a_failed_load_is_an_error_for_its_caller_and_the_next_get_tries_again(
        tmp_path: Path) -> None:
    blocked = tmp_path / "models"
    blocked.write_text("not a directory")
    pool = AsrPool(set(), cache_dir=blocked, menu=compose_builtin("restaurant_orders",
                                                                  "demo_pizza").menu)
    with pytest.raises(ProviderUnavailable, match="pocketsphinx"):
        pool.get("pocketsphinx")
    blocked.unlink()
    blocked.mkdir()
    assert isinstance(pool.get("pocketsphinx"), SerialAsr)
    pool.stop()
