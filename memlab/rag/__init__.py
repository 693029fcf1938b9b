"""Lab 06, RAG in memory: an in-RAM index versus an on-disk database, and TTFT.

chunks     the corpus (pydoc topics cut into chunks) and its cached embeddings
stores     the in-RAM index, the sqlite vector scan and BM25
retrieval  one timed retrieval, and RAG TTFT (embed + search + prefill)
plots      TTFT split, retrieval latency per store, TTFT against context
solutions  the worked solutions of the lab's exercises
"""

from memlab.core.lazy import submodules

# each module imports when first read, so importing this topic (or its cli) stays light: core/lazy.py
__getattr__, __dir__ = submodules(__name__, ("chunks", "plots", "retrieval", "solutions", "stores"))
