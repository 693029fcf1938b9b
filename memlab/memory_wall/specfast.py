"""Speculative decoding through memlab's fast path: a verify that reads each weight once (lab 01, section 7;
`memlab specdec --path fast`).

The eager verify runs transformers' forward, whose matmuls go to torch's kernels; on a CPU the code torch picks
for a few rows can stream the weights far slower than its one-row code, so a verify of k drafts costs more than
the one weight read the roofline counts. Here the same tokens go through `FastLlama` (the model's own weights,
regrouped; a static KV cache):

  a plain step     `FastLlama.step`: one token, in C where the C step runs (`core.cstep`), else torch's operators
  a verify         k + 1 tokens in one call: the C step over consecutive positions (`CStep(..., verify=True)`),
                   whose matmuls are gemv.c's blocked GEMM (each weight row read once for all k + 1 rows), or,
                   where the C step cannot run, `FastLlama.forward_tokens(every=True)` with each role's kernel
  parts            `verify_parts`: a verify's time predicted from its parts, each timed for 1 and k + 1 rows
  rejected drafts  the length goes back (`FastRunner.cut`); their K/V stay in the static cache until the next
                   forward overwrites those positions, and no forward attends past its own position
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from memlab.core import ckernels
from memlab.core.errors import InvalidArgumentError
from memlab.core.fastpath import FastLlama
from memlab.core.kernels import time_role
from memlab.core.measure import repeat, torch_threads


def engine(model, max_len: int) -> FastLlama:
    """A FastLlama over `model` for `max_len` positions: every matmul and the whole step in C where memlab's
    C kernels run (CPU, fp32 or bf16), so that a step and a verify are the same code; else each matmul's kernel
    chosen by measurement and the step through torch's operators."""
    if model.device.type == "cpu" and model.dtype in (torch.float32, torch.bfloat16) and not ckernels.reason():
        return FastLlama(model, max_len, kernels="c", step="c")
    return FastLlama(model, max_len)


class FastRunner:
    """Greedy decoding's forwards through a FastLlama (the runner `specdec.greedy_decode`, `speculative_decode`
    and `specreport.verify_costs` call): the cache's length is a position."""

    def __init__(self, fast: FastLlama):
        self.fast, self.device, self.config, self.pos = fast, fast.device, fast.model.config, 0

    def start(self, prompt_ids: list[int]) -> int:
        """The prompt into the cache from position 0; greedy's first token."""
        self._room(len(prompt_ids))
        logits = self.fast.prefill(torch.tensor([prompt_ids], device=self.device))  # (1, V)
        self.pos = len(prompt_ids)
        return int(logits.argmax(-1))

    def argmax(self, ids: list[int]) -> list[int]:
        """Feed `ids` at the cache's length in one forward; the model's argmax after each of them."""
        self._room(self.pos + len(ids))
        x = torch.tensor([ids], device=self.device)  # (1, T)
        if len(ids) == 1:
            logits = self.fast.step(x, self.pos)  # (1, V)
        else:
            with torch_threads(self.fast.threads):
                if self.fast.cstep is not None:
                    logits = self.fast.cstep(x, self.pos, verify=True)  # (T, V)
                else:
                    logits = self.fast.forward_tokens(x, self.pos, every=True)[0]  # (T, V)
        self.pos += len(ids)
        return logits.argmax(-1).tolist()

    def cut(self, n: int) -> None:
        """Forget the last n positions (rejected drafts): the next forward writes over them."""
        self.pos -= n

    def length(self) -> int:
        return self.pos

    def kernel(self, rows: int) -> str:
        """What runs a forward of `rows` tokens: "c-step/gemv" or "c-step/gemm" (the whole step in C, its
        matmuls one row or the blocked GEMM), else "torch/" and each role's kernel."""
        if self.fast.cstep is not None:
            return "c-step/gemv" if rows == 1 else "c-step/gemm"
        chosen = dict(self.fast.kernels.kernels) if self.fast.kernels else {}
        return "torch/" + (",".join(f"{r}:{k}" for r, k in chosen.items()) or "linear")

    def _room(self, end: int) -> None:
        if end > self.fast.max_len:
            raise InvalidArgumentError(f"{end} positions exceed the fast path's cache of {self.fast.max_len}")


@dataclass(frozen=True, slots=True)
class VerifyParts:
    """A C verify of `rows` tokens against a plain step, from its parts: every matmul of the step through
    memlab's kernel (`kernels.time_role`, one row and `rows` rows), and the rest of the step (norms, RoPE,
    attention: the C step with its matmuls left out, which grows with the rows)."""

    rows: int
    matmul_s: tuple             # (one row, `rows` rows): all the step's matrices, medians
    rest_s: tuple               # (one row, `rows` rows)
    weight_bytes: int           # what the matmuls read

    @property
    def predicted_ratio(self) -> float:
        """verify / step = (matmuls + rest at `rows` rows) / (matmuls + rest at one row)."""
        return (self.matmul_s[1] + self.rest_s[1]) / (self.matmul_s[0] + self.rest_s[0])


@torch.inference_mode()
def verify_parts(fast: FastLlama, rows: int, position: int, repeats: int = 5, threads: int = 1) -> VerifyParts:
    """Time a C verify's parts for 1 and `rows` rows at `position` (module docstring); the C step only."""
    if fast.cstep is None:
        raise InvalidArgumentError("verify_parts times the C step's parts: this FastLlama steps through torch")
    if position + rows > fast.max_len:
        raise InvalidArgumentError(f"{position + rows} positions exceed the fast path's cache of {fast.max_len}")
    roles = {r: [w[r].weight for w in fast.layers] for r in ("qkv", "o", "gate_up", "down")}
    roles["head"] = [fast.lm_head.weight]
    matmul = [sum(time_role(r, mats, "c", threads, repeats, rows=n).seconds for r, mats in roles.items())
              for n in (1, rows)]
    rest = [repeat(lambda n=n: fast.cstep(torch.ones(1, n, dtype=torch.long), position, threads, skip_matmuls=True,
                                          verify=True), repeats).median for n in (1, rows)]
    nbytes = sum(m.numel() * m.element_size() for mats in roles.values() for m in mats)
    return VerifyParts(rows, tuple(matmul), tuple(rest), nbytes)
