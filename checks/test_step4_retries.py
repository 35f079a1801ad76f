"""Step 4, retries (success criterion 1, traces span services): which calls the HTTP client
retries, how often, how long it waits, and which methods are safe to send twice. Each check
drives `TracedHttpClient` alone, on a scripted fake network (`ScriptedWire`) with recorded
sleeps, so every case is exact and takes a few milliseconds."""
from __future__ import annotations

import httpx

from kit.harness.expect import check, expect
from checks.helpers import RecordingSleep, ScriptedWire, make_telemetry, outcome_name, traced_client

URL = "http://stock-service:9000/items"
HOST = "stock-service:9000"
#: Rule 4.14 and 4.15: every httpx.TransportError is "a connection error or timeout".
TRANSPORT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, httpx.WriteTimeout,
                    httpx.PoolTimeout, httpx.ReadError, httpx.WriteError, httpx.CloseError,
                    httpx.RemoteProtocolError, httpx.LocalProtocolError, httpx.ProxyError,
                    httpx.UnsupportedProtocol)
RETRYABLE = (*TRANSPORT_ERRORS, 429, 502, 503, 504)
#: Answers, not outages: returned at once (rule 4.19), and 500/501 are not in rule 4.14's list.
NOT_RETRIED = (500, 501, 400, 401, 403, 404, 405, 409, 410, 422)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS", "PUT", "DELETE")
KEYED_METHODS = ("POST", "PATCH")


