"""Lab 02, RAM vs disk: what it costs to keep weights on disk (cold, mmap, paged, resident).

runs   each residency strategy answering one question, cold or warm
plots  load time and decode speed per strategy
ladder the bandwidth ladder disk -> RAM -> VRAM (the RAM -> VRAM rung where a CUDA GPU is present)
solutions the worked solutions of the lab's exercises
The strategies themselves are `memlab.core.loading` (every lab loads through them).
"""

from memlab.ram_vs_disk import ladder, plots, runs, solutions
