"""Step 4's oracle, the circuit breaker, for the generated scenarios of checks/test_step4_circuit.py:
rules 4.16 and 4.20 to 4.30 for one host, on GET calls, as plainly as they can be said.

A breaker has state; the oracle does not: it plays a whole scenario up front and returns its
expected story, so that its answer is a function of the scenario alone."""
from __future__ import annotations

from kit.harness.answers import oracle

_RETRYABLE_STATUS = (429, 502, 503, 504)


@oracle
def oracle_circuit_story(threshold: int, reset: float, retries: int, steps) -> list:
    """The story of `steps` (("call", outcomes the host would give, one per attempt) or ("wait",
    seconds)) on a client with failure_threshold `threshold`, reset_timeout_s `reset` and
    max_retries `retries`: ("wait", seconds) for each wait, and a 1 s wait before a call that would
    fall within 0.5 s of the reset timeout (never call exactly on it); ("call", outcomes, (what came
    back: "answer"/"raised"/"refused", the status or exception name, requests sent)) for each call."""
    now, failures, opened_at = 0.0, 0, None
    story: list = []
    for kind, value in steps:
        if kind == "wait":
            now += value
            story.append(("wait", value))
            continue
        if opened_at is not None and abs(now - opened_at - reset) < 0.5:
            now += 1.0
            story.append(("wait", 1.0))
        trial = False
        if opened_at is not None:
            if now - opened_at < reset:
                story.append(("call", value, ("refused", "CircuitOpenError", 0)))
                continue
            trial = True
        attempts = 1 if trial else 1 + retries
        for sent in range(1, attempts + 1):
            outcome = value[sent - 1]
            retryable = not isinstance(outcome, int) or outcome in _RETRYABLE_STATUS
            if not retryable or sent == attempts:
                break
        failed = not isinstance(outcome, int) or outcome >= 500
        if failed:
            failures += 1
            if trial or failures >= threshold:
                opened_at = now
        else:
            failures, opened_at = 0, None
        if isinstance(outcome, int):
            story.append(("call", value, ("answer", outcome, sent)))
        else:                                                         # an exception class: its name
            story.append(("call", value, ("raised", getattr(outcome, "__name__", str(outcome)), sent)))
    return story
