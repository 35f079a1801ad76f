"""Success criterion 1, traces span services: Step 1's `ResilientSpanExporter` keeps a failing
backend from costing the services anything (rules 1.16 to 1.27).

Every check drives the exporter directly with real, finished spans (never an empty batch, rule
1.26), an injected clock that moves only when told (always clearly before or clearly past
`reset_timeout_s`, never exactly onto it, rule 1.22) and a sleep that only records what it was
asked for. The wrapped exporter is a script: each attempt gets the script's next outcome
(`SUCCESS`, `FAILURE` or an exception), the last one repeating.
"""
from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult

from kit.harness.expect import check, expect, fail
from kit.harness.learner import attr
from checks.helpers import FakeClock

OK, FAILED, RAISES = SpanExportResult.SUCCESS, SpanExportResult.FAILURE, "raises"
CRITERION = "traces-span-services"


def real_spans(n: int = 2) -> list:
    """`n` finished spans of a plain SDK tracer provider (ours, not the learner's)."""
    tracer = TracerProvider().get_tracer("checks.exporter")
    spans = []
    for i in range(n):
        span = tracer.start_span(f"exported-{i}")
        span.end()
        spans.append(span)
    return spans


class ScriptedExporter:
    """A wrapped exporter whose attempts answer from a script; it remembers every batch."""

    def __init__(self, *script) -> None:
        self.script = list(script) or [OK]
        self.batches: list[list] = []

    @property
    def calls(self) -> int:
        return len(self.batches)

    def then(self, *script) -> "ScriptedExporter":
        """From the next attempt on, answer `script` (its last outcome repeating)."""
        self.script = [*([None] * self.calls), *script]
        return self

    def export(self, spans):
        self.batches.append(list(spans))
        outcome = self.script[min(self.calls - 1, len(self.script) - 1)]
        if outcome == RAISES:
            raise ConnectionError("collector unreachable")
        return outcome

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def _name(outcome) -> str:
    return "an exception" if outcome == RAISES else outcome.name


class Rig:
    """A learner's ResilientSpanExporter around a ScriptedExporter, with a fake clock and sleep."""

    def __init__(self, *script, **options) -> None:
        resilient = attr("services.shared.telemetry", "ResilientSpanExporter")
        self.inner = ScriptedExporter(*script)
        self.clock = FakeClock()
        self.sleeps: list[float] = []
        self.options = {"max_retries": 3, "backoff_base_s": 0.5, "failure_threshold": 5,
                        "reset_timeout_s": 30.0, **options}
        try:
            self.exporter = resilient(self.inner, sleep=self.sleeps.append, clock=self.clock, **self.options)
        except Exception as exc:  # noqa: BLE001
            fail(did=f"built ResilientSpanExporter(exporter, {self.describe()})", expected="an exporter",
                 saw=f"{type(exc).__name__}: {exc}")
        self.log: list[str] = []

    def describe(self) -> str:
        return ", ".join(f"{k}={v:g}" for k, v in self.options.items())

    def export(self, n: int = 2):
        """One export of `n` real spans; returns (result, attempts it made, sleeps it asked for)."""
        calls, slept = self.inner.calls, len(self.sleeps)
        try:
            result = self.exporter.export(real_spans(n))
        except Exception as exc:  # noqa: BLE001 - rule 1.27: never raises
            fail(did=self.did(), expected="export() to return SUCCESS or FAILURE, never to raise (rule 1.27)",
                 saw=f"it raised {type(exc).__name__}: {exc}")
        attempts, sleeps = self.inner.calls - calls, self.sleeps[slept:]
        self.log.append(f"export -> {getattr(result, 'name', result)} after {attempts} attempt(s)"
                        + (f", sleeps {sleeps}" if sleeps else ""))
        return result, attempts, sleeps

    def fail_exports(self, count: int, outcome=FAILED) -> None:
        """`count` exports whose every attempt fails."""
        self.inner.then(outcome)
        for _ in range(count):
            self.export()

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.log.append(f"clock +{seconds:g} s")

    def did(self, extra: str = "") -> str:
        steps = "; ".join(self.log[-8:]) or "nothing yet"
        return (f"drove ResilientSpanExporter({self.describe()}) with real spans, the wrapped exporter "
                f"scripted{extra}: {steps}")


def _close(a, b) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= 1e-9 for x, y in zip(a, b))


