"""Worked solutions of lab 01's exercises (graded by memlab.course.exercises): the physics, step by step."""

from __future__ import annotations

from memlab.core import footprint


def decode_intensity() -> float:
    """FLOPs per byte of one fp32 decode step at batch 1: each weight is read once (4 bytes) and
    used in one multiply-add (2 FLOPs), so 2 / 4 (attention and the KV cache barely move it)."""
    return 2 / 4


def decode_bound_tok_per_s(config, bandwidth_bytes_per_s: float) -> float:
    """A token must read every weight once: tok/s <= bandwidth / weight bytes (the KV cache of a
    short context is a rounding error beside 0.5 GB of weights)."""
    return bandwidth_bytes_per_s / footprint.weights_bytes(config, "fp32")


def h100_decode_bound(config, bandwidth_bytes_per_s: float) -> float:
    """The same bound for Llama-3-8B in bf16 (2 bytes per weight) at the H100's 3.35 TB/s. Its input
    embedding is not tied to lm_head and a token reads one row of it, so the bytes per token are the
    active parameters (every weight but that embedding) x 2 B: footprint's streamed-bytes convention."""
    _, active = footprint.param_counts(config)
    return bandwidth_bytes_per_s / (active * 2)


def batch_bound_tok_per_s(config, batch_size: int, bandwidth_bytes_per_s: float, peak_flop_per_s: float) -> float:
    """B sequences share each read of the weights: a step takes at least max(weight bytes / bandwidth,
    B x 2 FLOPs per weight / peak), so total tok/s <= min(B x bandwidth / weight bytes,
    peak / (2 x parameters)). The KV cache (a few % of the bytes here) is left out."""
    memory_bound = batch_size * bandwidth_bytes_per_s / footprint.weights_bytes(config, "fp32")
    compute_bound = peak_flop_per_s / (2 * footprint.num_params(config))
    return min(memory_bound, compute_bound)


# measured / predicted speed of the fast path that exercise 01-fast accepts. The parts were timed
# alone (each matmul role's kernel, the rest with its matmuls left out); in a step they share caches
# and threads and the loop adds an argmax per token, and the kernel times may be cached from another
# minute of a shared machine whose bandwidth drifts both ways. On an AVX2 EPYC (2 vCPUs): the step in C
# (`core.cstep`), four fresh kernel choices: 0.96-1.04; through torch's operators, six runs at 16 and 48 new
# tokens: 0.85-0.92, and a `make test` 0.69. The bound alone (weight bytes / the roof) as the prediction:
# 0.47-0.51 through torch; the C step decodes at 0.73-0.86 of the bound, so there the bound is a fair guess.
# On an AVX-512 Xeon with a 260 MiB L3, where the whole steps timed (`cstep.weigh`) chose the C step, two full
# runs: 1.14 and 1.51 (the C kernels timed role by role, each after a read of the rest of the step's bytes,
# took 30 ms; the whole C step 26: a step keeps some of a 538 MB model in a cache that large).
FAST_STEP_BAND = (0.6, 1.6)


# measured / predicted speed that exercise 01-wall accepts in full mode, the prediction being the DRAM bound
# (weight bytes / the roof) of shape:llama-3.2-1b through the fast path: no cache holds a share of its 4.9 GB.
# Upper end: the KV cache's few % and the roof's drift between minutes. Lower end: the aim (0.7 of
# the bound) less the drift. Quiet full-mode run (AMD EPYC, AVX2, 2 vCPUs, 32 MiB L3, the C step): 0.85
# (6.56 tok/s against a 7.69 tok/s bound). Set first under load (load average 13: 0.18-0.24, the neighbours).
WALL_BAND = (0.5, 1.1)


def fast_step_tok_per_s(choice) -> float:
    """A decode step is its matmuls plus the rest. Each matmul role takes its bytes over the rate of
    the kernel chosen for it (the table's ms of each chosen row, at the step's thread count); the
    rest (attention, norms, RoPE) was timed with the matmuls stubbed out. tok/s = 1 / (matmuls + rest)."""
    chosen = dict(choice.kernels)
    matmul_s = sum(t.seconds for t in choice.times if chosen.get(t.role) == t.kernel and t.threads == choice.step_threads)
    return 1 / (matmul_s + choice.rest_s)


# measured / predicted speed-up of speculative decoding that exercise 01-spec accepts: the aim
# (within 25 %). Quiet runs (AMD EPYC, AVX2, one torch thread): 0.98 quick, 0.96 full (k = 4, quote prompt);
# under load (load average 11-14) 0.81 and 0.94.
SPEC_BAND = (0.75, 1.25)


def speculative_speedup(acceptance: float, draft_lens, cost_ratio) -> float:
    """Each verify of d drafts yields 1 + a + ... + a^d = (1 - a^(d+1)) / (1 - a) tokens on average when each
    draft holds with probability a (Leviathan et al.; d + 1 when a = 1), and costs cost_ratio[d] plain steps.
    Greedy pays one step per token, so speed-up = mean tokens per verify / mean cost per verify."""
    tokens = [d + 1 if acceptance >= 1 else (1 - acceptance ** (d + 1)) / (1 - acceptance) for d in draft_lens]
    costs = [cost_ratio[d] for d in draft_lens]
    return (sum(tokens) / len(tokens)) / (sum(costs) / len(costs))
