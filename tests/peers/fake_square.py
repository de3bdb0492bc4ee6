"""The fake Square POS moved into the product as `voxeron.pos_emulator`; re-exported here.

Run standalone (benchmarks): `python -m tests.peers.fake_square --port 8765`
(same as `voxeron pos-emulator --port 8765`).
"""

from __future__ import annotations

from voxeron.pos_emulator import (
    ACCESS_TOKEN,
    LOCATION_ID,
    FakeSquare,
    Fault,
    SquareState,
    main,
    run_emulator,
)

__all__ = ["ACCESS_TOKEN", "LOCATION_ID", "FakeSquare", "Fault", "SquareState", "main",
           "run_emulator"]

if __name__ == "__main__":
    main()
