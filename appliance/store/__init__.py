"""The box's durable local store (SQLite, WAL): the queue between the box's processes."""

from appliance.store.local_store import LocalStore, PrintJob, Turn

__all__ = ["LocalStore", "PrintJob", "Turn"]
