"""Lab 07, disaggregation: prefill and decode on separate workers, the KV cache in flight.

kv_transfer  the KV cache in flight: pack, unpack, and three transports (gloo, shared memory, file)
disagg       the real two-process split, against one process doing both
serve        a whole trace served for real on two processes (the simulator's ground truth)
profiles     the simulator's inputs: service-time profiles (simple, measured, spec-derived), links
published    published fitted latency models (DistServe's A100 fits) as profiles, with their sources
workload     what is served (a seeded request list) and on what (a cluster of workers)
traces       Mooncake-format JSONL traces: parse, prefix-hit share, a seeded synthetic one
prefix_cache the simulator's LRU prefix cache of 512-token KV blocks
simulator    the request-level serving simulator (SimPy), chunked prefill included
simstats     what its records mean: latency distributions, SLOs, goodput search
slo          published SLO presets (DistServe, MLPerf Inference), each with its source
calibration  where the simulator's numbers come from: the machine measured by two real workers
validation   how wrong the simulator is: calibration bursts between chunks of a trace served for real
linkcheck    the simulator checked against a real link of known speed (core.shaped)
widgets      offline ipywidgets explorers
plots        the split, KV transports, sweeps, timeline, validation
solutions    the worked solutions of the lab's exercises
"""

from memlab.core.lazy import submodules

# each module imports when first read, so importing this topic (or its cli) stays light: core/lazy.py
__getattr__, __dir__ = submodules(__name__, (
    "calibration", "disagg", "kv_transfer", "linkcheck", "plots", "prefix_cache", "profiles", "published", "serve", "simstats",
    "simulator", "slo", "solutions", "traces", "validation", "widgets", "workload"))
