"""Graded exercises: predict a number from the physics, then let the lab's measurement grade it.

In a lab:

    my_prediction = None  # your turn: tok/s of Llama-3.1-8B bf16 on one H100, at batch 1
    ml.exercises.grade("01-h100", my_prediction, expected, rel=0.05, unit="tok/s",
                       hint="bandwidth / bytes per token",
                       solution=ml.memory_wall.solutions.h100_decode_bound, inputs=dict(config=..., device=...))

`grade` prints one line: not answered yet (with the hint), right (within `rel` of the value this
run measured or computed), or not quite (the value and the hint). A learner's wrong answer never
fails a cell: a miss is information, not an error.

Worked solutions are functions of the lab's values, in the lab's package (`<topic>.solutions`;
lab 00's at the end of this module): formulas, never the measurement itself. `MEMLAB_SOLUTIONS=1`
fills every unanswered prediction with its worked solution, and then a miss *does* fail the cell,
so the labs under nbval with it prove each exercise can be solved from the physics it teaches;
`tests/core/test_exercises.py` feeds wrong answers and checks that each is marked a miss.
"""

from __future__ import annotations

import math
import os

from memlab.core.checks import ClaimFailed


def solutions_mode() -> bool:
    return os.environ.get("MEMLAB_SOLUTIONS", "0") == "1"


def is_right(prediction: float, expected: float, rel: float) -> bool:
    return math.isfinite(prediction) and abs(prediction - expected) <= rel * abs(expected)


def grade(exercise_id: str, prediction, expected: float, rel: float = 0.10, unit: str = "", hint: str = "",
          solution=None, inputs: dict | None = None) -> bool | None:
    """Grade `prediction` against `expected` (what this run measured or computed): True, False or
    None (not answered). Under MEMLAB_SOLUTIONS=1 an unanswered prediction becomes
    `solution(**inputs)`, and a miss of the worked solution raises ClaimFailed."""
    solved = False
    if prediction is None and solutions_mode() and solution is not None:
        prediction, solved = solution(**(inputs or {})), True
    u = f" {unit}" if unit else ""
    if prediction is None:
        print(f"[{exercise_id}] not answered yet: replace None with your prediction. Hint: {hint}")
        return None
    value, target = float(prediction), float(expected)
    right = is_right(value, target, rel)
    who = "the worked solution" if solved else "your prediction"
    if right:
        print(f"[{exercise_id}] right: {who} {value:.4g}{u}, this run {target:.4g}{u} (within {rel * 100:.3g}%)")
    else:
        print(f"[{exercise_id}] not quite: {who} {value:.4g}{u}, this run {target:.4g}{u} "
              f"(needs to be within {rel * 100:.3g}%). Hint: {hint}")
        if solved:
            raise ClaimFailed(f"exercise {exercise_id}: the worked solution {value:.4g}{u} misses this run's "
                              f"{target:.4g}{u} by more than {rel * 100:.3g}%: the exercise or its tolerance is wrong")
    return right


# --- worked solutions of lab 00 (the core's own lab) ---------------------------------------------

def weights_mib(num_params: int) -> float:
    """fp32: 4 bytes per parameter; 2**20 bytes per MiB."""
    return num_params * 4 / 2**20


def e2e_s(ttft_s: float, tpot_s: float, new_tokens: int) -> float:
    """The first token arrives at TTFT; each of the other new_tokens - 1 takes a TPOT."""
    return ttft_s + (new_tokens - 1) * tpot_s


def decode_gb_per_s(weights_bytes: int, tpot_s: float) -> float:
    """Each decode step reads every weight once: weights bytes / TPOT, in GB/s (1e9 bytes)."""
    return weights_bytes / tpot_s / 1e9
