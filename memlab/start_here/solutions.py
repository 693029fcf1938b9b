"""Worked solutions of lab 00's exercises (graded by memlab.course.exercises), and the one rate it computes."""

from __future__ import annotations


def weights_mib(num_params: int) -> float:
    """fp32: 4 bytes per parameter; 2**20 bytes per MiB."""
    return num_params * 4 / 2**20


def e2e_s(ttft_s: float, tpot_s: float, new_tokens: int) -> float:
    """The first token arrives at TTFT; each of the other new_tokens - 1 takes a TPOT."""
    return ttft_s + (new_tokens - 1) * tpot_s


def decode_gb_per_s(weights_bytes: int, tpot_s: float) -> float:
    """Each decode step reads every weight once: weights bytes / TPOT, in GB/s (1e9 bytes)."""
    return weights_bytes / tpot_s / 1e9


# measured / predicted that 00-e2e and 00-long-tpot accept: one earlier run's TTFT and TPOT predict a
# later run, so the band is the run-to-run spread of a shared 2-core machine, not a slack for a missing
# term. Measured in quick mode: an AVX2 EPYC, five runs each, 1.00-1.12 (00-e2e) and 0.90-1.09
# (00-long-tpot); an AVX-512 Xeon, three runs, 0.78-0.99 and 0.85-1.22 (its TPOT moved between 44 and
# 59 ms within one process); CI, 0.75 for 00-long-tpot. A prediction that forgets the decode steps
# (24-31x) or scales TPOT with the prompt (0.05-0.20) still lands far outside it.
RUN_TO_RUN_BAND = (0.6, 1.6)


def long_prompt_tpot_s(tpot_s: float, weights_bytes: int, kv_bytes_per_token: int, short_tokens: int,
                       long_tokens: int) -> float:
    """A decode step reads every weight and the KV cache so far, whatever the prompt: the longer
    prompt's TPOT is the short one's, scaled by the bytes a step reads at each context length (the
    KV cache of a few hundred tokens is a few % of the weights here)."""
    return tpot_s * (weights_bytes + kv_bytes_per_token * long_tokens) / (weights_bytes + kv_bytes_per_token * short_tokens)
