"""Step 4, the circuit breaker (success criterion 1, traces span services): per host, counting
calls, opening at the threshold, refusing visibly and sending nothing, and letting one trial
call through once the reset timeout has passed. The clock is a `FakeClock` the checks move,
always clearly before or after `reset_timeout_s`, never exactly on it; the last check plays
generated sequences of calls and clock steps against a small oracle (checks/oracles/step4.py)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httpx
from opentelemetry.trace import SpanKind

from kit.harness.expect import check, expect, fail
from kit.harness.generated import generated
from kit.harness.learner import attr
from kit.harness.spans import describe, is_error
from kit.harness.strategies import Phase, st
from checks.helpers import FakeClock, ScriptedWire, make_telemetry, outcome_name, traced_client
from checks.oracles.step4 import oracle_circuit_story

A, A2, B = "alpha-service:9000", "alpha-service:9001", "beta-service:9000"


def _url(host: str) -> str:
    return f"http://{host}/work"


class _Breaker:
    """A client under test with its wire, clock and spans; `call` says what one call came to."""

    def __init__(self, *, threshold: int, reset: float = 30.0, retries: int = 0, telemetry=None) -> None:
        if telemetry is None:
            telemetry, self.exporter = make_telemetry("breaker-service")
        self.telemetry = telemetry
        self.wire, self.clock = ScriptedWire([200]), FakeClock()
        self.open_error = attr("services.shared.http_client", "CircuitOpenError")
        self.client = traced_client(telemetry, self.wire, clock=self.clock, failure_threshold=threshold,
                                    reset_timeout_s=reset, max_retries=retries, backoff_base_s=0.01)

    async def call(self, host: str, outcomes=None, method: str = "GET", **kwargs) -> tuple[str, object, int]:
        """(what came back: "answer"/"raised"/"refused", the status or exception name, requests sent)."""
        if outcomes is not None:
            self.wire.script(host, outcomes)
        before = len(self.wire.requests)
        try:
            response = await self.client.request(method, _url(host), **kwargs)
        except self.open_error:
            return ("refused", "CircuitOpenError", len(self.wire.requests) - before)
        except Exception as exc:  # noqa: BLE001 - what the call came to
            return ("raised", type(exc).__name__, len(self.wire.requests) - before)
        return ("answer", response.status_code, len(self.wire.requests) - before)

    def spans(self) -> list:
        self.telemetry.force_flush()
        return list(self.exporter.get_finished_spans())


def _went_out(result) -> bool:
    return result[0] != "refused" and result[2] > 0


def _refused(result) -> bool:
    return result[0] == "refused" and result[2] == 0


def _shown(result) -> str:
    kind, value, sent = result
    if kind == "refused":
        return f"CircuitOpenError raised, {sent} request(s) sent"
    return f"{'answer ' if kind == 'answer' else ''}{value}{' raised' if kind == 'raised' else ''} after {sent} request(s)"


@check(step=4, criterion="traces-span-services", todo="TODO 6", rules=("4.21",))
async def test_one_circuit_per_host_and_port():
    """Each host:port has its own circuit: one host's failures never refuse calls to another"""
    breaker = _Breaker(threshold=2)
    did = "set failure_threshold=2 and max_retries=0, and called alpha-service:9000 (answers 500) and beta-service:9000 " \
          "(answers 500) in turn: alpha, beta, alpha"
    async with breaker.client:
        first = [await breaker.call(A, [500]), await breaker.call(B, [500]), await breaker.call(A, [500])]
        beta = await breaker.call(B, [200])
        expect(_went_out(beta) and all(_went_out(r) for r in first), did=did + ", then beta again (now answering 200)",
               expected="every call to go out: beta had one failure, alpha two (its circuit opens only now)",
               saw=f"{[_shown(r) for r in first]}, then beta: {_shown(beta)}")
        alpha = await breaker.call(A, [200])
        other_port = await breaker.call(A2, [200])
        expect(_refused(alpha) and _went_out(other_port) and other_port[1] == 200,
               did=did + ", then beta, then alpha-service:9000 and alpha-service:9001",
               expected="alpha-service:9000 refused (CircuitOpenError, nothing sent), alpha-service:9001 "
                        "(another port: another circuit) answered 200",
               saw=f"alpha:9000: {_shown(alpha)}; alpha:9001: {_shown(other_port)}")


