"""The fixed tool set and the registry that runs it: validation before and after, errors
as envelopes (never exceptions), the blueprint's allow-list, correlation ids."""

import sqlite3
from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest
from pydantic import BaseModel

from appliance.dialog.order_tools import session_tools
from appliance.dialog.reservation_tools import check_hours
from appliance.dialog.tool_registry import ToolContext, ToolFailure, ToolRegistry
from blueprints.engine import compose_builtin
from sync.contracts.errors import Correlation
from sync.contracts.registry import SURFACES
from sync.contracts.snapshots import check_snapshots
from sync.contracts.tool_schemas import TOOLS, HoursCheckOutput, MenuLookupOutput
from sync.contracts.tools import ToolCall

NOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)
CORR = Correlation(tenant_id="ten_a", call_id="call_1")
PIZZA = compose_builtin("restaurant_orders", "demo_pizza")
BISTRO = compose_builtin("table_reservations", "demo_bistro")
REPO_CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"


def _call(tool: str, key: str | None = None, **args: object) -> ToolCall:
    return ToolCall(tool=tool, idempotency_key=key, correlation=CORR, args=args)


def test_the_fixed_tool_set_is_versioned_and_frozen() -> None:
    assert set(TOOLS) == {
        "menu.lookup", "order.add_item", "order.update_item", "order.remove_item",
        "order.read_back", "order.submit", "hours.check", "handoff.transfer",
        "callback.schedule", "reservation.check", "reservation.book"}
    for version, inp, out in TOOLS.values():
        assert version.count(".") == 1 and issubclass(inp, BaseModel) and issubclass(out, BaseModel)
    [surface] = [s for s in SURFACES if s.name == "tools"]
    assert len(surface.models) == 2 * len(TOOLS)
    assert check_snapshots(REPO_CONTRACTS, (surface,)) == []


def _registry(impl) -> ToolRegistry:  # type: ignore[no-untyped-def]
    return ToolRegistry(PIZZA, {"menu.lookup": impl})


def test_input_is_validated_before_the_call() -> None:
    ran = []
    reg = _registry(lambda args, ctx: ran.append(args) or MenuLookupOutput(matches=[]))
    result = reg.run(_call("menu.lookup", query=""), None, NOW)
    assert not result.ok and result.error and result.error.category == "validation"
    assert result.error.code == "menu.invalid" and ran == []


def test_output_that_breaks_its_contract_is_an_integration_error() -> None:
    result = _registry(lambda args, ctx: HoursCheckOutput(open=True)).run(
        _call("menu.lookup", query="pizza"), None, NOW)
    assert not result.ok and result.error and result.error.category == "integration"
    assert result.error.code == "tool.bad_output"


def test_exceptions_become_envelopes_with_correlation_ids() -> None:
    def boom(args: object, ctx: ToolContext) -> BaseModel:
        raise RuntimeError("bug")

    result = _registry(boom).run(_call("menu.lookup", query="pizza"), None, NOW)
    assert result.error and (result.error.code, result.error.category) == ("tool.crashed", "integration")
    assert result.error.correlation.call_id == "call_1"
    assert result.error.correlation.action_id and result.error.correlation.action_id.startswith("act_")
    assert "bug" not in result.error.message


@pytest.mark.parametrize(("exc", "code", "category", "retryable"), [
    (ToolFailure("menu.closed", "unavailable", "Closed.", retryable=True), "menu.closed",
     "unavailable", True),
    (sqlite3.OperationalError("database is locked"), "store.unavailable", "unavailable", True),
])
def test_classified_failures(exc: Exception, code: str, category: str, retryable: bool) -> None:
    def fail(args: object, ctx: ToolContext) -> BaseModel:
        raise exc

    result = _registry(fail).run(_call("menu.lookup", query="pizza"), None, NOW)
    assert result.error and (result.error.code, result.error.category) == (code, category)
    assert result.error.retryable is retryable


def test_allow_list_version_and_idempotency_key() -> None:
    reg = session_tools(PIZZA)
    assert reg.run(_call("reservation.book"), None, NOW).error.code == "tool.not_allowed"  # type: ignore[union-attr]
    assert reg.run(_call("order.submit"), None, NOW).error.code == "tool.unavailable"  # type: ignore[union-attr]
    v2 = ToolCall(tool="menu.lookup", version="2.0", correlation=CORR, args={"query": "x"})
    assert reg.run(v2, None, NOW).error.code == "tool.version"  # type: ignore[union-attr]
    full = ToolRegistry(PIZZA, {"order.submit": lambda a, c: None})  # type: ignore[arg-type,return-value]
    no_key = full.run(_call("order.submit", lines=[]), None, NOW)
    assert no_key.error and no_key.error.category == "validation"
    with pytest.raises(ValueError, match="outside the fixed set"):
        ToolRegistry(PIZZA, {"pos.delete_everything": lambda a, c: None})  # type: ignore[arg-type,return-value]


