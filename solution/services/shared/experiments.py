"""Extension E2: feature flags and A/B tests, carried in baggage.

An A/B test shows some users one version of a feature ("control") and others another
("treatment"), then compares how each group fared. Tracing makes the comparison nearly free:
if every span of an order carries the user's variant, the traces themselves say whether the
treatment's orders are slower or fail more often, in every service, not only where the feature
lives.

    assign_variant(user_id, experiment)  -> "control" | "treatment"  same user, same variant
    compare_variants(spans, experiment)  -> {variant: figures}       orders, errors, p50, p95

How the variant reaches every span: when the gateway's settings name an experiment
(`WORKSHOP_EXPERIMENT=checkout-v2`), the gateway, once it knows the user, calls
`assign_variant(user_id, "checkout-v2")` and puts `experiment.checkout-v2` = variant into the
baggage (Step 2's `set_baggage_items`, attached as the current context). Baggage travels with
every call, and Step 1's span processor copies it onto every span each service starts. Keys
starting with `experiment.` are among those Step 2 lets through.

Assignment must be **deterministic**: the same user must see the same variant on every request
and in every process (five services, several replicas, restarts). Python's `hash()` of a
string is salted per process (`PYTHONHASHSEED`), so two processes disagree; a cryptographic
hash of the experiment and user id is the same everywhere, and its bits are spread evenly, so
users split evenly between the variants. Hashing the experiment's name too means that a user
in "treatment" for one experiment is not always in "treatment" for the next one.
"""
from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Sequence

from services.shared.span_store import SpanRecord

#: The gateway's order requests: the server span of `POST /api/orders` in the gateway.
ORDER_SERVICE, ORDER_OPERATION = "api-gateway", "POST /api/orders"


def assign_variant(user_id: str, experiment: str,
                   variants: Sequence[str] = ("control", "treatment")) -> str:
    """The variant of `experiment` that `user_id` sees: always the same one, in every process.

    The first 8 bytes of SHA-256("<experiment>:<user_id>") as a number, modulo the number of
    variants: every variant gets an equal share of users (the modulo's bias is below 1e-18).
    """
    if not variants:
        raise ValueError("an experiment needs at least one variant")
    digest = hashlib.sha256(f"{experiment}:{user_id}".encode()).digest()
    return variants[int.from_bytes(digest[:8], "big") % len(variants)]


def _percentile(sorted_values: Sequence[float], n: int) -> float:
    """The nearest-rank percentile pN of values already sorted (at least one)."""
    return sorted_values[math.ceil(n / 100 * len(sorted_values)) - 1]


def compare_variants(spans: list[SpanRecord], experiment: str) -> dict[str, dict]:
    """How the gateway's orders fared in each variant of `experiment`.

    `{variant: {"orders", "errors", "error_rate", "p50_ms", "p95_ms"}}` over the gateway's
    `POST /api/orders` server spans that carry the attribute `experiment.<experiment>`
    (errors: status ERROR; durations in ms, nearest-rank percentiles). Orders without the
    attribute (no experiment yet, or one not authenticated) are left out; a variant with no
    order does not appear.
    """
    key = f"experiment.{experiment}"
    durations: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    for span in spans:
        if (span.kind != "SERVER" or span.service != ORDER_SERVICE
                or span.name != ORDER_OPERATION or key not in span.attributes):
            continue
        variant = str(span.attributes[key])
        durations[variant].append(span.duration_ms)
        errors[variant] += span.status == "ERROR"
    result = {}
    for variant, values in sorted(durations.items()):
        values.sort()
        result[variant] = {"orders": len(values), "errors": errors[variant],
                           "error_rate": errors[variant] / len(values),
                           "p50_ms": _percentile(values, 50), "p95_ms": _percentile(values, 95)}
    return result