@check(step=1, criterion=CRITERION, todo="TODO 11", rules=("1.16", "1.18", "1.26", "1.27"))
def test_a_failed_export_is_retried_max_retries_times_then_fails():
    """A failing export is retried max_retries times, no more, for FAILURE and for exceptions"""
    for outcome in (FAILED, RAISES):
        for max_retries in (0, 1, 3):
            rig = Rig(outcome, max_retries=max_retries, failure_threshold=100)
            result, attempts, _ = rig.export()
            expect(result == FAILED and attempts == max_retries + 1,
                   did=rig.did(f" to answer {_name(outcome)} on every attempt"),
                   expected=f"{max_retries + 1} attempts (1 + max_retries={max_retries} retries), then FAILURE",
                   saw=f"{attempts} attempts, result {getattr(result, 'name', result)}")
        for failures in (1, 3):
            rig = Rig(*([outcome] * failures), OK, max_retries=3, failure_threshold=100)
            result, attempts, _ = rig.export()
            expect(result == OK and attempts == failures + 1,
                   did=rig.did(f" to answer {_name(outcome)} {failures} time(s), then SUCCESS"),
                   expected=f"{failures + 1} attempts, the last one succeeding: SUCCESS",
                   saw=f"{attempts} attempts, result {getattr(result, 'name', result)}")


@check(step=1, criterion=CRITERION, todo="TODO 11", rules=("1.17", "1.26"))
def test_backoff_doubles_before_each_retry():
    """The n-th retry first sleeps backoff_base_s * 2**(n-1): n = 1, 2, 3"""
    for base in (0.5, 0.1):
        rig = Rig(FAILED, max_retries=3, backoff_base_s=base, failure_threshold=100)
        _, attempts, sleeps = rig.export()
        want = [base, base * 2, base * 4]
        expect(_close(sleeps, want), did=rig.did(" to answer FAILURE on every attempt"),
               expected=f"sleeps {want} before retries 1, 2 and 3 (backoff_base_s * 2**(n-1))",
               saw=f"sleeps {sleeps} over {attempts} attempts")
    rig = Rig(RAISES, OK, max_retries=3, backoff_base_s=0.5, failure_threshold=100)
    _, attempts, sleeps = rig.export()
    expect(_close(sleeps, [0.5]), did=rig.did(" to raise once, then answer SUCCESS"),
           expected="one sleep of 0.5 s, before the one retry", saw=f"sleeps {sleeps}")
    rig = Rig(OK, max_retries=3, failure_threshold=100)
    _, attempts, sleeps = rig.export()
    expect(not sleeps and attempts == 1, did=rig.did(" to answer SUCCESS"),
           expected="one attempt and no sleep", saw=f"{attempts} attempts, sleeps {sleeps}")


@check(step=1, criterion=CRITERION, todo="TODO 12", rules=("1.18", "1.20", "1.26", "1.27"))
def test_circuit_opens_after_failure_threshold_failed_exports():
    """The circuit opens after failure_threshold failed exports, not one sooner, and refuses at once"""
    for outcome in (FAILED, RAISES):
        rig = Rig(max_retries=1, failure_threshold=3)
        rig.fail_exports(2, outcome)
        _, attempts, _ = rig.export()
        expect(attempts == 2, did=rig.did(f" to answer {_name(outcome)}"),
               expected="after only 2 failed exports (failure_threshold=3) the circuit is still closed: "
                        "the third export makes its 2 attempts", saw=f"the third export made {attempts} attempts")
        result, attempts, sleeps = rig.export()
        expect(result == FAILED and attempts == 0 and not sleeps, did=rig.did(f" to answer {_name(outcome)}"),
               expected="after 3 failed exports the circuit is open: FAILURE at once, the wrapped exporter "
                        "not called, no sleep",
               saw=f"{attempts} attempts, sleeps {sleeps}, result {getattr(result, 'name', result)}")
        rig.inner.then(OK)
        result, attempts, _ = rig.export()
        expect(result == FAILED and attempts == 0, did=rig.did(" (the backend healthy again, no time passed)"),
               expected="still open: FAILURE without calling the wrapped exporter",
               saw=f"{attempts} attempts, result {getattr(result, 'name', result)}")


