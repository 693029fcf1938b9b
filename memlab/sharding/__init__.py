"""Lab 05, sharding: how a model is split across processes, and what talking costs.

workers          what every worker shares: config, records, timed communication, partial reads
pipeline         pipeline parallelism (layers split across ranks)
tensor_parallel  tensor parallelism (every matrix split across ranks)
parallel         checkpoint shards and the parallel runs (`memlab shard`)
comm_model       the alpha-beta model of communication, measured and predicted
plots            memory per rank, compute vs communication, the decode timeline, shard loading
"""

from memlab.sharding import comm_model, parallel, pipeline, plots, tensor_parallel, workers
