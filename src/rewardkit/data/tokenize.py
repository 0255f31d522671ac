"""Rendered text -> token ids, with the response start and the score token recorded once, here.

Decoders: ``[bos?] prompt response <score>`` where ``<score>`` is the end token (EOS, or the chat template's
end-of-turn token) appended when the text does not already end with it; the reward is read there.
Encoders: ``[CLS] prompt [SEP] response [SEP]``; the reward is read at ``[CLS]`` (index 0).

Over-long sequences follow ``truncation``: ``truncate_prompt_left`` removes prompt tokens from the left, then
(only if the response alone is too long) response tokens from its start, so the response end and the score
token always survive; ``drop`` drops the example; ``error`` raises. :class:`TruncationStats` counts each.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

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
        return {k: int(self.counts.get(k, 0)) for k in keys}


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
        if kind == "decoder" and self.score_token_id is None:
            raise ValueError("the tokenizer has no EOS token to score at; set one (tokenizer.eos_token)")
        # special tokens: the named ones plus added tokens flagged special (e.g. ChatML's <|im_end|>)
        added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
        self._special = set(tokenizer.all_special_ids) | {i for i, t in added.items() if getattr(t, "special", False)}
        if max_length < 4:
            raise ValueError("data.max_length must be at least 4")

    def encode(self, rendered: Rendered, where: str = "") -> Encoded:
        """Encode one example; raises :class:`Dropped` or :class:`DataError` for over-long ones per policy."""
        self.stats.counts["sequences"] += 1
        if self.kind == "encoder":
            return self._encode_pair(rendered, where)
        return self._encode_causal(rendered, where)

    # -- decoders -------------------------------------------------------------------------------------------
    def _encode_causal(self, r: Rendered, where: str) -> Encoded:
        tok = self.tokenizer
        text = r.prompt + r.response
        enc = tok(text, add_special_tokens=not r.chat, return_offsets_mapping=True)
        ids, offsets = list(enc["input_ids"]), enc["offset_mapping"]
        if not r.chat and ids and ids[-1] == self.score_token_id and tuple(offsets[-1]) == (0, 0):
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
        if r.chat and ids and ids[-1] in self._special:
            score_id = ids.pop()  # the template's end-of-turn token is the score token
        else:
            score_id = self.score_token_id
        prompt, response = ids[lead:rs], ids[rs:]
        prompt, response = self._fit(ids[:lead], prompt, response, r, where)
        out = ids[:lead] + prompt + response + [score_id]
        return Encoded(out, None, lead + len(prompt), len(out) - 1, len(prompt))

    # -- encoders -------------------------------------------------------------------------------------------
    def _encode_pair(self, r: Rendered, where: str) -> Encoded:
        enc = self.tokenizer(r.prompt, r.response, add_special_tokens=True)
        ids = list(enc["input_ids"])
        seq = enc.sequence_ids()
        types = list(enc["token_type_ids"]) if "token_type_ids" in enc else None
        p_idx = [i for i, s in enumerate(seq) if s == 0]
        r_idx = [i for i, s in enumerate(seq) if s == 1]
        special = len(ids) - len(p_idx) - len(r_idx)
        kept_p, kept_r = self._fit([0] * special, p_idx, r_idx, r, where)
        keep = set(kept_p) | set(kept_r) | {i for i, s in enumerate(seq) if s is None}
        order = [i for i in range(len(ids)) if i in keep]
        out = [ids[i] for i in order]
        out_types = [types[i] for i in order] if types is not None else None
        rs = next((j for j, i in enumerate(order) if seq[i] == 1), len(order) - 1)
        return Encoded(out, out_types, rs, 0, len(kept_p))

    # -- the over-length policy -----------------------------------------------------------------------------
    def _fit(self, fixed: list, prompt: list, response: list, r: Rendered, where: str) -> tuple[list, list]:
        total = len(fixed) + len(prompt) + len(response) + (1 if self.kind == "decoder" else 0)
        excess = total - self.max_length
        if excess <= 0:
            return prompt, response
        if self.truncation == "error":
            src, _, line = where.rpartition(":")
            raise DataError(src or where, int(line) if line.isdigit() else None, "prompt",
                            f"{total} tokens is more than data.max_length={self.max_length}; raise max_length "
                            "or set data.truncation to truncate_prompt_left or drop", "too_long")
        if self.truncation == "drop":
            self.stats.counts["dropped"] += 1
            raise Dropped(where)
        cut = min(excess, len(prompt))
        if cut:
            self.stats.counts["prompt_truncated"] += 1
            prompt = prompt[cut:]
            excess -= cut
        if excess > 0:
            self.stats.counts["response_truncated"] += 1
            response = response[excess:]
        return prompt, response
