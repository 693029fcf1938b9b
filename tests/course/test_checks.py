"""ml.checks: a claim that holds prints one line; one that does not fails with a readable message."""

import pytest

from memlab.course import checks


def test_a_holding_claim_prints_one_ok_line(capsys):
    checks.exact(4, 4, "two and two")
    checks.true(True, "it holds")
    checks.within(0.5, 0.0, 1.0, "a fraction")
    checks.close(101.0, 100.0, 0.02, "near a hundred")
    checks.greater([3.0, 3.5], [1.0, 2.9], "repeats apart")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and all(line.startswith("ok  ") for line in lines)


@pytest.mark.parametrize("call,words", [
    (lambda: checks.exact(538060032, 538060036, "bytes = formula", "the formula changed"),
     "claim failed: bytes = formula. Expected exactly 538060036, measured 538060032. the formula changed"),
    (lambda: checks.true(False, "tokens match", "the split changed the math"), "claim failed: tokens match"),
    (lambda: checks.within(float("nan"), 0.0, 1.0, "KL"), "Expected between 0 and 1, measured nan"),
    (lambda: checks.within(2.0, 0.0, 1.0, "KL"), "measured 2"),
    (lambda: checks.close(120.0, 100.0, 0.1, "near"), "Expected 100 within 10%"),
    (lambda: checks.greater([3.0, 1.5], [1.0, 2.0], "cold > warm"), "claim failed: cold > warm"),  # overlap fails
    (lambda: checks.greater(1.0, 1.0, "strictly"), "Expected the first above the second"),
])
def test_a_broken_claim_fails_the_cell_with_what_was_expected_and_measured(call, words):
    with pytest.raises(checks.ClaimFailed) as e:
        call()
    assert words in str(e.value)
    assert isinstance(e.value, AssertionError)  # nbval marks the cell failed
