"""The one source of N-token prompts (labs 02, 03, 07, 08, and every sweep over prompt length).

Real English prose, so attention and tokenization behave as they do on a real prompt: the help
topics of Python's own documentation (`pydoc_data.topics`, shipped with every Python), in sorted
topic order, each tokenized without special tokens. The same tokenizer and length always give
the same ids, so two labs that ask for "a 512-token prompt" time the same work.
"""

from __future__ import annotations

from memlab.core.errors import MemlabError


def prompt_ids(tokenizer, num_tokens: int) -> list[int]:
    """Exactly `num_tokens` token ids of prose (repeated from the start if more are asked for)."""
    if num_tokens < 1:
        raise MemlabError(f"a prompt needs at least 1 token, got {num_tokens}")
    from pydoc_data.topics import topics
    ids: list[int] = []
    for key in sorted(topics):
        ids += tokenizer(topics[key], add_special_tokens=False).input_ids
        if len(ids) >= num_tokens:
            return ids[:num_tokens]
    return (ids * (num_tokens // len(ids) + 1))[:num_tokens]
