"""Lab 02, RAM vs disk: what it costs to keep weights on disk (cold, mmap, paged, resident).

runs   each residency strategy answering one question, cold or warm
plots  load time and decode speed per strategy
ladder the bandwidth ladder disk -> RAM -> VRAM (the RAM -> VRAM rung where a CUDA GPU is present)
cgroup the same runs in a memory cgroup below the model's size (Linux, root): bigger than RAM for real
solutions the worked solutions of the lab's exercises
The strategies themselves are `memlab.core.loading` (every lab loads through them).
"""

from memlab.core.lazy import submodules

# each module imports when first read, so importing this topic (or its cli) stays light: core/lazy.py
__getattr__, __dir__ = submodules(__name__, ("cgroup", "ladder", "plots", "runs", "solutions"))
