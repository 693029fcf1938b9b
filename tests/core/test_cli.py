import json

import pytest

from memlab import cli


def test_parser_knows_the_public_commands():
    p = cli.build_parser()
    a = p.parse_args(["generate", "hi", "--dtype", "bf16", "--max-new-tokens", "5", "--json"])
    assert (a.prompt, a.dtype, a.max_new_tokens, a.json) == ("hi", "bf16", 5, True)
    with pytest.raises(SystemExit):
        p.parse_args(["generate", "hi", "--dtype", "fp8"])


def test_info_json(capsys):
    assert cli.main(["info", "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["num_threads"] >= 1 and "torch_version" in card


def test_generate_json_on_the_tiny_model(tiny_dir, capsys):
    assert cli.main(["generate", "hi", "--model", str(tiny_dir), "--max-new-tokens", "3", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["new_tokens"] <= 3 and rec["ttft_s"] > 0 and rec["hardware"]["host"]


def test_bad_model_is_one_readable_line(capsys):
    assert cli.main(["generate", "hi", "--model", "no-such-model"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("memlab: error: Unknown model") and "Traceback" not in err


def test_the_cli_lists_the_loading_strategies_without_importing_them():
    from memlab.core import cli as core_cli, loading
    assert core_cli.STRATEGIES == tuple(loading.STRATEGIES)
