"""Lab 01, the memory wall: why decoding is bound by bandwidth, not FLOPs.

hierarchy the cache staircase: read bandwidth against working-set size (section 1)
profiling where a decode step's time goes, eager vs the fast path (memlab.core.fastpath; sections 3-4)
report    predicted bounds beside measured speed (`memlab roofline`)
plots     the roofline, decode against batch size, the memory wall over the years
solutions the worked solutions of the lab's exercises (memlab.core.exercises grades them)
"""

from memlab.memory_wall import hierarchy, plots, profiling, report, solutions