async def _call(client, method: str, url: str = URL, **kwargs):
    """What one call came to: ("answer", status) or ("raised", exception class name)."""
    try:
        response = await client.request(method, url, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the outcome is what the check compares
        return ("raised", type(exc).__name__)
    return ("answer", response.status_code)


def _final(outcome) -> tuple[str, object]:
    return ("raised", outcome.__name__) if isinstance(outcome, type) else ("answer", outcome)


def _same(result, want) -> bool:
    """An answer must be the same answer; for an error, any exception raised will do. A last 429
    or 5xx answer may also come back raised: the contract says only that other 4xx are returned."""
    return (result == want or result[0] == want[0] == "raised"
            or (result[0] == "raised" and want[0] == "answer" and (want[1] == 429 or want[1] >= 500)))


def _shown(result) -> str:
    kind, value = result
    return f"answer {value}" if kind == "answer" else f"{value} raised"


async def _run(outcomes, method="GET", *, max_retries=3, backoff_base_s=0.1, headers=None):
    """One call on a fresh client: (requests sent, what the call came to, sleeps)."""
    telemetry, _ = make_telemetry("retry-service")
    wire, sleep = ScriptedWire(outcomes), RecordingSleep()
    async with traced_client(telemetry, wire, sleep=sleep, max_retries=max_retries,
                             backoff_base_s=backoff_base_s, failure_threshold=1000) as client:
        result = await _call(client, method, headers=headers or {})
    return len(wire.requests), result, sleep.calls


@check(step=4, criterion="traces-span-services", todo="TODO 4", rules=("4.14", "4.15", "4.19", "4.16"))
async def test_retries_exactly_the_retryable_outcomes():
    """Connection errors, timeouts, 429, 502, 503 and 504 are retried; 500, 501 and other 4xx are not"""
    for outcome in RETRYABLE:
        name = outcome_name(outcome)
        sent, result, _ = await _run([outcome, outcome, 200], max_retries=2)
        expect(sent == 3 and result == ("answer", 200),
               did=f"made one GET (max_retries=2) to a host that gave {name}, {name}, then 200",
               expected=f"{name} retried: 3 requests, and the third one's 200 returned",
               saw=f"{sent} request(s), then {_shown(result)}")
        sent, result, _ = await _run([outcome], max_retries=1)
        expect(sent == 2 and _same(result, _final(outcome)),
               did=f"made one GET (max_retries=1) to a host that gives {name} every time",
               expected=f"2 requests (1 + 1 retry), then the last "
                        f"{f'{name} returned' if isinstance(outcome, int) else 'error raised'}",
               saw=f"{sent} request(s), then {_shown(result)}")
    for status in NOT_RETRIED:
        sent, result, _ = await _run([status, 200], max_retries=3)
        expect(sent == 1 and _same(result, ("answer", status)),
               did=f"made one GET (max_retries=3) to a host that answers {status}, then would answer 200",
               expected=f"the {status} returned at once: 1 request, no retry "
                        f"({'a 4xx is an answer' if status < 500 else f'{status} is not in 429, 502, 503, 504'})",
               saw=f"{sent} request(s), then {_shown(result)}")


@check(step=4, criterion="traces-span-services", todo="TODO 4", rules=("4.16",))
async def test_retries_stop_after_max_retries():
    """A call is retried at most max_retries times, and stops at the first good answer"""
    for retries in (0, 1, 2, 3, 5):
        sent, result, _ = await _run([503], max_retries=retries)
        expect(sent == retries + 1 and _same(result, ("answer", 503)),
               did=f"made one GET (max_retries={retries}) to a host that always answers 503",
               expected=f"{retries + 1} requests (1 + {retries} retries), then the last 503 returned",
               saw=f"{sent} request(s), then {_shown(result)}")
    for retries in (1, 2, 3):
        for good_at in range(1, retries + 3):
            script = [503] * (good_at - 1) + [200]
            sent, result, _ = await _run(script, max_retries=retries)
            want = min(good_at, retries + 1)
            want_result = ("answer", 200) if good_at <= retries + 1 else ("answer", 503)
            expect(sent == want and _same(result, want_result),
                   did=f"made one GET (max_retries={retries}) to a host that answers "
                       f"{', '.join(map(str, script))}",
                   expected=f"{want} request(s), then {_shown(want_result)}",
                   saw=f"{sent} request(s), then {_shown(result)}")


@check(step=4, criterion="traces-span-services", todo="TODO 4", rules=("4.17",))
async def test_backoff_doubles_from_backoff_base():
    """Before the n-th retry the client sleeps backoff_base_s * 2**(n-1), jitter at most as much again"""
    for base in (0.05, 0.1, 0.3, 2.0):
        for retries in (1, 3):
            _, _, slept = await _run([503], max_retries=retries, backoff_base_s=base)
            sleeps = [s for s in slept if s > 0]  # a sleep(0) to yield is no wait
            bounds = [(base * 2 ** (n - 1), 2 * base * 2 ** (n - 1)) for n in range(1, retries + 1)]
            inside = len(sleeps) == retries and all(
                low * (1 - 1e-9) <= s <= high * (1 + 1e-9) for s, (low, high) in zip(sleeps, bounds))
            expect(inside,
                   did=f"made one GET (max_retries={retries}, backoff_base_s={base}) to a host that always "
                       "answers 503, with sleep recorded",
                   expected=f"{retries} sleep(s), one before each retry, in the ranges "
                            f"{', '.join(f'[{lo:g}, {hi:g}]' for lo, hi in bounds)} s",
                   saw=f"sleeps {sleeps}")
    _, _, slept = await _run([200], max_retries=3)
    expect(not [s for s in slept if s > 0], did="made one GET answered 200 at once", expected="no wait at all",
           saw=f"sleeps {slept}")


@check(step=4, criterion="traces-span-services", todo="TODO 5", rules=("4.18",))
async def test_only_requests_safe_to_repeat_are_retried():
    """GET, HEAD, OPTIONS, PUT and DELETE are retried; POST and PATCH only with an Idempotency-Key"""
    for method in SAFE_METHODS:
        sent, _, _ = await _run([503], method, max_retries=2)
        expect(sent == 3, did=f"sent one {method} (max_retries=2) to a host that always answers 503",
               expected=f"3 requests: {method} is idempotent, so it is retried", saw=f"{sent} request(s)")
    for method in KEYED_METHODS:
        plain, _, _ = await _run([503], method, max_retries=2)
        keyed, _, _ = await _run([503], method, max_retries=2, headers={"Idempotency-Key": f"{method.lower()}-7"})
        expect(plain == 1 and keyed == 3,
               did=f"sent one {method} (max_retries=2) to a host that always answers 503, without and then "
                   "with an Idempotency-Key header",
               expected=f"1 request without the key (a repeated {method} could act twice), 3 with it",
               saw=f"{plain} request(s) without the key, {keyed} with it")
