"""`memlab ttft` refuses a prompt longer than the model's context, and says so in those terms."""

from memlab import cli
from memlab.core import limits


def test_ttft_beyond_the_context_names_the_context(tiny_dir, tiny, capsys):
    limit = limits.context_limit(tiny.config)
    assert cli.main(["ttft", "--model", str(tiny_dir), "--prompt-tokens", str(limit + 100)]) == 2
    err = capsys.readouterr().err
    assert f"{limit}-token context" in err and "footprint" not in err.lower(), err


def test_generate_beyond_the_context_is_one_line(tiny_dir, tiny, capsys):
    limit = limits.context_limit(tiny.config)
    assert cli.main(["generate", "hi", "--model", str(tiny_dir), "--max-new-tokens", str(limit + 1)]) == 2
    assert "context" in capsys.readouterr().err
