# Source of notebooks/10-e2-experiments.ipynb (build it with: python notebooks/build.py).

# %% [markdown]
# # Extension E2: feature flags and A/B tests in baggage
#
# Optional, outside the 100 points. An A/B test shows some users one version of a feature
# ("control") and others another ("treatment"), then compares how each group fared. If every
# span of an order carries the user's variant, the traces themselves say whether the treatment's
# orders are slower or fail more often, in every service. You edit
# `services/shared/experiments.py`, TODO 1 (`assign_variant`) and TODO 2 (`compare_variants`);
# `docs/learner-api.md`, section E2, says exactly what each does.

# %%
# Setup: the kit's notebook helpers, and the tree to work on.
try:
    import kit
except ImportError:  # the kit is not installed: use the one next to this folder
    import sys
    sys.path.insert(0, "..")
import contextlib
import io
import math
from collections import Counter

from kit.course import load_course
from kit.notebook import *

use_tree()
extension = load_course().extension("E2")
print(f"{extension.id}. {extension.title}: {extension.goal}\nYou edit: {', '.join(extension.files)}")

# %% [markdown]
# ## The idea: a stable assignment, carried in baggage
#
# The same user must see the same variant on every request and in every process: five
# services, several replicas, restarts (rule E2.1). Python's `hash()` of a string is salted per
# process, so two processes disagree; a cryptographic hash (`hashlib.sha256`) of the experiment
# and the user id is the same everywhere, and its bits are spread evenly, so users split evenly
# between the variants (rule E2.2). Hashing the experiment's name too means a user in
# "treatment" for one experiment is not always in "treatment" for the next.
#
# ## Try it: the same user, the same variant; 10,000 users, an even split

# %%
experiments = learner("services.shared.experiments")
assign_five = lambda: [experiments.assign_variant(f"user-{i}", "checkout-v2") for i in range(5)]
first = try_it(assign_five)
again = try_it(assign_five) if first is not None else None


def variants_only(answers):
    "each one 'control' or 'treatment'"
    return answers is not None and set(answers) <= {"control", "treatment"}


def a_fair_share(count):
    "4,500 to 5,500 of the 10,000 users"
    return 4500 <= (count or 0) <= 5500


def same_as_the_first_time(answers):
    "the same five variants as the first time"
    return first is not None and answers == first


expectations([("asked again", same_as_the_first_time, again, "Extension E2, TODO 1"),
              ("the variants", variants_only, first, "Extension E2, TODO 1")], title="assign_variant")
split = Counter(try_it(lambda: [experiments.assign_variant(f"user-{i}", "checkout-v2") for i in range(10_000)])
                if first is not None else ())
expectations([(variant, a_fair_share, split.get(variant), "Extension E2, TODO 1") for variant in ("control", "treatment")],
             title="10,000 users split between two variants")

# %% [markdown]
# ## Try it: orders with an experiment
#
# With `WORKSHOP_EXPERIMENT=checkout-v2` (here: `settings={"experiment": "checkout-v2"}`), the
# gateway (provided code) calls your `assign_variant(user_id, "checkout-v2")` once it knows the
# user, sets `experiment.checkout-v2` on its server span and puts it into the baggage; Step 2
# lets `experiment.*` keys through, and Step 1's span processor copies baggage onto every span
# (rules E2.3 and E2.4). Until TODO 1 is written, orders go through untagged.

# %%
async with open_mesh(settings={"experiment": "checkout-v2"}) as mesh:
    with contextlib.redirect_stdout(io.StringIO()):     # the services' log lines: not needed here
        for i in range(6):
            await mesh.order(token="token-alice" if i % 2 else "token-bob")
        mesh.provider_declines()
        await mesh.order(token="token-alice")
    spans = records(mesh.spans())
tagged = Counter((s.service, s.attributes.get("experiment.checkout-v2")) for s in spans)
show_table([{"service": service, "experiment.checkout-v2": variant, "spans": n}
            for (service, variant), n in sorted(tagged.items(), key=str)], title="Spans by service and variant")

# %% [markdown]
# ## Try it: compare the variants
#
# `compare_variants(spans, "checkout-v2")` reads only the gateway's `POST /api/orders` server
# spans that carry the experiment (rule E2.5) and gives, per variant, the orders, errors, error
# rate and nearest-rank p50/p95 of their durations (rule E2.6).

# %% [reference]
# The kit's reference answer for TODO 2 (not in the learner release).
def nearest_rank(values, n):
    ordered = sorted(values)
    return ordered[math.ceil(n / 100 * len(ordered)) - 1]


def expected_variants(spans, experiment):
    key, groups = f"experiment.{experiment}", {}
    for s in spans:
        if s.kind == "SERVER" and s.service == "api-gateway" and s.name == "POST /api/orders" and key in s.attributes:
            groups.setdefault(s.attributes[key], []).append(s)
    return {v: {"orders": len(g), "errors": sum(s.status == "ERROR" for s in g),
                "error_rate": sum(s.status == "ERROR" for s in g) / len(g),
                "p50_ms": nearest_rank([s.duration_ms for s in g], 50),
                "p95_ms": nearest_rank([s.duration_ms for s in g], 95)} for v, g in groups.items()}


# %%
# {variant: figures} as rows (anything else as it is: None when yours did not run)
as_rows = lambda result: ([{"variant": v, **figures} for v, figures in sorted(result.items())]
                          if isinstance(result, dict) else result)
yours = try_it(experiments.compare_variants, spans, "checkout-v2")
compare(as_rows(yours), as_rows(expected_variants(spans, "checkout-v2")),
        todo="Extension E2, TODO 2", title="compare_variants on these orders")

# %% [markdown]
# ## Grade extension E2

# %%
check("E2")
