"""Lab 01, the memory wall: why decoding is bound by bandwidth, not FLOPs.

profiling where a decode step's time goes, eager vs the fast path (memlab.core.fastpath; sections 3-4)
report    predicted bounds beside measured speed (`memlab roofline`)
points    measured steps as points on the roofline, and its ridge point
history   the memory wall over the years: peak FLOP/s and bandwidth of reference devices, fitted
plots     the roofline, the cache staircase (core.hierarchy), decode against batch size, the memory wall over the years
specdec   speculative decoding with prompt-lookup drafts: same tokens as greedy, several per weight read
specreport what it costs and buys here: verify cost per k beside the roofline, predicted vs measured speed-up (`memlab specdec`)
solutions the worked solutions of the lab's exercises (memlab.course.exercises grades them)
"""

from memlab.core.lazy import submodules

# each module imports when first read, so importing this topic (or its cli) stays light: core/lazy.py
__getattr__, __dir__ = submodules(__name__, ("history", "plots", "points", "profiling", "report", "solutions", "specdec", "specreport"))
