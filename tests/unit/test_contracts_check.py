"""`voxeron contracts check` both ways: a breaking change without a major bump fails."""

import shutil
from pathlib import Path

from pydantic import BaseModel, Field, create_model

from sync.contracts.compat import breaking_changes
from sync.contracts.registry import SURFACES, Surface
from sync.contracts.snapshots import check_snapshots, write_snapshots

REPO_CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"


# Three versions of one model; the class name is what a real evolution keeps.
V1 = create_model("Demo", order_id=(str, ...), total_cents=(int, ...))
V1Additive = create_model("Demo", order_id=(str, ...), total_cents=(int, ...),
                          note=(str | None, None))
V1Breaking = create_model("Demo", order_id=(str, ...), total_cents=(str, ...))  # type changed


def test_committed_snapshots_match_the_code() -> None:
    assert check_snapshots(REPO_CONTRACTS) == []


def test_unchanged_surface_passes(tmp_path: Path) -> None:
    write_snapshots(tmp_path, (Surface("demo", "1.0", (V1,)),))
    assert check_snapshots(tmp_path, (Surface("demo", "1.0", (V1,)),)) == []


def test_change_without_bump_fails(tmp_path: Path) -> None:
    write_snapshots(tmp_path, (Surface("demo", "1.0", (V1,)),))
    problems = check_snapshots(tmp_path, (Surface("demo", "1.0", (V1Additive,)),))
    assert len(problems) == 1 and "bump the version" in problems[0]


def test_additive_change_with_minor_bump_passes(tmp_path: Path) -> None:
    write_snapshots(tmp_path, (Surface("demo", "1.0", (V1,)),))
    bumped = (Surface("demo", "1.1", (V1Additive,)),)
    write_snapshots(tmp_path, bumped)
    assert check_snapshots(tmp_path, bumped) == []


def test_breaking_change_with_minor_bump_fails(tmp_path: Path) -> None:
    write_snapshots(tmp_path, (Surface("demo", "1.0", (V1,)),))
    bumped = (Surface("demo", "1.1", (V1Breaking,)),)
    write_snapshots(tmp_path, bumped)
    problems = check_snapshots(tmp_path, bumped)
    assert problems and "breaks 1.0.schema.json within a major version" in problems[0]
    assert "total_cents" in problems[0]


def test_breaking_change_with_major_bump_passes(tmp_path: Path) -> None:
    write_snapshots(tmp_path, (Surface("demo", "1.0", (V1,)),))
    bumped = (Surface("demo", "2.0", (V1Breaking,)),)
    write_snapshots(tmp_path, bumped)
    assert check_snapshots(tmp_path, bumped) == []


def test_real_surface_breaking_change_is_caught(tmp_path: Path) -> None:
    shutil.copytree(REPO_CONTRACTS, tmp_path / "c")
    order = next(s for s in SURFACES if s.name == "order")

    class Narrowed(BaseModel):
        order_id: str
        number: int = Field(ge=1)
        brand_new_required: str

    problems = check_snapshots(tmp_path / "c", (Surface("order", order.version, (Narrowed,)),))
    assert problems


def test_compat_rules() -> None:
    old = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
           "enum": ["x", "y"]}
    assert breaking_changes(old, {**old, "properties": {"a": {"type": "string"},
                                                        "b": {"type": "integer"}}}) == []
    assert breaking_changes(old, {**old, "enum": ["x", "y", "z"]}) == []
    assert breaking_changes(old, {**old, "required": ["a", "b"]})
    assert breaking_changes(old, {**old, "enum": ["x"]})
    assert breaking_changes(old, {**old, "properties": {}})
