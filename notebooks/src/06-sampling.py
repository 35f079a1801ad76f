# Source of notebooks/06-sampling.ipynb (build it with: python notebooks/build.py).

# %% [markdown]
# # Step 6
#
# Run the setup cell, then read the step: its goal, the file you edit with the `TODO`s left in
# it, the checks that grade it, and hints (folded).

# %%
# Setup: the kit's notebook helpers, and the tree to work on.
try:
    import kit
except ImportError:  # the kit is not installed: use the one next to this folder
    import sys
    sys.path.insert(0, "..")
from kit.notebook import *

use_tree()
show_step(6)

# %% [markdown]
# ## The idea: keep the traces that matter
#
# Recording every request of a busy system costs a lot and tells you little that a tenth of
# them would not. Sampling is decided in two places:
#
# - **Head sampling** decides when a trace starts, before anything is known about it: keep a
#   share (`ratio`) of the traces, decided from the trace id alone so that *every service
#   agrees* and a kept trace is kept whole. The decision travels downstream in the sampled
#   flag of `traceparent`. Health probes get their own, much smaller ratio; a cap limits new
#   traces per second; a caller can force it with `X-Trace-Sampling: always|never`.
# - **Tail sampling** decides after the fact: each service holds its part of a trace that the
#   head did not keep until it ends, and keeps it anyway if it **failed** or was **slow**.
#   That is how *100% of errors* are captured while most fast, successful traces are dropped.
#
# The sampled flag is the last field of `traceparent` ([W3C Trace
# Context](https://www.w3.org/TR/trace-context/#trace-flags)); read more in
# [OpenTelemetry sampling](https://opentelemetry.io/docs/concepts/sampling/). The core of this
# step is the head sampler's ratio (TODOs 1-4); health probes, the cap, the override and the
# tail processor are the deeper part (the tail processor's checks count for *Errors traced*).
#
# ## Try it: the ratio per environment

# %%
sampling = learner("services.shared.sampling")

ENVIRONMENTS = {"development": 1.0, "staging": 0.5, "production": 0.1, "Production": 0.1, "somewhere-else": 1.0}
compare([{"environment": name, "ratio": getattr(try_it(sampling.SamplingConfig.for_environment, name), "ratio", "-")}
         for name in ENVIRONMENTS],
        [{"environment": name, "ratio": ratio} for name, ratio in ENVIRONMENTS.items()],
        todo="Step 6, TODO 1", title="SamplingConfig.for_environment")

# %% [markdown]
# ## Try it: head sampling keeps a share, and keeps it whole
#
# Twenty orders with `ratio=0.25`. About a quarter of them should be exported (the trace ids
# are random, so anywhere from 1 to 10 is normal), and each one that is kept should be
# complete: spans from all five services, in one trace. (Step 1's TODO 2 hands your sampler
# to every service.)

# %%
runs = await run_orders(20, sampling=try_it(sampling.SamplingConfig, ratio=0.25))
kept = traces(runs)
whole = [spans for spans in kept.values() if len({s.resource.attributes.get("service.name") for s in spans}) == 5]
expectations([
    ("orders whose trace was exported, of 20", between(1, 10), len(kept),
     "Step 6, TODO 2 (the ratio)"),
    ("kept traces with spans from all five services", len(kept), len(whole), "Step 6, TODO 3 (parent-based)"),
], title="Head sampling at 25%")
show_table([{"trace": trace_id, "spans": len(spans),
             "services": len({s.resource.attributes.get("service.name") for s in spans})}
            for trace_id, spans in kept.items()], title="The kept traces")

# %% [markdown]
# ## Try it: the caller decides (deeper: TODO 7)
#
# With `ratio=0` nothing is head-sampled, unless the request says `X-Trace-Sampling: always`.

# %%
forced = await run_order(sampling=try_it(sampling.SamplingConfig, ratio=0.0), headers={"X-Trace-Sampling": "always"})
unforced = await run_order(sampling=try_it(sampling.SamplingConfig, ratio=0.0))
expectations([
    ("spans exported with X-Trace-Sampling: always (the whole order)", at_least(20), len(forced.spans),
     "Step 6, TODO 7 (the override)"),
    ("spans exported without it", 0, len(unforced.spans),
     "Step 6, TODO 2 and TODO 4 (RECORD_ONLY: recorded, but exported only if the tail keeps it)"),
], title="ratio=0")

# %% [markdown]
# ## Try it: errors are always kept (deeper: TODOs 8-11)
#
# Still `ratio=0`, but now the payment provider is down. The tail sampler in each service
# should keep the local traces that hold an error: the failed calls, the exception, and every
# ancestor up to the gateway, each marked `ERROR`. A fast successful order next to it exports
# nothing.

# %%
failing = await run_order("fails", sampling=try_it(sampling.SamplingConfig, ratio=0.0))
errors = [s for s in failing.spans if s.status.status_code.name == "ERROR"]
expectations([("answer", 502, failing.status_code, "the services"),
              ("ERROR spans exported", at_least(1), len(errors),
               "Step 6, TODOs 8, 9 and 10 (the tail processor)")],
             title="ratio=0, provider down")
show_trace(failing, title="ratio=0, provider down: what the tail kept")

# %% [markdown]
# And a slow order (slower than `slow_threshold_ms`) is kept too, even though it succeeded:

# %%
slow = await run_order("slow", delay_s=0.12, sampling=try_it(sampling.SamplingConfig, ratio=0.0, slow_threshold_ms=100))
expectations([("answer", 200, slow.status_code, "the services"),
              ("spans exported", at_least(1), len(slow.spans), "Step 6, TODO 9 (slow traces)")],
             title="ratio=0, a slow order")
show_trace(slow, title="ratio=0, a slow order: what the tail kept")

# %% [markdown]
# ## Grade Step 6

# %%
check(6)
