"""Lab 08, memory processing: the paper's four steps profiled on the real model, and offload.

mempipe  the four memory-processing steps timed inside a real decode step
scoring  comp and ret alone at paper-like scale, each kernel from a cold cache
offload  a spec-sheet model of the steps on a GPU vs an FPGA
measured the offload search from step times measured on real devices (cpu, cuda), PCIe modelled
plots    step shares, the index kernels on a roofline, the offload model
solutions the worked solutions of the lab's exercises
"""

from memlab.core.lazy import submodules

# each module imports when first read, so importing this topic (or its cli) stays light: core/lazy.py
__getattr__, __dir__ = submodules(__name__, ("measured", "mempipe", "offload", "plots", "scoring", "solutions"))