@check(step=4, criterion="traces-span-services", todo="TODO 6", rules=("4.22", "4.23", "4.28"))
async def test_circuit_counts_failed_calls_not_attempts():
    """The breaker counts calls, each by its last attempt: retried attempts are not failures of their own"""
    breaker = _Breaker(threshold=3, retries=2)
    did = "set failure_threshold=3 and max_retries=2, and made GETs to one host"
    async with breaker.client:
        steps = [("503 on all 3 attempts", [503]), ("503, 503, then 200 (a success)", [503, 503, 200]),
                 ("ConnectError on all 3 attempts", [httpx.ConnectError]), ("500 (not retried)", [500, 200]),
                 ("504, 504, 501", [504, 504, 501])]
        results = [await breaker.call(A, script) for _, script in steps]
        story = "; ".join(f"{label}: {_shown(r)}" for (label, _), r in zip(steps, results))
        expect(all(_went_out(r) for r in results), did=f"{did}: {', '.join(label for label, _ in steps)}",
               expected="every call to go out: the second call's last attempt succeeded, so the failed calls in a row "
                        "are 1, then 3 only with the last one (9 failed attempts are not 9 failures)",
               saw=story)
        refused = await breaker.call(A, [200])
        expect(_refused(refused), did=f"{did}: {story}; then one more",
               expected="three failed calls in a row (their last attempts got ConnectError, 500 and 501): "
                        "the next call refused, nothing sent",
               saw=_shown(refused))
    attempts = [s for s in breaker.spans() if s.kind == SpanKind.CLIENT
                and (s.attributes or {}).get("error.type") != "CircuitOpenError"]
    expect(len(attempts) == len(breaker.wire.requests), did=f"{did}; the refused call made no attempt",
           expected=f"{len(breaker.wire.requests)} CLIENT spans besides the refusal's (one per request sent; the "
                    "refusal is not an attempt)", saw=f"{len(attempts)}", spans=breaker.spans())


@check(step=4, criterion="traces-span-services", todo="TODO 6", rules=("4.24", "4.23"))
async def test_circuit_opens_at_exactly_the_threshold():
    """After failure_threshold failed calls in a row, and not one sooner, calls are refused and send nothing"""
    for threshold in (1, 2, 4):
        for failure in (500, 503, httpx.ConnectError, httpx.ReadTimeout):
            breaker = _Breaker(threshold=threshold, retries=1)
            did = (f"set failure_threshold={threshold} and max_retries=1, and made GETs to a host that gives "
                   f"{outcome_name(failure)}")
            async with breaker.client:
                before = [await breaker.call(A, [failure]) for _ in range(threshold - 1)]
                last = await breaker.call(A, [failure])
                expect(all(_went_out(r) for r in [*before, last]), did=f"{did}, {threshold} times",
                       expected=f"all {threshold} calls to go out ({threshold - 1} failures do not open the circuit)",
                       saw=f"{[_shown(r) for r in [*before, last]]}")
                refused = await breaker.call(A, [200])
                again = await breaker.call(A, [200])
            expect(_refused(refused) and _refused(again), did=f"{did}, {threshold} times, then twice more",
                   expected="both later calls refused with CircuitOpenError, nothing sent",
                   saw=f"{_shown(refused)}; {_shown(again)}")


@check(step=4, criterion="traces-span-services", todo="TODO 6", rules=("4.20",))
async def test_client_error_answers_count_as_successes():
    """A 4xx answer ends a run of failures and closes a half-open circuit"""
    for answer in (400, 404, 409, 422):
        breaker = _Breaker(threshold=3, reset=30.0)
        did = f"set failure_threshold=3, and made GETs to one host answering 500, 500, {answer}, 500, 500"
        async with breaker.client:
            results = [await breaker.call(A, [s]) for s in (500, 500, answer, 500, 500)]
            after = await breaker.call(A, [200])
            expect(all(_went_out(r) for r in [*results, after]), did=did + ", then once more",
                   expected=f"every call to go out: the {answer} answer succeeded, so the run of failures restarted",
                   saw=f"{[_shown(r) for r in [*results, after]]}")
            for _ in range(3):
                await breaker.call(A, [500])
            refused = await breaker.call(A, [200])
            expect(_refused(refused), did=did + ", then one more, then three calls answered 500, then one more",
                   expected="that last call refused: three failed calls in a row open the circuit", saw=_shown(refused))
            breaker.clock.advance(30.5)
            trial = await breaker.call(A, [answer])
            later = [await breaker.call(A, [500]), await breaker.call(A, [500]), await breaker.call(A, [200])]
        expect(_went_out(trial) and trial[1] == answer and all(_went_out(r) for r in later),
               did=f"{did}; then 3 failures (circuit open), waited 30.5 s (reset_timeout_s=30), a trial answered "
                   f"{answer}, then 500, 500 and one more",
               expected=f"the trial's {answer} to close the circuit: the next three calls go out",
               saw=f"trial: {_shown(trial)}; then {[_shown(r) for r in later]}")


