"""Lab 06, RAG in memory: an in-RAM index versus an on-disk database, and TTFT.

chunks     the corpus (pydoc topics cut into chunks) and its cached embeddings
stores     the in-RAM index, the sqlite vector scan and BM25
vecstores  the stores people use over the same chunks: FAISS flat, HNSW, mmap; sqlite-vec
indexes    FAISS flat and HNSW indexes: built once, cached, their bytes by formula, recall@k
synthetic  millions of clustered (or uniform) unit vectors written straight to disk, and queries
memory     what an index holds in memory: the allocator's count and the RSS it grew, in pages
sweep      every store from thousands to millions of vectors: latency, recall, bytes in RAM and on disk
retrieval  one timed retrieval, and RAG TTFT (embed + search + prefill)
plots      TTFT split, retrieval latency per store, TTFT against context
solutions  the worked solutions of the lab's exercises
"""

from memlab.core.lazy import submodules

# each module imports when first read, so importing this topic (or its cli) stays light: core/lazy.py
__getattr__, __dir__ = submodules(__name__, ("chunks", "indexes", "memory", "plots", "retrieval", "solutions", "stores",
                                                  "sweep", "synthetic", "vecstores"))
