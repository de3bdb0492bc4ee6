from pathlib import Path

import pytest
import yaml

from blueprints.engine import BlueprintError, compose, compose_builtin, deep_merge

BUILTIN = Path(__file__).resolve().parents[2] / "blueprints"


def _write(p: Path, data: dict) -> Path:
    p.write_text(yaml.safe_dump(data))
    return p


def test_same_inputs_give_same_hash() -> None:
    a = compose_builtin("restaurant_orders", "demo_pizza")
    b = compose_builtin("restaurant_orders", "demo_pizza")
    assert a.content_hash == b.content_hash
    assert len(a.content_hash) == 64


def test_overlay_wins_and_changes_hash(tmp_path: Path) -> None:
    overlay = yaml.safe_load((BUILTIN / "tenants" / "demo_pizza.yaml").read_text())
    overlay["prompts"] = {"greeting": "Ciao from {restaurant}!"}
    changed = compose(BUILTIN / "sectors" / "restaurant_orders.yaml",
                      _write(tmp_path / "t.yaml", overlay), BUILTIN / "policies" / "default.yaml")
    base = compose_builtin("restaurant_orders", "demo_pizza")
    assert changed.prompt("greeting") == "Ciao from Tony's Pizza!"
    # the other sector prompts survive the overlay (mappings merge, not replace)
    assert changed.prompts["read_back"] == base.prompts["read_back"]
    assert changed.content_hash != base.content_hash


def test_deep_merge_replaces_lists() -> None:
    assert deep_merge({"a": [1, 2], "m": {"x": 1, "y": 2}}, {"a": [3], "m": {"y": 9}}) == {
        "a": [3], "m": {"x": 1, "y": 9}}


def test_invalid_overlay_names_file_path_and_reason(tmp_path: Path) -> None:
    overlay = yaml.safe_load((BUILTIN / "tenants" / "demo_pizza.yaml").read_text())
    overlay["menu"]["items"][0]["options"].append("anchovies")  # not declared
    bad = _write(tmp_path / "bad.yaml", overlay)
    with pytest.raises(BlueprintError) as err:
        compose(BUILTIN / "sectors" / "restaurant_orders.yaml", bad,
                BUILTIN / "policies" / "default.yaml")
    assert err.value.source == str(bad)
    assert err.value.path.startswith("/menu")
    assert "anchovies" in err.value.reason


def test_bad_yaml_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("menu: [unclosed")
    with pytest.raises(BlueprintError, match="broken.yaml: /: not valid YAML"):
        compose(BUILTIN / "sectors" / "restaurant_orders.yaml", bad,
                BUILTIN / "policies" / "default.yaml")


# -- sectors, slots, tools: composition and errors that name file, path and reason --------

SECTOR = BUILTIN / "sectors" / "table_reservations.yaml"
POLICY = BUILTIN / "policies" / "default.yaml"


def _bistro() -> dict:
    return yaml.safe_load((BUILTIN / "tenants" / "demo_bistro.yaml").read_text())


def _compose_bistro(tmp_path: Path, overlay: dict, sector: dict | None = None,
                    policy: dict | None = None):
    s = _write(tmp_path / "sector.yaml", sector) if sector is not None else SECTOR
    p = _write(tmp_path / "policy.yaml", policy) if policy is not None else POLICY
    return compose(s, _write(tmp_path / "overlay.yaml", overlay), p)


def test_both_sectors_compose_with_distinct_stable_hashes() -> None:
    bistro = compose_builtin("table_reservations", "demo_bistro")
    assert bistro.content_hash == compose_builtin("table_reservations", "demo_bistro").content_hash
    assert bistro.content_hash != compose_builtin("restaurant_orders", "demo_pizza").content_hash
    assert bistro.slots["party_size"].rules[0].max == 12  # type: ignore[union-attr]
    assert bistro.intents["book_table"].slots == ["party_size", "date", "time", "name"]


def test_overlay_tightens_a_sector_rule(tmp_path: Path) -> None:
    overlay = _bistro()
    overlay["slots"] = {"party_size": {"rules": [
        {"check": "range", "min": 1, "max": 8, "say": "party_size_range"}]}}
    bp = _compose_bistro(tmp_path, overlay)
    assert bp.slots["party_size"].rules[0].max == 8  # type: ignore[union-attr]
    assert bp.slots["party_size"].prompt == "ask_party_size"  # the rest of the slot survives
    assert bp.content_hash != compose_builtin("table_reservations", "demo_bistro").content_hash


