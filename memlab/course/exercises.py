"""Graded exercises: predict a number from the physics, then let the lab's measurement grade it.

In a lab:

    my_prediction = None  # your turn: tok/s of Llama-3.1-8B bf16 on one H100, at batch 1
    ml.exercises.grade("01-h100", my_prediction, expected, rel=0.05, unit="tok/s",
                       hint="bandwidth / bytes per token",
                       solution=ml.memory_wall.solutions.h100_decode_bound, inputs=dict(config=..., device=...))

`grade` prints one line: not answered yet (with the hint), right (within `rel` of the value this
run measured or computed), or not quite (the value and the hint). A learner's wrong answer never
fails a cell: a miss is information, not an error.

An exercise that predicts a *measured time or speed* is graded by a `band` instead: the measurement
over the prediction must land in [lo, hi], a band set by what the model leaves out and by the spread
of a noisy machine (each lab says why its band is what it is). And it locks its instrument: the cell
that measures starts with `ml.exercises.lock(exercise_id, prediction, solution, inputs)`, which refuses
to measure (one line, `PredictionNeeded`) until a prediction is entered. `ml.exercises.reveal(id)`
is the learner's door to the worked solution: its source and its value on this run's numbers.

Worked solutions are functions of the lab's values, in the lab's package (`<topic>.solutions`,
lab 00's in `start_here.solutions`): formulas, never the measurement itself. `MEMLAB_SOLUTIONS=1`
fills every unanswered prediction with its worked solution, and then a miss *does* fail the cell,
so the labs under nbval with it prove each exercise can be solved from the physics it teaches;
`tests/course/test_exercises.py` feeds wrong answers and checks that each is marked a miss.
`MEMLAB_TIME_BANDS=report` turns a worked solution's miss of a *time band* into a printed line: the
browser test sets it (Chromium and JupyterLab share the cores with the lab's timings there; nbval
grades every band without it).
"""

from __future__ import annotations

import math
import os

from memlab.course.checks import ClaimFailed
from memlab.core.errors import MemlabError

_SOLUTIONS: dict = {}  # exercise id -> (solution, inputs), as the lab's lock or grade call registered them


class PredictionNeeded(MemlabError):
    """A measurement that an exercise predicts, run before the prediction was entered."""


def solutions_mode() -> bool:
    return os.environ.get("MEMLAB_SOLUTIONS", "0") == "1"


def is_right(prediction: float, expected: float, rel: float) -> bool:
    return math.isfinite(prediction) and abs(prediction - expected) <= rel * abs(expected)


def _register(exercise_id: str, solution, inputs: dict | None) -> None:
    if solution is not None:  # what `reveal` shows
        _SOLUTIONS[exercise_id] = (solution, dict(inputs or {}))


def lock(exercise_id: str, prediction, solution=None, inputs: dict | None = None) -> None:
    """Refuse to run the measurement `exercise_id` predicts until `prediction` is entered (not None),
    except under MEMLAB_SOLUTIONS=1. Registers the worked solution for `reveal`."""
    _register(exercise_id, solution, inputs)
    if prediction is None and not solutions_mode():
        raise PredictionNeeded(f"[{exercise_id}] predict first: enter your prediction in the exercise cell above "
                               f"and run it, then this cell measures. Stuck? ml.exercises.reveal({exercise_id!r}) "
                               "shows the worked solution.")


def reveal(exercise_id: str) -> float:
    """Print the worked solution of an exercise whose lock or grade cell has run (its source) and
    return its value on this run's inputs: the learner's door to the solutions."""
    import inspect
    if exercise_id not in _SOLUTIONS:
        raise MemlabError(f"no worked solution registered for {exercise_id!r}: run its measuring or grading cell first "
                          f"(registered: {', '.join(sorted(_SOLUTIONS)) or 'none'})")
    solution, inputs = _SOLUTIONS[exercise_id]
    value = solution(**inputs)
    print(inspect.getsource(solution))
    print(f"[{exercise_id}] the worked solution on this run's numbers: {value:.4g}")
    return value


def in_band(prediction: float, measured: float, band: tuple[float, float]) -> bool:
    """measured / prediction within [band[0], band[1]]."""
    return math.isfinite(prediction) and prediction > 0 and band[0] <= measured / prediction <= band[1]


def grade(exercise_id: str, prediction, expected: float, rel: float = 0.10, unit: str = "", hint: str = "",
          solution=None, inputs: dict | None = None, band: tuple[float, float] | None = None) -> bool | None:
    """Grade `prediction` against `expected` (what this run measured or computed): True, False or
    None (not answered). `band` (lo, hi): right when expected / prediction is within it (a measured
    time; `rel` is then unused). Under MEMLAB_SOLUTIONS=1 an unanswered prediction becomes
    `solution(**inputs)`, and a miss of the worked solution raises ClaimFailed."""
    solved = False
    _register(exercise_id, solution, inputs)
    if prediction is None and solutions_mode() and solution is not None:
        prediction, solved = solution(**(inputs or {})), True
    u = f" {unit}" if unit else ""
    if prediction is None:
        door = f" (worked solution: ml.exercises.reveal({exercise_id!r}))" if solution is not None else ""
        print(f"[{exercise_id}] not answered yet: replace None with your prediction. Hint: {hint}{door}")
        return None
    value, target = float(prediction), float(expected)
    right = in_band(value, target, band) if band else is_right(value, target, rel)
    need = (f"this run / prediction = {target / value if value else math.inf:.2f}, needs {band[0]:g} to {band[1]:g}"
            if band else f"within {rel * 100:.3g}%")
    who = "the worked solution" if solved else "your prediction"
    if right:
        print(f"[{exercise_id}] right: {who} {value:.4g}{u}, this run {target:.4g}{u} ({need})")
    else:
        print(f"[{exercise_id}] not quite: {who} {value:.4g}{u}, this run {target:.4g}{u} "
              f"({need}). Hint: {hint}")
        if solved and band and os.environ.get("MEMLAB_TIME_BANDS") == "report":
            print(f"[{exercise_id}] (a measured time outside its band, reported, not raised: MEMLAB_TIME_BANDS=report)")
        elif solved:
            raise ClaimFailed(f"exercise {exercise_id}: the worked solution {value:.4g}{u} misses this run's "
                              f"{target:.4g}{u} ({need}): the exercise or its tolerance is wrong")
    return right