@check(step=4, criterion="traces-span-services", todo="TODO 6", rules=("4.25", "4.26", "4.27", "4.28"))
async def test_refusal_is_an_error_span_without_a_status_code():
    """A refused call raises CircuitOpenError, sends nothing, and leaves one ERROR span with no status code"""
    breaker = _Breaker(threshold=2, retries=1)
    did = "opened a host's circuit (failure_threshold=2: two calls answered 503 on both attempts), then sent a " \
          "GET and a POST to it"
    async with breaker.client:
        await breaker.call(A, [503])
        await breaker.call(A, [503])
        opened = breaker.spans()
        refusals = [await breaker.call(A, [200]), await breaker.call(A, [200], "POST", json={"n": 1})]
    every = breaker.spans()
    expect(all(_refused(r) for r in refusals), did=did,
           expected="both calls to raise CircuitOpenError at once, sending nothing",
           saw=f"{[_shown(r) for r in refusals]}", spans=every)
    new = [s for s in every if s not in opened]
    marked = [s for s in new if (s.attributes or {}).get("error.type") == "CircuitOpenError"]
    expect(len(marked) == 2, did=did,
           expected="one span per refusal with error.type='CircuitOpenError' (2 in all)",
           saw=f"{len(marked)} such span(s) among the {len(new)} new span(s): {[describe(s) for s in new]}",
           spans=every)
    wrong = [describe(s) for s in marked if not is_error(s) or s.kind not in (SpanKind.CLIENT, SpanKind.INTERNAL)
             or "http.response.status_code" in (s.attributes or {})]
    expect(not wrong, did=did,
           expected="each refusal span with status ERROR, of kind CLIENT or INTERNAL, and no "
                    "http.response.status_code (nothing was sent, nothing answered)",
           saw=f"{wrong}: {[dict(s.attributes or {}) for s in marked]}", spans=every)


@check(step=4, criterion="traces-span-services", todo="TODO 6", rules=("4.29", "4.30"))
async def test_half_open_trial_is_one_attempt_and_decides():
    """After reset_timeout_s one trial call goes out as a single attempt: success closes, failure reopens"""
    breaker = _Breaker(threshold=2, reset=30.0, retries=3)
    did = "set failure_threshold=2, reset_timeout_s=30 and max_retries=3, and opened a host's circuit (two GETs " \
          "answered 503 four times each)"
    async with breaker.client:
        await breaker.call(A, [503])
        await breaker.call(A, [503])
        breaker.clock.advance(29.5)
        early = await breaker.call(A, [200])
        expect(_refused(early), did=did + ", waited 29.5 s, then called",
               expected="still refused: reset_timeout_s has not passed", saw=_shown(early))
        breaker.clock.advance(1.0)
        trial = await breaker.call(A, [503, 200])
        expect(trial[0] in ("answer", "raised") and trial[2] == 1 and (trial[0] == "raised" or trial[1] == 503),
               did=did + ", waited 30.5 s, then made a GET that got 503 (and would have got 200 on a retry)",
               expected="the trial call: a single attempt, not retried, ending with the 503 (returned or raised)",
               saw=_shown(trial))
        reopened = await breaker.call(A, [200])
        breaker.clock.advance(29.5)
        still = await breaker.call(A, [200])
        expect(_refused(reopened) and _refused(still), did=did + "; the trial failed; then called at once, and "
               "again 29.5 s later",
               expected="both refused: the failed trial opened the circuit again for another 30 s",
               saw=f"{_shown(reopened)}; {_shown(still)}")
        breaker.clock.advance(1.0)
        second = await breaker.call(A, [200])
        after = await breaker.call(A, [503, 503, 200])
    expect(second[:2] == ("answer", 200) and after[:2] == ("answer", 200) and after[2] == 3,
           did=did + "; a trial failed; 30.5 s later a trial answered 200; then a GET got 503, 503, 200",
           expected="the successful trial closes the circuit: the next GET goes out and is retried as usual "
                    "(3 requests, 200)",
           saw=f"trial: {_shown(second)}; next: {_shown(after)}")