@check(step=1, criterion=CRITERION, todo="TODO 12", rules=("1.18", "1.19", "1.25", "1.26"))
def test_a_success_resets_the_count_of_failed_exports():
    """A successful export resets the count of consecutive failures; an empty batch is no failure"""
    rig = Rig(max_retries=0, failure_threshold=3)
    rig.fail_exports(2)
    rig.inner.then(OK)
    result, _, _ = rig.export()
    expect(result == OK, did=rig.did(), expected="SUCCESS", saw=getattr(result, "name", result))
    rig.fail_exports(2)
    _, attempts, _ = rig.export()
    expect(attempts == 1, did=rig.did(" (2 failures, 1 success, 2 failures)"),
           expected="the circuit still closed: the success reset the count, so 2 more failures are not 3",
           saw=f"the next export made {attempts} attempts (0 means the circuit opened)")
    result, attempts, _ = rig.export()
    expect(result == FAILED and attempts == 0, did=rig.did(" (2 failures, 1 success, 3 failures)"),
           expected="the circuit open now: 3 consecutive failures since the success (failure_threshold=3)",
           saw=f"the next export made {attempts} attempts, result {getattr(result, 'name', result)}")
    healthy = Rig(OK, max_retries=0, failure_threshold=2)
    for _ in range(3):
        try:
            result = healthy.exporter.export([])
        except Exception as exc:  # noqa: BLE001
            fail(did="exported an empty batch through ResilientSpanExporter around a healthy exporter",
                 expected="SUCCESS (rule 1.25), never an exception", saw=f"{type(exc).__name__}: {exc}")
        expect(result == OK, did="exported an empty batch through ResilientSpanExporter around a healthy exporter",
               expected="SUCCESS, whether or not the wrapped exporter is called (rule 1.25)",
               saw=getattr(result, "name", result))
    _, attempts, _ = healthy.export()
    expect(attempts == 1, did=healthy.did(" (after three empty batches)"),
           expected="real spans still reach the exporter: empty batches are no failures",
           saw=f"{attempts} attempts")


@check(step=1, criterion=CRITERION, todo="TODO 12", rules=("1.20", "1.21", "1.22", "1.23", "1.24", "1.26"))
def test_open_circuit_lets_one_trial_through_after_reset_timeout():
    """Open until reset_timeout_s has clearly passed; then one single-attempt trial that closes it"""
    rig = Rig(max_retries=2, failure_threshold=2, reset_timeout_s=30.0)
    rig.fail_exports(2)
    rig.advance(29.0)
    result, attempts, _ = rig.export()
    expect(result == FAILED and attempts == 0, did=rig.did(" to answer FAILURE"),
           expected="29 s after opening (reset_timeout_s=30) the circuit is still open: FAILURE, no call",
           saw=f"{attempts} attempts, result {getattr(result, 'name', result)}")
    rig.advance(2.0)
    rig.inner.then(OK)
    result, attempts, sleeps = rig.export()
    expect(result == OK and attempts == 1, did=rig.did(", then healthy"),
           expected="31 s after opening, one trial export goes through and succeeds",
           saw=f"{attempts} attempts, result {getattr(result, 'name', result)}")
    rig.inner.then(FAILED)
    result, attempts, _ = rig.export()
    expect(attempts == 3, did=rig.did(", then failing again"),
           expected="the trial closed the circuit: the next export is an ordinary one (1 + max_retries=2 attempts)",
           saw=f"{attempts} attempts")
    _, attempts, _ = rig.export()
    expect(attempts == 3, did=rig.did(", then failing again"),
           expected="the count started again from 0 when the circuit closed: one failure after it does not "
                    "reopen it (failure_threshold=2)", saw=f"the export after it made {attempts} attempts")


@check(step=1, criterion=CRITERION, todo="TODO 12", rules=("1.21", "1.22", "1.23", "1.24", "1.26", "1.27"))
def test_failed_trial_reopens_the_circuit_for_another_reset_timeout():
    """A failed trial is one attempt, no retry, and opens the circuit for another reset_timeout_s"""
    for outcome in (FAILED, RAISES):
        rig = Rig(max_retries=3, failure_threshold=2, reset_timeout_s=30.0)
        rig.fail_exports(2, outcome)
        rig.advance(31.0)
        result, attempts, sleeps = rig.export()
        expect(result == FAILED and attempts == 1 and not sleeps, did=rig.did(f" to answer {_name(outcome)}"),
               expected="the trial export is a single attempt with no retry and no sleep, then FAILURE",
               saw=f"{attempts} attempts, sleeps {sleeps}, result {getattr(result, 'name', result)}")
        rig.advance(20.0)
        result, attempts, _ = rig.export()
        expect(result == FAILED and attempts == 0, did=rig.did(f" to answer {_name(outcome)}"),
               expected="20 s after the failed trial (51 s after the circuit first opened) it is open again: "
                        "another reset_timeout_s counts from the trial",
               saw=f"{attempts} attempts, result {getattr(result, 'name', result)}")
        rig.advance(11.0)
        rig.inner.then(OK)
        result, attempts, _ = rig.export()
        expect(result == OK and attempts == 1, did=rig.did(", then healthy"),
               expected="31 s after the failed trial, a new trial goes through and succeeds",
               saw=f"{attempts} attempts, result {getattr(result, 'name', result)}")
