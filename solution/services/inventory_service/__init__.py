"""The inventory service (inventory-service): stock and reservations in SQLite."""
