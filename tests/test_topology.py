"""The kit's topology (kit/topology.py) agrees with what each tree's services say about themselves
(`services/shared/settings.py` in exercise/ and solution/): names, ports, packages, the provider.

The settings modules are loaded from their files under private names: the test process never
imports a tree's `services` package (both trees define one)."""
from __future__ import annotations

import importlib.util
import sys
from urllib.parse import urlsplit

import pytest

from kit import ROOT
from kit import topology
from kit.topology import BY_KEY, PROVIDER_HOST, PROVIDER_PORT, SERVICE_NAMES, SERVICES

TREES = ("exercise", "solution")


@pytest.fixture(scope="module", params=TREES)
def settings(request):
    """The tree's services/shared/settings.py, loaded by path."""
    path = ROOT / request.param / "services" / "shared" / "settings.py"
    name = f"_topology_test_{request.param}_settings"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module      # pydantic resolves the annotations through sys.modules
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(name, None)


def test_the_service_names_agree(settings):
    assert settings.SERVICE_NAMES == {s.key: s.name for s in SERVICES}
    assert tuple(settings.SERVICE_NAMES.values()) == SERVICE_NAMES   # in the same order


def test_the_ports_agree(settings):
    assert settings.DEFAULT_PORTS == {s.key: s.port for s in SERVICES}


def test_the_default_urls_are_the_topologys(settings, monkeypatch):
    for key in BY_KEY:
        monkeypatch.delenv(f"WORKSHOP_{key.upper()}_URL", raising=False)
    monkeypatch.delenv("WORKSHOP_PAYMENT_PROVIDER_URL", raising=False)
    defaults = settings.Settings()
    for service in SERVICES:
        assert getattr(defaults, f"{service.key}_url") == service.url
    assert urlsplit(defaults.payment_provider_url).hostname == PROVIDER_HOST


def test_the_provider_is_not_one_of_ours(settings):
    assert urlsplit(settings.PAYMENT_PROVIDER_URL).hostname == PROVIDER_HOST
    assert topology.PROVIDER not in BY_KEY and PROVIDER_PORT not in {s.port for s in SERVICES}


@pytest.mark.parametrize("tree", TREES)
def test_every_package_is_in_both_trees(tree):
    for service in SERVICES:
        assert (ROOT / tree / "services" / service.package / "main.py").is_file(), (tree, service.package)
    packages = {p.parent.name for p in (ROOT / tree / "services").glob("*/main.py")}
    assert packages == {s.package for s in SERVICES}


def test_keys_names_packages_and_ports_are_unique():
    for field in ("key", "name", "package", "port"):
        values = [getattr(s, field) for s in SERVICES]
        assert len(set(values)) == len(values), field
    assert list(BY_KEY) == [s.key for s in SERVICES]


def test_default_items_are_a_fresh_copy():
    items = topology.default_items()
    items[0]["quantity"] = 99
    assert topology.default_items()[0]["quantity"] == topology.DEFAULT_ITEMS[0]["quantity"] != 99