# -- generated sequences against an oracle -----------------------------------------------------

OUTCOMES = (200, 404, 500, 503, httpx.ConnectError)


@dataclass
class Scenario:
    threshold: int
    retries: int
    steps: list = field(default_factory=list)  # ("call", outcomes) or ("wait", seconds)


@st.composite
def scenarios(draw):
    threshold = draw(st.integers(1, 3))
    retries = draw(st.integers(0, 2))
    step = st.one_of(
        st.tuples(st.just("call"), st.tuples(*[st.sampled_from(OUTCOMES)] * (retries + 1))),
        st.tuples(st.just("wait"), st.sampled_from((1.0, 4.0, 9.0, 12.0, 25.0))))
    return Scenario(threshold, retries, draw(st.lists(step, min_size=1, max_size=12)))


RESET = 10.0


async def _play(scenario: Scenario, telemetry) -> tuple[list[str], str | None]:
    """Play one scenario on the learner's client as the oracle's story says: (the story, the first mismatch)."""
    expected = oracle_circuit_story(scenario.threshold, RESET, scenario.retries, scenario.steps)
    breaker = _Breaker(threshold=scenario.threshold, reset=RESET, retries=scenario.retries, telemetry=telemetry)
    story: list[str] = []
    async with breaker.client:
        for step in expected:
            if step[0] == "wait":   # a wait of the scenario, or one the oracle adds off the reset timeout
                breaker.clock.advance(step[1])
                story.append(f"wait {step[1]:g} s")
                continue
            _, value, want = step
            got = await breaker.call(A, list(value))
            line = f"GET, the host would give {', '.join(outcome_name(o) for o in value)}"
            story.append(f"{line}: expected {_shown(want)}")
            raised_ok = got[0] == "raised" and got[2] == want[2] and (
                want[0] == "raised" or (want[0] == "answer" and (want[1] == 429 or want[1] >= 500)))
            if got != want and not raised_ok:  # any error will do; a last 429 or 5xx may be raised too
                return story, f"{line}: expected {_shown(want)}, your client: {_shown(got)}"
    return story, None


class _Mismatch(Exception):
    pass


@check(step=4, criterion="traces-span-services", todo="TODO 6",
       rules=("4.16", "4.20", "4.22", "4.23", "4.24", "4.28", "4.29", "4.30"))
def test_circuit_breaker_matches_its_oracle_on_generated_sequences():
    """Generated sequences of calls and clock steps: every call is let through, retried or refused as the rules say"""
    telemetry, _ = make_telemetry("breaker-service")
    found: dict[str, object] = {}

    @generated(scenarios(), max_examples=50, phases=(Phase.generate, Phase.shrink))
    def play(scenario):
        story, mismatch = loop.run_until_complete(_play(scenario, telemetry))
        if mismatch:
            found.update(scenario=scenario, story=story, mismatch=mismatch)
            raise _Mismatch(mismatch)

    loop = asyncio.new_event_loop()
    try:
        play()
    except _Mismatch:
        pass
    finally:
        loop.close()
    if found:
        scenario = found["scenario"]
        steps = "\n".join(f"  {n}. {line}" for n, line in enumerate(found["story"], start=1))
        fail(did=(f"played generated calls on one host (GET; failure_threshold={scenario.threshold}, "
                  f"max_retries={scenario.retries}, reset_timeout_s={RESET:g}); the smallest sequence that "
                  f"goes wrong, with what the rules' oracle expects at each call:\n{steps}"),
             expected="each call let through, retried or refused as the oracle says "
                      "(rules 4.16, 4.20 to 4.24, 4.28 to 4.30)",
             saw=str(found["mismatch"]))
