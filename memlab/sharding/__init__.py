"""Lab 05, sharding: how a model is split across processes, and what talking costs.

workers          what every worker shares: config, records, timed communication, partial reads
reads            a checkpoint's tensors by name, or a block of one (a rank's rows or columns)
pipeline         pipeline parallelism (layers split across ranks)
tensor_parallel  tensor parallelism (every matrix split across ranks)
checkpoint_shards  a checkpoint cut into files, and what that saves (`memlab shard checkpoint`)
parallel         the pipeline and tensor parallel runs (`memlab shard pipeline|tensor`)
comm_model       the alpha-beta model of communication, measured and predicted
plots            memory per rank, compute vs communication, the decode timeline, shard loading
solutions        the worked solutions of the lab's exercises
"""

from memlab.core.lazy import submodules

# each module imports when first read, so importing this topic (or its cli) stays light: core/lazy.py
__getattr__, __dir__ = submodules(__name__, (
    "checkpoint_shards", "comm_model", "parallel", "pipeline", "plots", "reads", "solutions", "tensor_parallel", "workers"))
