"""Judge rendering and tokenization behind the interface the trainer and the scorer use for every head.

:class:`JudgeRenderer` and :class:`JudgeEncoder` stand where :class:`~rewardkit.data.render.Renderer` and
:class:`~rewardkit.data.tokenize.SequenceEncoder` stand for the other heads: ``render(prompt, response)`` then
``encode`` / ``encode_group`` give :class:`~rewardkit.data.tokenize.Encoded` sequences whose score token is the
last token of the judge template (the assistant turn start), so padding, length batching and shared-prompt
packing work unchanged. The responses to one prompt lose the same number of conversation tokens when cut, so
they keep one identical context (the prefix that packing computes once).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..config import JudgeConfig
from .errors import DataError
from .formats import Text
from .judge_template import JudgeTemplateError, Piece, pairwise_pieces, pointwise_pieces, tokenize_pieces
from .tokenize import Encoded, TruncationStats

PAIRWISE_ONLY = ("model.judge.mode pairwise judges two responses in one context: it trains on pairs (loss "
                 "bradley_terry or log_exp) and compares two responses (Scorer.compare, POST /compare); it has no "
                 "reward for one response alone (use mode pointwise for that)")


class JudgeRenderer:
    """``render(prompt, response)`` -> the pointwise judge text as pieces; a pairwise judge renders a pair in
    both orders (:meth:`render_orders`)."""

    def __init__(self, tokenizer, cfg: JudgeConfig):
        self.tokenizer, self.cfg = tokenizer, cfg
        self.pairwise = cfg.mode == "pairwise"
        self.template, self.has_chat_template = "judge", bool(getattr(tokenizer, "chat_template", None))

    def render(self, prompt: Text, response: Text) -> list[Piece]:
        if self.pairwise:
            raise ValueError(PAIRWISE_ONLY)
        return pointwise_pieces(self.cfg, self.tokenizer, prompt, response)

    def render_orders(self, prompt: Text, first: Text, second: Text) -> list[list[Piece]]:
        """A pairwise judge's two contexts of one pair: ``first`` shown as A, then ``second`` shown as A. Encoded
        as one group (the same conversation cut in both), their outputs' difference is the order-averaged margin
        of ``first`` over ``second`` (models/judge.py, ``PAIRWISE_SCALE``)."""
        return [pairwise_pieces(self.cfg, self.tokenizer, prompt, first, second),
                pairwise_pieces(self.cfg, self.tokenizer, prompt, second, first)]


class JudgeEncoder:
    """Pieces -> :class:`Encoded` (score index: the last token), with the over-length policy and its counts."""

    def __init__(self, tokenizer, max_length: int, truncation: str = "truncate_prompt_left"):
        self.tokenizer, self.max_length, self.truncation = tokenizer, max_length, truncation
        self.stats = TruncationStats()
        self.score_token_id = None  # set by the caller: the template's last token (checked per sequence)

    def encode(self, rendered: list[Piece], where: str = "") -> Encoded:
        return self.encode_group([rendered], where)[0]  # type: ignore[return-value]

    def encode_group(self, rendered: Sequence[list[Piece]], where: str = "",
                     names: Sequence[str] | None = None) -> list[Encoded | None]:
        """As :meth:`SequenceEncoder.encode_group`; ``names`` (e.g. chosen, rejected) name the field in errors."""
        full = [tokenize_pieces(self.tokenizer, r) for r in rendered]
        self.stats.counts["sequences"] += len(full)
        over = [len(f.input_ids) > self.max_length for f in full]
        if any(over) and self.truncation in ("error", "drop"):
            if self.truncation == "error":
                src, _, line = where.rpartition(":")
                worst = max(range(len(full)), key=lambda i: len(full[i].input_ids))
                raise DataError(src or where, int(line) if line.isdigit() else None,
                                names[worst] if names else "prompt",
                                f"the judge text is {max(len(f.input_ids) for f in full)} tokens, more than "
                                f"data.max_length={self.max_length}; raise max_length or set data.truncation to "
                                "truncate_prompt_left or drop", "too_long")
            self.stats.counts["dropped"] += sum(over)
            return [None if o else self._encoded(f) for f, o in zip(full, over, strict=True)]
        try:
            cut = [tokenize_pieces(self.tokenizer, r, self.max_length) for r in rendered]
            # one context for all: every member loses what the most-cut member lost in each context group
            reply_groups = {p.group for r in rendered for p in r if p.reply}
            need = {g: max(c.cuts.get(g, 0) for c in cut) for c in cut for g in c.cuts if g not in reply_groups}
            if need:
                cut = [tokenize_pieces(self.tokenizer, r, self.max_length, at_least=need) for r in rendered]
        except JudgeTemplateError as e:
            src, _, line = where.rpartition(":")
            raise DataError(src or where, int(line) if line.isdigit() else None, "prompt", str(e), "too_long") from e
        for c in cut:
            self.stats.counts["prompt_truncated"] += any(n for g, n in c.cuts.items() if g not in reply_groups)
            self.stats.counts["response_truncated"] += any(n for g, n in c.cuts.items() if g in reply_groups)
        return [self._encoded(c) for c in cut]

    def _encoded(self, j) -> Encoded:
        ids = j.input_ids
        if self.score_token_id is not None and ids[-1] != self.score_token_id:
            raise ValueError("the judge template does not end in the recorded score token; the model was saved "
                             "with another template or tokenizer")
        return Encoded(ids, None, j.response_start, len(ids) - 1, j.response_start)
