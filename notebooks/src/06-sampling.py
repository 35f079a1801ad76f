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
# ## Try it: the ratio per environment

# %%
from services.shared.sampling import SamplingConfig

show_table([{"environment": name, "ratio": getattr(try_it(SamplingConfig.for_environment, name), "ratio", "-")}
            for name in ("development", "staging", "production", "Production", "somewhere-else")],
           title="SamplingConfig.for_environment")

# %% [markdown]
# ## Try it: head sampling keeps a share, and keeps it whole
#
# Twenty orders with `ratio=0.25`. About a quarter of them should be exported, and each one
# that is kept should be complete: spans from all five services, in one trace.

# %%
runs = await run_orders(20, sampling=SamplingConfig(ratio=0.25))
kept = traces(runs)
print(f"{len(kept)} of {len(runs)} orders' traces were exported")
show_table([{"trace": trace_id, "spans": len(spans),
             "services": len({s.resource.attributes.get("service.name") for s in spans})}
            for trace_id, spans in kept.items()], title="The kept traces")

# %% [markdown]
# ## Try it: the caller decides
#
# With `ratio=0` nothing is head-sampled, unless the request says `X-Trace-Sampling: always`.

# %%
forced = await run_order(sampling=SamplingConfig(ratio=0.0), headers={"X-Trace-Sampling": "always"})
unforced = await run_order(sampling=SamplingConfig(ratio=0.0))
print("with X-Trace-Sampling: always ->", len(forced.spans), "spans exported")
print("without                       ->", len(unforced.spans), "spans exported")

# %% [markdown]
# ## Try it: errors are always kept
#
# Still `ratio=0`, but now the payment provider is down. The tail sampler in each service
# should keep the local traces that hold an error: the failed calls, the exception, and every
# ancestor up to the gateway, each marked `ERROR`. A fast successful order next to it exports
# nothing.

# %%
failing = await run_order("fails", sampling=SamplingConfig(ratio=0.0))
print("answer:", failing.status_code, "-", len(failing.spans), "spans exported")
show_trace(failing, title="ratio=0, provider down: what the tail kept")

# %% [markdown]
# And a slow order (slower than `slow_threshold_ms`) is kept too, even though it succeeded:

# %%
slow = await run_order("slow", delay_s=0.12, sampling=SamplingConfig(ratio=0.0, slow_threshold_ms=100))
print("answer:", slow.status_code, "-", len(slow.spans), "spans exported")
show_trace(slow, title="ratio=0, a slow order: what the tail kept")

# %% [markdown]
# ## Grade Step 6

# %%
check(6)
