"""The graded checks' harness: which tree to grade, and the fixtures every check uses.

The target tree (`exercise/` unless `--target PATH` or `WORKSHOP_TARGET` says otherwise) goes
first on `sys.path`, so `services.*` is the learner's code. `OTEL_SEMCONV_STABILITY_OPT_IN=http`
is set before any instrumentation is imported, as the contract promises.

Fixtures:
- `mesh`: the five services of the target, started, with the default sampling (everything kept).
- `make_mesh(**options)`: builds more meshes (other sampling, a failing provider, ...), each
  torn down after the check.
- (autouse) the span ids `checks.ext_helpers.span()` numbers itself start from 1 in every check,
  so that they do not depend on which checks ran before in the same process.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "http"

import pytest  # noqa: E402

from kit import ROOT  # noqa: E402


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--target", default=os.environ.get("WORKSHOP_TARGET", str(ROOT / "exercise")),
                     help="the tree to grade (exercise/, solution/ or a learner's copy)")


def pytest_configure(config: pytest.Config) -> None:
    target = Path(config.getoption("--target")).resolve()
    if not (target / "services").is_dir():
        raise pytest.UsageError(f"--target {target}: no services/ folder there; point it at a copy of exercise/")
    sys.path.insert(0, str(target))
    config.workshop_target = target


@pytest.fixture(autouse=True)
def _span_ids_per_check() -> None:
    helpers = sys.modules.get("checks.ext_helpers")   # imported only by the checks that use it
    if helpers is not None:
        helpers.reset_ids()


@pytest.fixture
async def make_mesh():
    from kit.harness.mesh import Mesh

    meshes = []

    async def build(**options) -> Mesh:
        # The kit's own tests remove propagation headers on every hop to prove that the checks
        # catch a client that injects nothing. This can only make a check stricter.
        stripped = [h for h in os.environ.get("WORKSHOP_MESH_STRIP_HEADERS", "").split(",") if h]
        mesh = Mesh(strip_headers=tuple(stripped), **options)
        await mesh.__aenter__()
        meshes.append(mesh)
        return mesh

    yield build
    for mesh in reversed(meshes):
        await mesh.__aexit__(None, None, None)


@pytest.fixture
async def mesh(make_mesh):
    return await make_mesh()
