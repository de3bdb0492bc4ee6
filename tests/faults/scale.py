"""How hard each fault test pushes: a fast variant for CI and a soak variant for long runs."""

from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Scale:
    """Orders submitted and faults injected in one run."""

    orders: int
    faults: int


def variants(fast: Scale, soak: Scale) -> list[object]:
    """pytest params: `fast` (CI, about a minute) and `soak` (deselected unless asked for)."""
    return [
        pytest.param(fast, id="fast"),
        pytest.param(soak, id="soak", marks=[pytest.mark.soak, pytest.mark.timeout(4 * 3600)]),
    ]
