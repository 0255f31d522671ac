"""Rendered text -> token ids, with the response start and the score token recorded once, here.

Decoders: ``[bos?] prompt response <score>`` where ``<score>`` is the end token (EOS, or the chat template's
end-of-turn token) appended when the text does not already end with it; the reward is read there.
Encoders: ``[CLS] prompt [SEP] response [SEP]``; the reward is read at ``[CLS]`` (index 0).

Over-long sequences follow ``truncation``: ``truncate_prompt_left`` removes prompt tokens from the left, then
(only if the response alone is too long) response tokens from its start, so the response end and the score
token always survive; ``drop`` drops the example; ``error`` raises. :class:`TruncationStats` counts each
sequence touched. The sequences of one group (chosen and rejected, or the K responses of a ranked list) are
truncated together (:meth:`SequenceEncoder.encode_group`): the same prompt tokens go from all of them, so
they keep an identical prompt.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .char_bound import char_bound, cut_rendered, enough_tokens, longest_token_chars
from .errors import DataError
from .render import Rendered


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    token_type_ids: list[int] | None
    response_start: int
    """Index of the first response token."""
    score_index: int
    """Index of the token whose hidden state is scored."""
    prompt_tokens: int
    """Prompt tokens kept (after truncation)."""


@dataclass
class TruncationStats:
    counts: Counter = field(default_factory=Counter)

    def summary(self) -> dict:
        keys = ("sequences", "prompt_truncated", "response_truncated", "dropped")
        out = {k: int(self.counts.get(k, 0)) for k in keys}
        # the step task shares these counts (solutions, steps, steps_dropped ...): report them too
        return out | {k: int(v) for k, v in self.counts.items() if k not in out}


@dataclass(frozen=True)
class _Parts:
    """One sequence split before the over-length policy: prompt and response tokens (ids, or positions for
    encoders), the untruncated length, and how to assemble the kept parts into an :class:`Encoded`."""

    prompt: list
    response: list
    total: int
    build: Callable[[list, list], Encoded]
    cut: bool = False
    """The text was cut by characters first (data/char_bound.py): ``total`` is then a lower bound."""


class Dropped(Exception):
    """The example is longer than max_length and the policy is ``drop``."""


class SequenceEncoder:
    def __init__(self, tokenizer, kind: str, max_length: int, truncation: str = "truncate_prompt_left"):
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("rewardkit needs a fast (Rust) tokenizer to locate the response start")
        self.tokenizer = tokenizer
        self.kind = kind
        self.max_length = max_length
        self.truncation = truncation
        self.stats = TruncationStats()
        self.score_token_id = tokenizer.eos_token_id
        self.append_score_token = True
        """False: score the last token of the text as the tokenizer gives it (a foreign transformers model)."""
        if kind == "decoder" and self.score_token_id is None:
            raise ValueError("the tokenizer has no EOS token to score at; set one (tokenizer.eos_token)")
        # special tokens: the named ones plus added tokens flagged special (e.g. ChatML's <|im_end|>)
        added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
        self._special = set(tokenizer.all_special_ids) | {i for i, t in added.items() if getattr(t, "special", False)}
        if max_length < 4:
            raise ValueError("data.max_length must be at least 4")
        self._char_bound = char_bound(max_length, longest_token_chars(tokenizer))

    def encode(self, rendered: Rendered, where: str = "") -> Encoded:
        """Encode one example; raises :class:`Dropped` or :class:`DataError` for over-long ones per policy."""
        out = self.encode_group([rendered], where)[0]
        if out is None:
            raise Dropped(where)
        return out

    def encode_group(self, rendered: Sequence[Rendered], where: str = "",
                     names: Sequence[str] | None = None) -> list[Encoded | None]:
        """Encode the sequences of one group (a pair, or the K responses of a ranked list) of the same prompt.

        ``truncate_prompt_left`` cuts the *same* number of prompt tokens from every member: enough for the
        longest one to fit, so all keep an identical prompt (the responses are judged on one context, and
        packing can share it). A member whose response alone is too long loses its whole prompt and the start
        of its response, and the others then lose their whole prompt too. ``drop`` gives None for each
        over-long member (the caller drops the pair, or keeps the other responses of a ranked list); ``error``
        raises at the first over-long member, naming the prompt, or the response (``names[i]``, e.g.
        ``rejected``) when that alone is too long.
        """
        parts = []
        for r in rendered:
            self.stats.counts["sequences"] += 1
            parts.append(self._split(r))
        excess = [p.total - self.max_length for p in parts]
        if self.truncation in ("error", "drop"):
            if self.truncation == "error" and max(excess) > 0:
                src, _, line = where.rpartition(":")
                worst = max(range(len(parts)), key=excess.__getitem__)
                p = parts[worst]
                alone = p.total - len(p.prompt) > self.max_length  # even without any prompt it is too long
                name = (names[worst] if names else "response") if alone else "prompt"
                raise DataError(src or where, int(line) if line.isdigit() else None, name,
                                f"{'at least ' if p.cut else ''}{p.total} tokens is more than data.max_length="
                                f"{self.max_length}" + (" with the response alone" if alone else "") +
                                "; raise max_length or set data.truncation to truncate_prompt_left or drop",
                                "too_long")
            self.stats.counts["dropped"] += sum(e > 0 for e in excess)
            return [None if e > 0 else p.build(p.prompt, p.response) for p, e in zip(parts, excess, strict=True)]
        cut = max(0, max(excess))  # the same left cut for every member: the longest one decides
        return [self._cut(p, cut, e) for p, e in zip(parts, excess, strict=True)]

    def _split(self, r: Rendered) -> _Parts:
        """Split ``r``, cutting an absurdly long prompt or response by characters first (data/char_bound.py)."""
        split = self._split_pair if self.kind == "encoder" else self._split_causal
        if self._char_bound is None:
            return split(r)
        short, cut_p, cut_r = cut_rendered(r, self._char_bound)
        if not (cut_p or cut_r):
            return split(r)
        parts = split(short)
        if not enough_tokens(len(parts.prompt), len(parts.response), cut_p, cut_r, self.max_length):
            return split(r)  # characters that make few tokens (e.g. whitespace runs): tokenize it whole
        return dataclasses.replace(parts, cut=True)

    # -- decoders -------------------------------------------------------------------------------------------
    def _split_causal(self, r: Rendered) -> _Parts:
        tok = self.tokenizer
        text = r.prompt + r.response
        enc = tok(text, add_special_tokens=not r.chat, return_offsets_mapping=True)
        ids, offsets = list(enc["input_ids"]), enc["offset_mapping"]
        if (self.append_score_token and not r.chat and ids and ids[-1] == self.score_token_id
                and tuple(offsets[-1]) == (0, 0)):
            # the post-processor appended EOS (an exported rewardkit tokenizer does): it is re-appended below as
            # the score token; an EOS written in the text (real offsets) stays, as it does in transformers
            ids, offsets = ids[:-1], offsets[:-1]
        boundary = len(r.prompt)
        lead = 0
        while lead < len(ids) and ids[lead] in self._special and offsets[lead] == (0, 0) and not r.chat:
            lead += 1
        rs = lead
        while rs < len(ids) and offsets[rs][1] <= boundary:
            rs += 1
        if (r.chat and ids and ids[-1] in self._special) or (not self.append_score_token and len(ids) > 1):
            score_id = ids.pop()  # the template's end-of-turn token (or a foreign model's last token) is scored
        else:
            score_id = self.score_token_id
        fixed = ids[:lead]

        def build(prompt: list, response: list) -> Encoded:
            out = fixed + prompt + response + [score_id]
            return Encoded(out, None, lead + len(prompt), len(out) - 1, len(prompt))

        return _Parts(ids[lead:rs], ids[rs:], len(ids) + 1, build)

    # -- encoders -------------------------------------------------------------------------------------------
    def _split_pair(self, r: Rendered) -> _Parts:
        enc = self.tokenizer(r.prompt, r.response, add_special_tokens=True)
        ids = list(enc["input_ids"])
        seq = enc.sequence_ids()
        types = list(enc["token_type_ids"]) if "token_type_ids" in enc else None
        p_idx = [i for i, s in enumerate(seq) if s == 0]
        r_idx = [i for i, s in enumerate(seq) if s == 1]

        def build(kept_p: list, kept_r: list) -> Encoded:
            keep = set(kept_p) | set(kept_r) | {i for i, s in enumerate(seq) if s is None}
            order = [i for i in range(len(ids)) if i in keep]
            out = [ids[i] for i in order]
            out_types = [types[i] for i in order] if types is not None else None
            rs = next((j for j, i in enumerate(order) if seq[i] == 1), len(order) - 1)
            return Encoded(out, out_types, rs, 0, len(kept_p))

        return _Parts(p_idx, r_idx, len(ids), build)

    # -- the over-length policy -----------------------------------------------------------------------------
    def _cut(self, parts: _Parts, cut: int, excess: int) -> Encoded:
        """``cut`` tokens off the prompt's left (the group's cut); then, only if this member still does not
        fit, tokens off its response's start, so the response end and the score token survive."""
        prompt, response = parts.prompt, parts.response
        cut = min(cut, len(prompt))
        if cut:
            self.stats.counts["prompt_truncated"] += 1
            prompt = prompt[cut:]
        if excess - cut > 0:
            self.stats.counts["response_truncated"] += 1
            response = response[excess - cut:]
        return parts.build(prompt, response)