def test_cart_tools() -> None:
    reg = session_tools(PIZZA)
    pizza = {"item_id": "pizza", "size": "large", "modifiers": [{"kind": "add", "option_id": "ham"}]}
    added = reg.run(_call("order.add_item", cart=[], lines=[pizza, {"item_id": "coke", "quantity": 2}]),
                    None, NOW)
    assert added.ok and added.result and added.result["added"] == "one large pizza with ham and two cokes"
    cart = added.result["cart"]
    updated = reg.run(_call("order.update_item", cart=cart, index=0,
                            line={"item_id": "pizza"}), None, NOW)
    assert updated.result and updated.result["cart"][0]["size"] == "medium"  # the default size
    removed = reg.run(_call("order.remove_item", cart=cart, index=1), None, NOW)
    assert removed.result and removed.result["removed"] == "two cokes"
    assert len(removed.result["cart"]) == 1
    read = reg.run(_call("order.read_back", cart=cart), None, NOW)
    assert read.result and read.result["total"] == "21 dollars and 97 cents"
    assert [li["unit_price_cents"] for li in read.result["lines"]] == [1699, 249]
    found = reg.run(_call("menu.lookup", query="a coca cola"), None, NOW)
    assert found.result and [m["item_id"] for m in found.result["matches"]] == ["coke"]


def test_the_whole_parse_reaches_the_order_lines_with_surcharges() -> None:
    reg = session_tools(PIZZA)
    pizza = {"item_id": "pizza", "size": "large", "styles": ["gluten_free"],
             "removed_styles": ["thin_crust"], "declined": [{"kind": "extra", "option_id": "extra_cheese"}],
             "modifiers": [{"kind": "remove", "option_id": "onions"}]}
    coke = {"item_id": "coke", "quantity": 2, "container": "can"}
    added = reg.run(_call("order.add_item", cart=[], lines=[pizza, coke]), None, NOW)
    assert added.result and added.result["cart"][0]["styles"] == ["gluten_free"]
    read = reg.run(_call("order.read_back", cart=added.result["cart"]), None, NOW)
    assert read.result is not None
    first, second = read.result["lines"]
    assert first["unit_price_cents"] == 1699 + 200  # the gluten free surcharge
    assert (first["styles"], first["removed_styles"]) == (["gluten free crust"], ["thin crust"])
    assert first["declined"] == [{"kind": "extra", "name": "cheese"}]
    assert first["notes"] == "no extra cheese; not thin crust"  # still said for 1.0 readers
    assert (second["container"], second["volume"], second["notes"]) == ("can", None, "in cans")
    assert read.result["total_cents"] == 1899 + 2 * 249


def test_contract_versions_after_the_additive_order_line_fields() -> None:
    versions = {s.name: s.version for s in SURFACES}
    # order-event moved on to 1.2 with the print/command events (additive, issue 7).
    assert (versions["order"], versions["order-event"], versions["tools"]) == ("1.1", "1.2", "1.1")
    assert {t: TOOLS[t].version for t in TOOLS if t.startswith("order.")} == dict.fromkeys(
        ["order.add_item", "order.update_item", "order.remove_item", "order.read_back",
         "order.submit"], "1.1")
    assert check_snapshots(REPO_CONTRACTS) == []


@pytest.mark.parametrize(("line", "code"), [
    ({"item_id": "sushi"}, "menu.item_unknown"),
    ({"item_id": "pizza", "size": "huge"}, "menu.size_unknown"),
    ({"item_id": "coke", "modifiers": [{"kind": "add", "option_id": "ham"}]}, "menu.option_unknown"),
    ({"item_id": "pizza", "declined": [{"kind": "remove", "option_id": "ham"}]}, "menu.option_unknown"),
    ({"item_id": "coke", "styles": ["thin_crust"]}, "menu.style_unknown"),
    ({"item_id": "pizza", "container": "can"}, "menu.container_unknown"),
    ({"item_id": "pizza", "quantity": 21}, "menu.over_limit"),
])
def test_cart_tools_refuse_what_the_menu_cannot_make(line: dict, code: str) -> None:
    result = session_tools(PIZZA).run(_call("order.add_item", lines=[line]), None, NOW)
    assert result.error and (result.error.code, result.error.category) == (code, "validation")


def test_missing_line_index() -> None:
    result = session_tools(PIZZA).run(
        _call("order.remove_item", cart=[{"item_id": "coke"}], index=3), None, NOW)
    assert result.error and result.error.code == "order.no_such_line"


@pytest.mark.parametrize(("day", "at", "open_", "opens"), [
    (date(2026, 11, 25), time(19, 0), True, time(17, 0)),   # Wednesday dinner
    (date(2026, 11, 25), time(15, 0), False, time(17, 0)),  # before opening
    (date(2026, 11, 25), time(22, 0), False, time(17, 0)),  # closing time itself is closed
    (date(2026, 11, 28), time(13, 0), True, time(12, 0)),   # Saturday lunch
    (date(2026, 11, 23), time(19, 0), False, None),         # closed on Mondays
])
def test_hours_check(day: date, at: time, open_: bool, opens: time | None) -> None:
    out = check_hours(BISTRO, day, at)
    assert (out.open, out.opens) == (open_, opens)
    via_tool = session_tools(BISTRO).run(_call("hours.check", date=str(day), time=str(at)), None, NOW)
    assert via_tool.result and via_tool.result["open"] is open_
