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
