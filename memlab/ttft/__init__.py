"""Lab 03, TTFT: where the milliseconds before the first token go.

latency   cold start stage by stage, the waterfall, TTFT against prompt length and batch size
plots     the waterfall, TTFT against prompt length, latency against throughput
solutions the worked solutions of the lab's exercises (memlab.core.exercises grades them)
"""

from memlab.ttft import latency, plots, solutions
