"""Extension E2 (optional, outside the 100 points): feature flags and A/B tests in baggage.

An A/B test shows some users one version of a feature ("control") and others another
("treatment"), then compares how each group fared. If every span of an order carries the
user's variant, the traces themselves say whether the treatment's orders are slower or fail
more often.

What to build (docs/learner-api.md, section E2, says exactly what each returns):

    assign_variant(user_id, experiment)   -> "control" | "treatment"  TODO 1 (rules E2.1-E2.2)
    compare_variants(spans, experiment)   -> {variant: figures}       TODO 2 (rules E2.5-E2.6)

Rules E2.3-E2.4 are provided: when the gateway's settings name an experiment
(`WORKSHOP_EXPERIMENT=checkout-v2`), the gateway calls `assign_variant(user_id, "checkout-v2")`
after authentication and puts `experiment.checkout-v2` = variant on its server span and into
the baggage (Step 2), so every later span of the order, in every service, carries it. Until
TODO 1 is done (it raises `NotImplementedError`), the gateway serves orders untagged.

The assignment must be deterministic in every process: Python's `hash()` of a string is salted
per process, so use `hashlib` instead. Percentiles are the nearest rank
(rule 0.12): `sorted(values)[math.ceil(N / 100 * n) - 1]`.
"""
from __future__ import annotations

from collections.abc import Sequence

from services.shared.span_store import SpanRecord

#: The gateway's order requests: the server span of `POST /api/orders` in the gateway.
ORDER_SERVICE, ORDER_OPERATION = "api-gateway", "POST /api/orders"


def assign_variant(user_id: str, experiment: str,
                   variants: Sequence[str] = ("control", "treatment")) -> str:
    """The variant of `experiment` that `user_id` sees: always the same one, in every process."""
    # TODO 1 (extension E2; rules E2.1-E2.2): hash f"{experiment}:{user_id}" with hashlib
    # (sha256, say), turn some of the digest's bytes into an int (int.from_bytes), and pick
    # variants[number % len(variants)]. Over 10,000 user ids each variant must get its share
    # within 5 percentage points.
    raise NotImplementedError("Extension E2, TODO 1: assign a variant with a stable hash")


def compare_variants(spans: list[SpanRecord], experiment: str) -> dict[str, dict]:
    """How the gateway's orders fared in each variant of `experiment`."""
    # TODO 2 (extension E2; rules E2.5-E2.6): keep the SERVER spans of ORDER_SERVICE named
    # ORDER_OPERATION whose attributes hold f"experiment.{experiment}"; group them by that value
    # (the variant). Per variant: {"orders", "errors" (status "ERROR"), "error_rate" (errors /
    # orders), "p50_ms", "p95_ms"} (nearest-rank percentiles of duration_ms). A variant with no
    # order does not appear.
    raise NotImplementedError("Extension E2, TODO 2: compare the variants' orders")