def test_hash_ignores_yaml_formatting(tmp_path: Path) -> None:
    reordered = dict(reversed(list(_bistro().items())))
    assert _compose_bistro(tmp_path, reordered).content_hash == compose_builtin(
        "table_reservations", "demo_bistro").content_hash


def _error(tmp_path: Path, **kwargs) -> BlueprintError:  # type: ignore[no-untyped-def]
    with pytest.raises(BlueprintError) as err:
        _compose_bistro(tmp_path, **kwargs)
    return err.value


def test_overlay_rule_with_a_missing_prompt_blames_the_overlay(tmp_path: Path) -> None:
    overlay = _bistro()
    overlay["slots"] = {"party_size": {"rules": [{"check": "range", "max": 8, "say": "too_many"}]}}
    err = _error(tmp_path, overlay=overlay)
    assert err.source.endswith("overlay.yaml")
    assert (err.path, err.reason) == ("/slots/party_size/rules/0/say", "no prompt 'too_many' in prompts")


def test_wrong_type_inside_a_rule_names_the_field(tmp_path: Path) -> None:
    overlay = _bistro()
    overlay["slots"] = {"party_size": {"rules": [{"check": "range", "max": "lots", "say": "x"}]}}
    err = _error(tmp_path, overlay=overlay)
    assert err.source.endswith("overlay.yaml") and err.path == "/slots/party_size/rules/0/max"
    assert "integer" in err.reason


def test_tool_outside_the_allow_list_blames_the_sector(tmp_path: Path) -> None:
    sector = yaml.safe_load(SECTOR.read_text())
    sector["tools_allowed"].remove("hours.check")
    err = _error(tmp_path, overlay=_bistro(), sector=sector)
    assert err.source.endswith("sector.yaml") and err.path == "/slots/time/rules/1/tool"
    assert err.reason == "hours.check is used here but not listed in tools_allowed"


def test_unknown_tool_and_unknown_tool_field(tmp_path: Path) -> None:
    sector = yaml.safe_load(SECTOR.read_text())
    sector["tools_allowed"].append("pos.delete_everything")
    err = _error(tmp_path, overlay=_bistro(), sector=sector)
    assert err.path == "/tools_allowed/5" and "unknown tool 'pos.delete_everything'" in err.reason
    sector = yaml.safe_load(SECTOR.read_text())
    sector["slots"]["time"]["rules"][1]["expect"] = "closes"
    err = _error(tmp_path, overlay=_bistro(), sector=sector)
    assert err.path == "/slots/time/rules/1/expect"
    assert err.reason == "hours.check has no boolean output 'closes'"


def test_reservation_tools_need_hours_and_capacity_in_the_overlay(tmp_path: Path) -> None:
    overlay = _bistro()
    del overlay["hours"]
    err = _error(tmp_path, overlay=overlay)
    assert err.path == "/hours" and "no opening hours" in err.reason


def test_unknown_placeholder_in_an_overlay_prompt(tmp_path: Path) -> None:
    overlay = _bistro()
    overlay["prompts"] = {"greeting": "Welcome to {restaurant}, open {opening}"}
    err = _error(tmp_path, overlay=overlay)
    assert err.source.endswith("overlay.yaml") and err.path == "/prompts/greeting"
    assert err.reason == "unknown placeholder {opening}"


def test_submit_args_must_fill_the_tool_input(tmp_path: Path) -> None:
    sector = yaml.safe_load(SECTOR.read_text())
    del sector["intents"]["book_table"]["submit"]["args"]["name"]
    err = _error(tmp_path, overlay=_bistro(), sector=sector)
    assert err.path == "/intents/book_table/submit/args"
    assert err.reason == "reservation.book needs input 'name'"


def test_bad_time_zone_and_bad_policy(tmp_path: Path) -> None:
    overlay = _bistro() | {"timezone": "Mars/Olympus"}
    err = _error(tmp_path, overlay=overlay)
    assert err.path == "/timezone" and "unknown time zone" in err.reason
    policy = yaml.safe_load(POLICY.read_text()) | {"max_turns": 0}
    err = _error(tmp_path, overlay=_bistro(), policy=policy)
    assert err.source.endswith("policy.yaml") and err.path == "/policy/max_turns"


def test_order_lines_need_a_menu(tmp_path: Path) -> None:
    with pytest.raises(BlueprintError) as err:
        compose(BUILTIN / "sectors" / "restaurant_orders.yaml",
                _write(tmp_path / "o.yaml", _bistro()), POLICY)
    assert err.value.path == "/slots/lines/type"
    assert err.value.reason == "order_lines needs a menu and a currency in the overlay"
