"""`kit.live.system.seed_stock` writes the stock table the way the provided inventory database lays
it out (it keeps its own copy of that table's schema: db.py offers no way to set stock). If
db.py's table ever changes, this fails instead of the live system silently selling other stock."""
from __future__ import annotations

import importlib.util

import pytest

from kit import ROOT
from kit.live.system import seed_stock


@pytest.mark.parametrize("tree", ["exercise", "solution"])
def test_the_inventory_service_sells_the_seeded_stock(tree, tmp_path):
    spec = importlib.util.spec_from_file_location(f"_db_{tree}", ROOT / tree / "services/inventory_service/db.py")
    db_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(db_module)
    path = tmp_path / "inventory.db"
    seed_stock(path, {"prod-1": 7, "prod-new": 2})
    db = db_module.InventoryDB(str(path), None)
    try:
        assert db.available([{"product_id": "prod-1", "quantity": 7}])
        assert not db.available([{"product_id": "prod-1", "quantity": 8}])
        assert db.available([{"product_id": "prod-new", "quantity": 2}])
        assert db.available([{"product_id": "prod-2", "quantity": db_module.SEED_STOCK["prod-2"]}])
        db.reserve("ord-1", [{"product_id": "prod-1", "quantity": 7}])
        assert not db.available([{"product_id": "prod-1", "quantity": 1}])
    finally:
        db.close()
