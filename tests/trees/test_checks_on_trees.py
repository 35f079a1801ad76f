"""The checks are right about the two trees: every check passes on solution/ and fails on the
unmodified exercise/, each for the reason it names (never an import error, a timeout or a crash
of the harness); and the same tree always gets the same result."""
from __future__ import annotations

from kit import ROOT
from kit.course import load_course
from kit.results import Status
from kit.grading.runner import run_checks


def test_every_check_passes_on_the_solution(graded):
    report = graded("solution")
    failing = {c.id: c.message for c in report.checks if not c.passed}
    assert not failing, failing
    assert report.score == report.max_score == load_course().max_score


def test_every_criterion_and_step_has_checks(graded):
    report = graded("solution")
    assert all(c.total > 0 for c in report.criteria), [c.id for c in report.criteria if not c.total]
    assert all(s.total > 0 for s in report.steps), [s.number for s in report.steps if not s.total]


def test_every_check_fails_on_the_exercise_for_its_own_reason(graded):
    report = graded("exercise")
    assert report.score == 0
    for check in report.checks:
        assert check.status is Status.FAILED, (check.id, check.status, check.message)
        message = check.message
        assert message.strip(), check.id
        assert "Traceback" not in message, (check.id, message)
        assert not message.startswith("We imported services."), (check.id, message)
        assert "timed out" not in message, (check.id, message)


def test_only_grades_one_step_or_one_criterion():
    step = run_checks(ROOT / "solution", only="4")
    assert step.checks and {c.step for c in step.checks} == {4}
    criterion = run_checks(ROOT / "solution", only="context-propagates")
    assert criterion.checks and {c.criterion for c in criterion.checks} == {"context-propagates"}


#: Readings the contract leaves open, each written as a change to the reference: a correct
#: implementation may take either, so each must still pass every check. (file, reference line,
#: the other reading; or file, None, lines added at its end)
EXTRA_KEYS = """
_slowest, _rates, _map = slowest_operations, error_rates, dependency_map
def slowest_operations(*a, **k): return [{**e, "mean_ms": 1.0} for e in _slowest(*a, **k)]
def error_rates(*a, **k): return [{**e, "window": "all"} for e in _rates(*a, **k)]
def dependency_map(*a, **k): return [{**e, "p99_ms": 0.0} for e in _map(*a, **k)]
"""
OTHER_READINGS = {
    "4.16: out of retries on a 429 or a 5xx (or on a 500/501), the client raises instead of returning": [
        ("services/shared/http_client.py",
         '                failed = response.status_code >= 500\n                return response',
         '                failed = response.status_code >= 500\n'
         '                if response.status_code == 429 or failed:\n'
         '                    response.raise_for_status()\n'
         '                return response'),
    ],
    "2.33: X-Trace-Sampling values matched as written (ALWAYS and True mean nothing)": [
        ("services/shared/trace_context.py",
         'value = _SAMPLING_VALUES.get((_first(getter, carrier, SAMPLING_HEADER) or "").lower())',
         'value = _SAMPLING_VALUES.get(_first(getter, carrier, SAMPLING_HEADER) or "")'),
    ],
    "2.28: a sane X-Correlation-ID kept as it came, untrimmed": [
        ("services/shared/trace_context.py",
         '    value = value.strip()\n    if 1 <= len(value) <= 128 and all(" " <= ch <= "~" for ch in value):\n'
         '        return value',
         '    trimmed = value.strip()\n    if 1 <= len(trimmed) <= 128 and all(" " <= ch <= "~" for ch in trimmed):\n'
         '        return value'),
    ],
    "0.10: result dicts with more keys than the reference lists (E1 to E4)": [
        ("services/api_gateway/analytics.py", None, EXTRA_KEYS),
        ("services/api_gateway/slo.py", None,
         "\n_evaluate = evaluate_slo\ndef evaluate_slo(*a, **k): return {**_evaluate(*a, **k), 'window_ms': 0}\n"),
        ("services/shared/experiments.py", None,
         "\n_compare = compare_variants\ndef compare_variants(*a, **k):\n"
         "    return {v: {**f, 'p99_ms': 0.0} for v, f in _compare(*a, **k).items()}\n"),
    ],
    "5.29: server.address before peer.service (the rule says 'its peer.service or server.address')": [
        ("services/api_gateway/monitoring.py",
         'target = (attrs.get("db.system") or attrs.get("peer.service")\n                  or attrs.get("server.address"))',
         'target = (attrs.get("db.system") or attrs.get("server.address")\n                  or attrs.get("peer.service"))'),
        ("services/api_gateway/analytics.py",
         'target = attrs.get("db.system") or attrs.get("peer.service") or attrs.get("server.address")',
         'target = attrs.get("db.system") or attrs.get("server.address") or attrs.get("peer.service")'),
    ],
}


def test_either_reading_of_an_open_rule_passes_every_check(tmp_path):
    import shutil

    for reading, edits in OTHER_READINGS.items():
        tree = tmp_path / str(abs(hash(reading)))
        shutil.copytree(ROOT / "solution", tree, ignore=shutil.ignore_patterns("__pycache__"))
        for file, ours, theirs in edits:
            source = (tree / file).read_text(encoding="utf-8")
            assert ours is None or ours in source, f"{reading}: the reference no longer has {ours!r} in {file}"
            (tree / file).write_text(source + theirs if ours is None else source.replace(ours, theirs),
                                     encoding="utf-8")
        report = run_checks(tree)
        failing = {c.id: c.message for c in report.checks if not c.passed}
        assert not failing, (reading, failing)
        assert all(e.passed for e in report.extensions), (reading, [e.id for e in report.extensions if not e.passed])
