"""Extension E2, feature flags and A/B tests in baggage (optional, no points):
`assign_variant` and `compare_variants` in services/shared/experiments.py, and an order through
the five services with an experiment named in the gateway's settings.

`assign_variant` is asked for the same users here and in two fresh Python processes with
different hash seeds (rule E2.1 says "in every process"), and for 10,000 users (rule E2.2).
`compare_variants` gets hand-made spans with known answers, then generated ones against the small
oracle of checks/oracles/e2.py. One check sends orders through the services (rules E2.3 and E2.4).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

from kit.harness.generated import generated
from checks.ext_helpers import call, same, shown, span
from checks.helpers import learner_function
from checks.oracles.e2 import oracle_variants
from kit.harness.expect import check, expect, fail
from kit.harness.learner import load
from kit.harness.spans import describe, find, service_of
from kit.harness.strategies import st

EXPERIMENTS = "services.shared.experiments"
FIGURE_KEYS = {"orders", "errors", "error_rate", "p50_ms", "p95_ms"}
GATEWAY, ORDERS = "api-gateway", "POST /api/orders"
EXPERIMENT = "checkout-v2"
KEY = f"experiment.{EXPERIMENT}"


def assign(user_id, experiment, variants=None):
    if variants is None:
        return call(EXPERIMENTS, "assign_variant", user_id, experiment)
    return call(EXPERIMENTS, "assign_variant", user_id, experiment, variants)


def compare(spans, experiment):
    result = call(EXPERIMENTS, "compare_variants", spans, experiment)
    if not isinstance(result, dict) or not all(isinstance(v, dict) and FIGURE_KEYS <= set(v) for v in result.values()):
        fail(did="called compare_variants(...) on " + shown(spans),
             expected=f"a dict {{variant: {{{', '.join(sorted(FIGURE_KEYS))}}}}}", saw=f"{result!r:.400}")
    return {variant: {k: v for k, v in figures.items() if k in FIGURE_KEYS} for variant, figures in result.items()}


# -- assign_variant ------------------------------------------------------------------------------

USERS = [f"user-{i}" for i in range(200)] + ["", "ü-ser", "user-123", "user-456"]

_IN_ANOTHER_PROCESS = """
import json, sys
sys.path.insert(0, sys.argv[1])
from services.shared.experiments import assign_variant
users = json.loads(sys.stdin.read())
print(json.dumps([[assign_variant(u, e) for u in users] for e in ("checkout-v2", "new-search")]))
"""


def _in_fresh_processes():
    """What assign_variant answers for USERS in a fresh process with another hash seed than this
    one's (or the error)."""
    seeds = ("2",) if os.environ.get("PYTHONHASHSEED") == "1" else ("1",)
    root = Path(load(EXPERIMENTS).__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    runs = [subprocess.Popen([sys.executable, "-c", _IN_ANOTHER_PROCESS, str(root)], env={**env, "PYTHONHASHSEED": seed},
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for seed in seeds]
    answers = []
    for seed, run in zip(seeds, runs):
        try:
            out, err = run.communicate(json.dumps(USERS), timeout=8)
        except subprocess.TimeoutExpired:
            run.kill()
            run.communicate()
            fail(did=f"called assign_variant in a fresh Python process (PYTHONHASHSEED={seed})",
                 expected="answers within seconds", saw="it did not finish in 8 s")
        if run.returncode != 0:
            fail(did=f"called assign_variant in a fresh Python process (PYTHONHASHSEED={seed})",
                 expected="the variants", saw=(err.strip().splitlines() or ["it failed"])[-1])
        answers.append((seed, json.loads(out)))
    return answers


@check(extension="E2", todo="TODO 1", rules=("E2.1",))
def test_e2_assign_variant_is_the_same_in_every_process():
    """assign_variant: the same user and experiment get the same variant, here and in fresh processes"""
    here = [[assign(u, e) for u in USERS] for e in ("checkout-v2", "new-search")]
    again = [[assign(u, e) for u in USERS] for e in ("checkout-v2", "new-search")]
    expect(here == again, did=f"asked assign_variant twice for the same {len(USERS)} users and two experiments",
           expected="the same answers both times", saw="different answers (is it random?)")
    odd = sorted({repr(v) for row in here for v in row} - {"'control'", "'treatment'"})
    expect(not odd, did="asked assign_variant for users with the default variants",
           expected="'control' or 'treatment' every time", saw=f"also {', '.join(odd)}")
    for seed, there in _in_fresh_processes():
        differ = [u for u, a, b in zip(USERS, here[0], there[0]) if a != b]
        expect(here == there, did=f"asked assign_variant for the same users in a fresh Python process with "
               f"PYTHONHASHSEED={seed}", expected="the same variant for every user as in this process",
               saw=f"{len(differ) or 'some'} users got another variant there, e.g. {differ[:3]} (Python's hash() of a "
                   "string changes from process to process: use hashlib)")


@check(extension="E2", todo="TODO 1", rules=("E2.2",))
def test_e2_assign_variant_spreads_users_evenly():
    """assign_variant: over 10,000 users each variant gets its share within 5 percentage points"""
    users = [f"user-{i}" for i in range(10_000)]
    assign_variant = learner_function(EXPERIMENTS, "assign_variant")   # 30,000 calls: looked up once
    for experiment, variants in (("checkout-v2", None), ("new-search", ("a", "b", "c")),
                                 ("pricing", ("off", "on"))):
        names = variants or ("control", "treatment")
        extra = () if variants is None else (variants,)
        counts = Counter(assign_variant(u, experiment, *extra) for u in users)
        share = 100 / len(names)
        spread = {v: round(100 * counts.get(v, 0) / len(users), 1) for v in names}
        others = {repr(v): n for v, n in counts.items() if v not in names}
        expect(not others and all(abs(p - share) <= 5 for p in spread.values()),
               did=f"assigned user-0 .. user-9999 to experiment {experiment!r} with variants {list(names)}",
               expected=f"each variant {share:.1f}% +- 5 points of the users", saw=f"{spread} (in %)"
               + (f", and other values: {others}" if others else ""))


# -- the order through the services (rules E2.3, E2.4) -------------------------------------------

def _under(spans, root) -> set[int]:
    """Ids of `root` and the spans below it."""
    ids, grew = {root.context.span_id}, True
    while grew:
        grew = False
        for s in spans:
            if s.parent is not None and s.parent.span_id in ids and s.context.span_id not in ids:
                ids.add(s.context.span_id)
                grew = True
    return ids


def _baggage(header: str) -> dict[str, str]:
    items = {}
    for part in (header or "").split(","):
        key, _, value = part.split(";")[0].partition("=")
        if key.strip():
            items[unquote(key.strip())] = unquote(value.strip())
    return items


@check(extension="E2", todo="TODO 1", rules=("E2.3", "E2.4"))
async def test_e2_an_experiment_tags_every_span_of_the_order(make_mesh):
    """With WORKSHOP_EXPERIMENT set, the variant is in the baggage and on every span of the order"""
    wanted = {token: assign(user, EXPERIMENT) for token, user in (("token-alice", "user-123"), ("token-bob", "user-456"))}
    mesh = await make_mesh(settings={"experiment": EXPERIMENT})
    for token in ("token-alice", "token-bob"):
        mesh.exporter.clear()
        crossings = len(mesh.transport.crossings)
        response = await mesh.order(token=token)
        spans = mesh.spans()
        did = f"sent an order as {token} through the services with the gateway's experiment set to {EXPERIMENT!r}"
        expect(response.status_code == 200, did=did, expected="the order to succeed (200)",
               saw=f"{response.status_code} {response.text[:200]}", spans=spans)
        to_order = [c for c in mesh.transport.crossings[crossings:] if c.host == "order-service"]
        carried = [_baggage(c.headers.get("baggage", "")).get(KEY) for c in to_order]
        expect(to_order and all(v == wanted[token] for v in carried), did=did,
               expected=f"the gateway's call to order-service to carry baggage {KEY}={wanted[token]} "
                        f"(assign_variant of the user)", saw=f"baggage values {carried}", spans=spans)
        auth = [s for s in spans if service_of(s) == "auth-service"]
        # The spans of authentication come before the user is known: they are the only exceptions.
        exempt = set()
        for client in find(spans, service=GATEWAY):
            below = _under(spans, client)
            if client.parent is not None and any(a.context.span_id in below for a in auth):
                exempt |= below
        missing = [describe(s) for s in spans if s.context.span_id not in exempt
                   and (s.attributes or {}).get(KEY) != wanted[token]]
        expect(not missing, did=did, expected=f"every span of the order after authentication, in every service, "
               f"and the gateway's server span to carry {KEY}={wanted[token]}",
               saw=f"{len(missing)} spans without it, e.g. {missing[:4]}", spans=spans)


# -- compare_variants ----------------------------------------------------------------------------

def order(duration=10.0, status="UNSET", variant="control", experiment=EXPERIMENT, **kw):
    attributes = {} if variant is None else {f"experiment.{experiment}": variant}
    return span(kw.pop("name", ORDERS), service=kw.pop("service", GATEWAY), duration=duration, status=status,
                attributes=attributes, **kw)


@check(extension="E2", todo="TODO 2", rules=("E2.5",))
def test_e2_compare_variants_reads_the_gateways_order_requests():
    """compare_variants: only the gateway's SERVER spans of POST /api/orders that carry the experiment"""
    spans = [order(20, variant="control"), order(30, "ERROR", variant="treatment"),
             order(900, variant=None), order(900, "ERROR", variant="control", experiment="new-search"),
             order(900, "ERROR", kind="CLIENT"), order(900, "ERROR", kind="INTERNAL"),
             order(900, "ERROR", service="order-service"), order(900, "ERROR", name="POST /orders"),
             order(900, "ERROR", name="GET /health", variant="treatment")]
    got = compare(spans, EXPERIMENT)
    want = oracle_variants(spans, EXPERIMENT)
    expect(same(got, want), did=f"compared the variants of {EXPERIMENT!r} over " + shown(spans),
           expected=f"{want} (one order per variant: the others are not the gateway's order requests, or carry "
                    "no variant of this experiment)", saw=got)
    expect(compare([], EXPERIMENT) == {}, did="compared the variants over no spans", expected="{}",
           saw=compare([], EXPERIMENT))


@check(extension="E2", todo="TODO 2", rules=("E2.6", "0.12"))
def test_e2_compare_variants_figures_per_variant():
    """compare_variants: orders, errors, error rate, p50 and p95 (nearest rank) per variant"""
    spans = ([order(float(d), "ERROR" if d % 7 == 0 else "OK", variant="control") for d in range(20, 0, -1)]
             + [order(42.0, variant="treatment")]
             + [order(5.0, "ERROR", variant="beta"), order(15.0, variant="beta")])
    got = compare(spans, EXPERIMENT)
    want = oracle_variants(spans, EXPERIMENT)
    expect(same(got, want), did="compared 20 control orders of 1..20 ms (those of 7 and 14 ms failed), one treatment "
           "order of 42 ms and two beta orders (5 ms failed, 15 ms)",
           expected=f"{want} (nearest rank: p95 of 20 values is the 19th)", saw=got)


@st.composite
def order_spans(draw):
    return [order(float(draw(st.integers(0, 30))), draw(st.sampled_from(("UNSET", "OK", "ERROR"))),
                  variant=draw(st.sampled_from((None, "control", "treatment", "beta"))),
                  experiment=draw(st.sampled_from((EXPERIMENT, EXPERIMENT, "other"))),
                  kind=draw(st.sampled_from(("SERVER", "SERVER", "CLIENT"))),
                  service=draw(st.sampled_from((GATEWAY, GATEWAY, "order-service"))), span_id=i + 1)
            for i in range(draw(st.integers(0, 12)))]


@check(extension="E2", todo="TODO 2", rules=("E2.5", "E2.6", "0.12"))
def test_e2_compare_variants_matches_an_oracle_on_generated_spans():
    """compare_variants agrees with a plain oracle on generated spans"""
    compare([order()], EXPERIMENT)   # a stub fails here, at once

    @generated(order_spans())
    def agree(spans):
        got = compare(spans, EXPERIMENT)
        want = oracle_variants(spans, EXPERIMENT)
        expect(same(got, want), did=f"compared the variants of {EXPERIMENT!r} over " + shown(spans),
               expected=f"{want}", saw=got)

    agree()
