"""The one prompt source: exact lengths, the same ids every call, repetition past the corpus."""

import pytest

from memlab.core import text
from memlab.core.errors import MemlabError


def test_exact_length_and_deterministic(tiny):
    for n in (1, 17, 300):
        ids = text.prompt_ids(tiny.tokenizer, n)
        assert len(ids) == n
        assert ids == text.prompt_ids(tiny.tokenizer, n)


class _FewIds:
    """A tokenizer that gives 2 ids per topic, so the corpus runs out and must repeat."""

    def __call__(self, s, add_special_tokens=False):
        return type("Enc", (), {"input_ids": [len(s) % 7, 1]})()


def test_repeats_from_the_start_when_the_corpus_runs_out():
    from pydoc_data.topics import topics
    n = 2 * len(topics) + 5
    ids = text.prompt_ids(_FewIds(), n)
    assert len(ids) == n and ids[2 * len(topics):] == ids[:5]


def test_zero_tokens_is_a_readable_error(tiny):
    with pytest.raises(MemlabError, match="at least 1 token"):
        text.prompt_ids(tiny.tokenizer, 0)
