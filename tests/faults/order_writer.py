"""A process that submits orders into a box store in a tight loop until it is killed.

`python -m tests.faults.order_writer DB TENANT DEVICE` prints each order id after its
transaction committed; a test SIGKILLs it at random moments, mostly inside a write.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.faults.stack import OrderLoader


def main(argv: list[str]) -> None:
    db, tenant_id, device_id = argv
    loader = OrderLoader(Path(db), tenant_id, device_id)
    print("ready", flush=True)
    while True:
        order = loader.submit()
        print(order.order_id, flush=True)
        loader.submitted.clear()  # keep memory flat however long it runs


if __name__ == "__main__":
    main(sys.argv[1:])
