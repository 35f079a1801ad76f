"""kit/traces/learners_analysis.py: the analysis of the learner release, answered by the
learner's own Step 5.

With `solution/` on sys.path its answers are the kit's reference analysis's
(`kit.traces.analysis`), on the contract's worked example, the pictures' known trace and
generated traces; with `exercise/` (the stubs), with no tree at all and with malformed answers,
every function gives the plain answer and a note, without raising; and the viewer, with this
module in place of `kit.traces.analysis`, serves a trace page either way.

The tree is put first on sys.path for one test and everything it imported (`services.*`) is
dropped afterwards: the rest of the test process never sees `services`.
"""
from __future__ import annotations

import importlib
import importlib.util
import random
import sys
import types
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kit import ROOT
from kit.live.viewer import server
from kit.traces import analysis as reference
from kit.traces import learners_analysis as learners
from kit.traces import service_map as service_map_module
from kit.traces import waterfall as waterfall_module

HERE = Path(__file__).resolve().parent


def _load(path: Path, name: str) -> types.ModuleType:
    """Another test file's span builders, loaded under a private name."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pictures_tests = _load(HERE / "test_waterfall.py", "_learners_analysis_pictures")
viewer_tests = _load(HERE.parent / "live" / "test_viewer.py", "_learners_analysis_viewer")

NOTES = {
    "tree": "span tree: finish Step 5 (build_trace_tree) to see each span under its parent",
    "total": "total duration: finish Step 5 (calculate_total_duration) to see it here",
    "path": "critical path: finish Step 5 (calculate_critical_path) to see it here",
    "bottlenecks": "bottlenecks and self times: finish Step 5 (identify_bottlenecks) to see them here",
    "map": "service map: finish Step 5 (build_service_dependencies) to see it here",
}


def _drop_services() -> dict[str, types.ModuleType]:
    found = {k: m for k, m in sys.modules.items() if k == "services" or k.startswith("services.")}
    for k in found:
        del sys.modules[k]
    return found


@pytest.fixture
def tree(request):
    """`tree("solution")` / `tree("exercise")` / `tree(None)` (no tree at all) for this test."""
    saved_path, saved_modules = list(sys.path), _drop_services()

    def use(name: str | None) -> None:
        _drop_services()
        sys.path[:] = saved_path
        if name is not None:
            sys.path.insert(0, str(ROOT / name))
        importlib.invalidate_caches()

    yield use
    sys.path[:] = saved_path
    _drop_services()
    sys.modules.update(saved_modules)


def _without_notes(result: dict) -> dict:
    out = dict(result)
    assert out.pop("notes") == [], "the solution answers everything"
    return out


def generated(seed: int, size: int = 40) -> list:
    """A made-up trace: spans under earlier spans (some starting before or ending after their
    parent), ties in start times, orphans, a span exported twice, CLIENT spans to databases
    and outside APIs, failed spans. Whole milliseconds, so every figure is exact."""
    rnd = random.Random(seed)
    record = pictures_tests.record
    services = ["api-gateway", "order-service", "inventory-service", "payment-service"]
    spans = [record(1, None, "root", 0, rnd.randint(80, 200), service="api-gateway", kind="SERVER")]
    for sid in range(2, size + 1):
        roll = rnd.random()
        if roll < 0.06:                                   # an orphan: its parent was not exported
            parent, start = 0xdead0000 + sid, rnd.randint(0, 150)
            spans.append(record(sid, parent, f"orphan-{sid}", start, start + rnd.randint(0, 40),
                                service=rnd.choice(services), kind="SERVER"))
            continue
        up = rnd.choice(spans)
        lo, hi = up.start_ms - pictures_tests.T0, up.start_ms - pictures_tests.T0 + up.duration_ms
        start = rnd.randint(int(lo) - 3, int(hi))
        end = start + rnd.randint(0, max(int(hi - start) + 4, 1))
        kind = rnd.choice(["INTERNAL", "CLIENT", "SERVER"])
        attrs = {}
        if kind == "CLIENT":
            attrs = rnd.choice([{"db.system": rnd.choice(["redis", "sqlite"])},
                                {"peer.service": "payment-provider"},
                                {"server.address": "127.0.0.1", "server.port": 8009},
                                {"server.address": "api.example"}, {}])
        service = up.service if kind != "SERVER" else rnd.choice(services)
        spans.append(record(sid, int(up.span_id, 16), f"op-{sid}", start, end, service=service,
                            kind=kind, status="ERROR" if rnd.random() < 0.15 else "OK", **attrs))
    spans.append(spans[rnd.randrange(len(spans))])      # exported twice
    rnd.shuffle(spans)
    return spans


EXAMPLES = {
    "worked example": viewer_tests.worked_example,
    "known trace": pictures_tests.known_trace,
    **{f"generated {seed}": (lambda seed=seed: generated(seed)) for seed in range(8)},
}


@pytest.mark.parametrize("name", EXAMPLES)
def test_with_the_solution_the_answers_are_the_kits(tree, name):
    tree("solution")
    spans = EXAMPLES[name]()
    aliases = {"127.0.0.1:8009": "payment-provider"}
    for options in ({}, {"threshold_ms": 5.0, "top": 3, "aliases": aliases}):
        assert _without_notes(learners.analyse(spans, **options)) == reference.analyse(spans, **options)
    uniq, parent = learners.index(spans)
    assert (uniq, parent) == reference.index(spans)
    assert learners.children_lists(parent) == reference.children_lists(parent)
    assert learners.depths(parent) == reference.depths(parent)
    assert learners.total_duration(spans) == reference.total_duration(spans)
    selfs = learners.self_times(uniq, parent)
    assert selfs == reference.self_times(uniq, parent)
    assert learners.critical_path(uniq, parent) == reference.critical_path(uniq, parent)
    assert (learners.bottlenecks(uniq, selfs, threshold_ms=1.0, top=4)
            == reference.bottlenecks(uniq, selfs, threshold_ms=1.0, top=4))
    assert (learners.service_map(uniq, parent, aliases=aliases)
            == reference.service_map(uniq, parent, aliases=aliases))
    assert learners.analyse([]) == {**reference.analyse([]), "notes": []}


def _assert_plain(spans, result_notes=None):
    """The plain answers: spans in start order, no links, no path, no bottlenecks, no map."""
    uniq, parent = learners.index(spans)
    assert [s.start_ms for s in uniq] == sorted(s.start_ms for s in spans)
    assert parent == [-1] * len(uniq) and parent.note == NOTES["tree"]
    assert learners.depths(parent) == [0] * len(uniq)
    assert learners.total_duration(spans) == 0.0
    assert learners.self_times(uniq, parent) == [0.0] * len(uniq)
    for answer, note in ((learners.critical_path(uniq, parent), NOTES["path"]),
                         (learners.bottlenecks(uniq, [0.0] * len(uniq)), NOTES["bottlenecks"]),
                         (learners.service_map(uniq, parent), NOTES["map"])):
        assert answer == [] and answer.note == note
    result = learners.analyse(spans, aliases={"127.0.0.1:8009": "payment-provider"})
    assert result["notes"] == list(NOTES.values())
    assert result["critical_path"] == result["bottlenecks"] == result["service_map"] == []
    assert result["span_count"] == len(uniq) and result["total_duration_ms"] == 0.0
    rows = result["timeline"]
    assert [r["start_ms"] for r in rows] == sorted(r["start_ms"] for r in rows)
    assert all(r["depth"] == 0 and not r["orphan"] and not r["critical"] for r in rows)


@pytest.mark.parametrize("which", ["exercise", None], ids=["the stubs", "no tree"])
def test_without_step_5_every_answer_is_the_plain_one(tree, which):
    tree(which)
    for make in EXAMPLES.values():
        _assert_plain(make())


def test_malformed_answers_are_the_plain_ones(tree, monkeypatch):
    tree(None)
    fake = types.ModuleType("services.api_gateway.monitoring")
    fake.build_trace_tree = lambda spans: [{"span": None, "children": []}]
    fake.calculate_total_duration = lambda spans: "100"
    fake.calculate_critical_path = lambda tree: [{"span_id": "a" * 16}]
    fake.identify_bottlenecks = lambda spans, **_: None
    fake.build_service_dependencies = lambda spans: [{"caller": "x", "callee": "y", "calls": 1}]
    monkeypatch.setitem(sys.modules, "services.api_gateway.monitoring", fake)
    _assert_plain(viewer_tests.worked_example())
    # A tree that leaves a span out, or holds one twice, is not the trace's tree either.
    spans = viewer_tests.worked_example()
    fake.build_trace_tree = lambda records: [{"span": records[0], "children": []}]
    assert learners.index(spans)[1].note == NOTES["tree"]
    fake.build_trace_tree = lambda records: [{"span": r, "children": []} for r in records + records[:1]]
    assert learners.index(spans)[1].note == NOTES["tree"]


@pytest.fixture
def learners_viewer(monkeypatch):
    """The viewer over the worked example and a second trace, drawing with this module (as the
    learner release's `kit.traces.analysis`)."""
    for module in (server, waterfall_module, service_map_module):
        monkeypatch.setattr(module, "analysis", learners)
    spans = viewer_tests.worked_example() + [
        viewer_tests.span("e" * 16, None, 200, 205, trace_id="1" * 32, service="api-gateway",
                          kind="SERVER", status="ERROR", name="POST /api/orders")]
    return TestClient(server.create_viewer_app(viewer_tests._Store(spans)))


@pytest.mark.parametrize("which", ["exercise", None], ids=["the stubs", "no tree"])
def test_the_viewer_says_what_to_finish_without_step_5(tree, learners_viewer, which):
    tree(which)
    page = learners_viewer.get(f"/viewer/traces/{viewer_tests.TRACE}")
    assert page.status_code == 200 and "Traceback" not in page.text
    assert NOTES["path"] in page.text and NOTES["map"] in page.text
    assert page.text.count('class="span') >= 4 and 'class="note"' in page.text
    api = learners_viewer.get(f"/viewer/api/traces/{viewer_tests.TRACE}").json()
    assert api["critical_path"] == [] and NOTES["path"] in api["notes"]
    whole = learners_viewer.get("/viewer/map")
    assert whole.status_code == 200 and NOTES["map"] in whole.text


def test_the_viewer_draws_the_learners_answers_with_the_solution(tree, learners_viewer):
    tree("solution")
    page = learners_viewer.get(f"/viewer/traces/{viewer_tests.TRACE}")
    assert page.status_code == 200 and "finish Step 5" not in page.text
    assert 'class="span critical' in page.text
    api = learners_viewer.get(f"/viewer/api/traces/{viewer_tests.TRACE}").json()
    assert api["notes"] == [] and len(api["critical_path"]) == 5
    assert "finish Step 5" not in learners_viewer.get("/viewer/map").text


def test_the_pictures_say_what_to_finish(tree, monkeypatch):
    for module in (waterfall_module, service_map_module):
        monkeypatch.setattr(module, "analysis", learners)
    tree("exercise")
    spans = pictures_tests.known_trace()
    assert NOTES["path"] in waterfall_module.waterfall_svg(spans)
    assert NOTES["map"] in service_map_module.service_map_svg(spans)
    tree("solution")
    assert "finish Step 5" not in waterfall_module.waterfall_svg(spans)
    assert "finish Step 5" not in service_map_module.service_map_svg(spans)
    assert 'class="span critical' in waterfall_module.waterfall_svg(spans)
