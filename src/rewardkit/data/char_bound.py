"""Cut absurdly long text by characters before tokenizing it, without changing what the encoder keeps.

A 50 MB response used to be tokenized whole (74 s, 4.3 GB) only for all but ``max_length`` tokens to be
thrown away. No token covers more characters than the longest entry of the vocabulary (byte-level BPE writes
one character per byte, WordPiece adds ``##``), so ``(max_length + SLACK) * longest`` characters hold more than
``max_length`` tokens of any text. The over-length policy keeps the *end* of the sequence (the prompt's
left is cut first, then the response's start), so a prompt or response over that bound is cut from its left:
the kept tokens are the same, and the tokens near the cut (where a word may now be split) are far from
anything kept. Text whose characters make no tokens (a WordPiece tokenizer drops whitespace runs) could make a
cut part too short: :func:`enough_tokens` checks, and the caller then tokenizes the text whole.
"""

from __future__ import annotations

from dataclasses import replace

from .render import Rendered

SLACK = 64
"""Tokens kept beyond max_length, so the tokens at the cut are never among the kept ones."""


def longest_token_chars(tokenizer) -> int:
    """Characters of the longest vocabulary entry (an upper bound on the characters one token covers)."""
    try:
        vocab = tokenizer.get_vocab()
    except (AttributeError, NotImplementedError):
        return 0
    return max((len(t) for t in vocab), default=0)


def char_bound(max_length: int, longest: int) -> int | None:
    """Characters of one part beyond which it is cut (None: never, when the vocabulary is unknown)."""
    return (max_length + SLACK) * longest if longest > 0 else None


def cut_rendered(r: Rendered, bound: int) -> tuple[Rendered, bool, bool]:
    """``r`` with its prompt and response each cut from the left to ``bound`` characters; whether each was cut."""
    cut_p, cut_r = len(r.prompt) > bound, len(r.response) > bound
    if not (cut_p or cut_r):
        return r, False, False
    return (replace(r, prompt=r.prompt[-bound:] if cut_p else r.prompt,
                    response=r.response[-bound:] if cut_r else r.response), cut_p, cut_r)


def enough_tokens(prompt_tokens: int, response_tokens: int, cut_p: bool, cut_r: bool, max_length: int) -> bool:
    """A cut part still has more than max_length + SLACK // 2 tokens: the cut cannot change what is kept."""
    need = max_length + SLACK // 2
    return (not cut_p or prompt_tokens > need) and (not cut_r or response_tokens > need)
