"""Lab 03, TTFT: where the milliseconds before the first token go.

latency   cold start stage by stage, the waterfall, TTFT against prompt length and batch size
plots     the waterfall, TTFT against prompt length, latency against throughput
solutions the worked solutions of the lab's exercises (memlab.course.exercises grades them)
gpu       the GPU column: TTFT with the weights resident in VRAM beside the CPU's (absent without a GPU)
"""

from memlab.core.lazy import submodules

# each module imports when first read, so importing this topic (or its cli) stays light: core/lazy.py
__getattr__, __dir__ = submodules(__name__, ("gpu", "latency", "plots", "solutions"))
