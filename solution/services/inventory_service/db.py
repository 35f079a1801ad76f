"""Stock and reservations in SQLite, through the standard `sqlite3` module.

The connection is instrumented with the inventory service's tracer provider, so every query is
a CLIENT span with `db.system` = `sqlite`. `":memory:"` gives each app its own fresh database,
seeded with the workshop's stock; a file path is shared by every process that opens it.
"""
from __future__ import annotations

import sqlite3
import threading
import uuid

from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor
from opentelemetry.sdk.trace import TracerProvider

#: Seeded stock: product id -> units on hand.
SEED_STOCK: dict[str, int] = {"prod-1": 100, "prod-2": 50, "prod-3": 5, "prod-empty": 0}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stock (product_id TEXT PRIMARY KEY, on_hand INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS reservations (
    reservation_id TEXT NOT NULL, order_id TEXT NOT NULL,
    product_id TEXT NOT NULL, quantity INTEGER NOT NULL);
"""


class UnknownProductError(LookupError):
    """An order named a product the inventory has never heard of."""


class OutOfStockError(Exception):
    """The stock is gone: a reservation cannot be made."""


class InventoryDB:
    """The inventory's data access: availability, reserve, release."""

    def __init__(self, path: str, tracer_provider: TracerProvider | None) -> None:
        raw = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        raw.executescript(_SCHEMA)
        raw.executemany("INSERT OR IGNORE INTO stock VALUES (?, ?)", SEED_STOCK.items())
        self._lock = threading.Lock()
        self.conn = (SQLite3Instrumentor().instrument_connection(raw, tracer_provider=tracer_provider)
                     if tracer_provider is not None else raw)

    def _execute(self, sql: str, params: tuple = ()):
        # Through a cursor: the instrumented connection traces cursor.execute (one CLIENT span
        # per query), not the connection's execute shortcut.
        cursor = self.conn.cursor()
        cursor.execute(sql, params)
        return cursor

    def _on_hand(self, product_id: str) -> int:
        row = self._execute("SELECT on_hand FROM stock WHERE product_id = ?", (product_id,)).fetchone()
        if row is None:
            raise UnknownProductError(f"unknown product {product_id!r}")
        return row[0]

    def available(self, items: list[dict]) -> bool:
        """Whether every item's quantity is on hand. Raises UnknownProductError."""
        with self._lock:
            return all(self._on_hand(item["product_id"]) >= int(item["quantity"]) for item in items)

    def reserve(self, order_id: str, items: list[dict]) -> str:
        """Take the items out of stock; returns the reservation id. Raises OutOfStockError."""
        with self._lock:
            for item in items:
                if self._on_hand(item["product_id"]) < int(item["quantity"]):
                    raise OutOfStockError(item["product_id"])
            reservation_id = f"res-{uuid.uuid4().hex[:12]}"
            for item in items:
                self._execute("UPDATE stock SET on_hand = on_hand - ? WHERE product_id = ?",
                                  (int(item["quantity"]), item["product_id"]))
                self._execute("INSERT INTO reservations VALUES (?, ?, ?, ?)",
                                  (reservation_id, order_id, item["product_id"], int(item["quantity"])))
            return reservation_id

    def release(self, reservation_id: str) -> int:
        """Put a reservation's items back in stock; returns how many lines were released."""
        with self._lock:
            rows = self._execute(
                "SELECT product_id, quantity FROM reservations WHERE reservation_id = ?",
                (reservation_id,)).fetchall()
            for product_id, quantity in rows:
                self._execute("UPDATE stock SET on_hand = on_hand + ? WHERE product_id = ?",
                                  (quantity, product_id))
            self._execute("DELETE FROM reservations WHERE reservation_id = ?", (reservation_id,))
            return len(rows)

    def close(self) -> None:
        self.conn.close()
