"""kit.grading.fastapi_caches: apps built again share FastAPI's validators, and validate exactly
as they did without the caches."""
# No `from __future__ import annotations` here: the endpoints' annotations must be real types
# (the last test builds string ones on purpose).
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI, Query
from fastapi._compat import v2
from fastapi.testclient import TestClient
from pydantic import BaseModel

import fastapi.routing as routing
from kit.grading import fastapi_caches


class Item(BaseModel):
    name: str
    quantity: int


@pytest.fixture
def caches(monkeypatch):
    """The caches installed for one test, and FastAPI put back as it was afterwards."""
    monkeypatch.setattr(v2.ModelField, "__post_init__", v2.ModelField.__post_init__)
    monkeypatch.setattr(routing, "_extract_endpoint_context", routing._extract_endpoint_context)
    fastapi_caches.install()
    fastapi_caches.install()  # idempotent: a second install wraps nothing twice


def build(limit: int = 0, kind: Any = int) -> FastAPI:
    """A new app from new closures each time, as every mesh builds the services (`q` a number
    at least `limit`, or any text when `kind` is str)."""
    app = FastAPI()
    query = Query(0, ge=limit) if kind is int else Query("")

    @app.post("/items")
    def create(item: Item, q: kind = query) -> dict[str, Any]:  # type: ignore[valid-type]
        return {"name": item.name, "q": q}

    return app


def adapters(app: FastAPI) -> dict[str, Any]:
    route = next(r for r in app.routes if getattr(r, "path", "") == "/items")
    fields = {p.name: p for p in route.dependant.query_params}
    return {"q": fields["q"]._type_adapter, "item": route.body_field._type_adapter,
            "response": route.response_field._type_adapter}


def test_the_same_fields_share_one_validator(caches):
    first, second = adapters(build()), adapters(build())
    for name in ("q", "item", "response"):
        assert first[name] is second[name], name


def test_other_annotations_or_settings_get_their_own(caches):
    plain, stricter, text = adapters(build()), adapters(build(limit=5)), adapters(build(kind=str))
    assert plain["q"] is not stricter["q"]
    assert plain["q"] is not text["q"]
    assert plain["item"] is stricter["item"]


@pytest.mark.parametrize("query, body, status", [
    ("q=3", {"name": "a", "quantity": 1}, 200),
    ("q=-1", {"name": "a", "quantity": 1}, 422),     # below the ge=0 bound
    ("q=x", {"name": "a", "quantity": 1}, 422),      # not an int
    ("q=3", {"name": "a", "quantity": "many"}, 422),  # the body's model still validates
    ("", {"name": "a"}, 422),
])
def test_apps_built_again_validate_as_without_the_caches(caches, query, body, status):
    for _ in range(3):  # the first build fills the caches, the others use them
        response = TestClient(build()).post(f"/items?{query}", json=body)
        assert response.status_code == status, response.text


def test_a_stricter_app_built_after_a_plain_one_keeps_its_bound(caches):
    TestClient(build()).post("/items?q=3", json={"name": "a", "quantity": 1})
    assert TestClient(build(limit=5)).post("/items?q=3", json={"name": "a", "quantity": 1}).status_code == 422
    assert TestClient(build(kind=str)).post("/items?q=x", json={"name": "a", "quantity": 1}).status_code == 200


def test_annotations_still_to_resolve_are_never_shared(caches):
    def with_forward_reference() -> FastAPI:
        app = FastAPI()

        @app.post("/items")
        def create(q: "Later" = Query(0)) -> dict:  # noqa: F821 - a name no namespace has
            return {}

        return app

    assert not fastapi_caches._self_contained("Later")
    assert not fastapi_caches._self_contained(list["Later"])  # noqa: F821 - a name never defined
    assert fastapi_caches._self_contained(dict[str, list[Item]])
    first, second = with_forward_reference(), with_forward_reference()
    fields = [next(r for r in app.routes if getattr(r, "path", "") == "/items").dependant.query_params[0]
              for app in (first, second)]
    assert fields[0]._type_adapter is not fields[1]._type_adapter


def test_a_fastapi_without_the_private_functions_is_left_as_it_is(monkeypatch):
    import fastapi
    import fastapi._compat

    monkeypatch.setattr(fastapi._compat, "v2", SimpleNamespace())   # no ModelField, no asdict
    monkeypatch.setattr(fastapi, "routing", SimpleNamespace())      # no _extract_endpoint_context
    before = v2.ModelField.__post_init__
    fastapi_caches.install()
    assert v2.ModelField.__post_init__ is before
