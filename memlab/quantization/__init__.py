"""Lab 04, quantization: what fewer bits buy in bytes, speed and quality, and what fits where.

quantize        group-wise int8/int4 and the variants compared
quality         perplexity, agreement with fp32, a fixed answer
records         the run config and the record of one variant
quantcompare    every variant measured side by side (`memlab quant`)
fastcompare     every precision through the one fast decode path (`memlab quant --fast`)
gguf_reference  the bundled GGUF file run by llama.cpp (optional)
fits            what fits where: footprints against every device's memory (`memlab fits`)
shaped          a shape-true model built in int4 from the start (Llama-3.1-8B's size, random codes)
plots           the trade-off, the variants on a roofline, the fits heatmap
solutions       the worked solutions of the lab's exercises
"""

from memlab.core.lazy import submodules

# each module imports when first read, so importing this topic (or its cli) stays light: core/lazy.py
__getattr__, __dir__ = submodules(__name__, (
    "fastcompare", "fits", "gguf_reference", "plots", "quality", "quantcompare", "quantize", "records", "shaped", "solutions"))
