import pytest

from sync.ids import id_kind, new_id
from sync.topics import DeviceTopics, parse_device_topic


def test_ids_are_prefixed_unique_and_time_ordered() -> None:
    a, b = new_id("ord", now_ms=1_000), new_id("ord", now_ms=2_000)
    assert a.startswith("ord_") and id_kind(a) == "ord"
    assert a < b
    assert len({new_id("evt") for _ in range(1000)}) == 1000


@pytest.mark.parametrize("bad", ["ord", "xyz_01ABCDEFGHJKMNPQRSTVWXYZ0", "ord_short", "ord_" + "U" * 26])
def test_malformed_ids_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        id_kind(bad)


def test_topics_round_trip() -> None:
    t = DeviceTopics("ten_1", "dev_2")
    assert t.events == "vx/v1/t/ten_1/d/dev_2/up/events"
    assert parse_device_topic(t.acks) == ("ten_1", "dev_2", "down/acks")
    with pytest.raises(ValueError):
        parse_device_topic("vx/v2/t/a/d/b/up/events")
