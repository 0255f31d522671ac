"""Step-level rendering and tokenization: one sequence per solution, the end token of every step recorded.

Decoders only (a step's reward must not see the steps after it). The text is::

    prompt  <sep?>  step_1 TAG step_2 TAG ... step_n TAG

``TAG`` is ``data.steps.separator`` (default ``"\\n\\n"``) or, when ``data.steps.step_token`` is set, that
special token (added to the tokenizer): one id that marks every step end, as vLLM's STEP pooler reads it. The
reward of step ``i`` is read at the last token of its ``TAG``. A text prompt is joined to the first step with
``data.separator`` (as a prompt and a response are); a chat prompt goes through the chat template with the
generation prompt, and the steps are the assistant's text.

The prompt and then each step with its tag are tokenized on their own and concatenated, so a step's tokens
(and its score) never depend on the steps after it: scoring a partial solution gives its steps the scores they
get in the whole one (what step-level search needs), and a tag never merges with the next step's first
characters. (Tokenizing the whole text at once does not have this property: GPT-2's BPE tokenizes ``"\n\n"`` at
the end of a text as one token and before a digit as two.) With a step token, the tokenizer splits the text at
it anyway, so the whole text tokenizes to the same ids: what a serving engine given text sees.

Over-long solutions (``data.steps.truncation``): ``drop_steps`` keeps the steps that fit whole and drops the
trailing ones, counted in :class:`StepTruncationStats`; ``error`` raises. A step is never cut in half, and a
solution whose first step does not fit is dropped (counted) or an error.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..config import StepsConfig
from .errors import DataError
from .render import Renderer
from .steps import Stepwise


@dataclass(frozen=True)
class EncodedSteps:
    """One tokenized solution. ``step_ends[i]`` is the index of the token step ``i``'s reward is read at."""

    input_ids: list[int]
    step_ends: list[int]
    labels: list[int | None]
    """Labels of the kept steps (trailing steps dropped by truncation are gone from both lists)."""
    response_start: int
    """Index of the first token of the first step."""
    where: str
    dropped_steps: int = 0
    correct: bool | None = None
    """The solution-level flags of :class:`~rewardkit.data.steps.Stepwise` (best-of-N evaluation)."""
    group: str | None = None
    answer: str | None = None

    @property
    def score_index(self) -> int:
        return self.step_ends[-1]

    token_type_ids = None  # decoders only; lets :func:`rewardkit.data.collate.pad_batch` pad it as an Encoded


@dataclass
class StepTruncationStats:
    counts: Counter = field(default_factory=Counter)

    def summary(self) -> dict:
        keys = ("solutions", "steps", "solutions_truncated", "steps_dropped", "solutions_dropped")
        return {k: int(self.counts.get(k, 0)) for k in keys}


class StepDropped(Exception):
    """Not even the first step fits in ``max_length`` (policy ``drop_steps``)."""


def add_step_token(tokenizer, cfg: StepsConfig, hf_model=None) -> int | None:
    """Add ``cfg.step_token`` to the tokenizer (special: never split, never merged) and, when a model is given,
    an embedding row for it; returns its id (None without a step token)."""
    if not cfg.step_token:
        return None
    if cfg.step_token not in tokenizer.get_vocab():
        from tokenizers import AddedToken

        tokenizer.add_tokens([AddedToken(cfg.step_token, special=True, normalized=False)], special_tokens=True)
        if hf_model is not None:
            hf_model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    return tokenizer.convert_tokens_to_ids(cfg.step_token)


class StepEncoder:
    """Render and tokenize :class:`Stepwise` examples, recording every step's end token."""

    def __init__(self, tokenizer, renderer: Renderer, cfg: StepsConfig, max_length: int):
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("rewardkit needs a fast (Rust) tokenizer to locate the step ends")
        if renderer.kind != "decoder":
            raise ValueError("step-level rewards need a decoder (an encoder would let a step's reward read the "
                             "steps after it)")
        if cfg.step_token and cfg.step_token not in tokenizer.get_vocab():
            raise ValueError(f"data.steps.step_token {cfg.step_token!r} is not in the tokenizer; add it first "
                             "(rewardkit.data.step_tokenize.add_step_token)")
        self.tokenizer = tokenizer
        self.renderer = renderer
        self.cfg = cfg
        self.tag = cfg.step_token or cfg.separator
        self.max_length = max_length
        self.stats = StepTruncationStats()

    def render(self, prompt, steps: list[str]) -> tuple[str, list[int], bool]:
        """(text, character end of each step's tag, chat): the text a serving engine is given too."""
        r = self.renderer
        if r.uses_chat(prompt, "x"):
            msgs = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
            head, chat = self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True), True
        else:
            head = r.render(prompt, steps[0]).prompt  # plain: the prompt with data.separator where needed
            chat = False
        text, ends = head, []
        for s in steps:
            text += s + self.tag
            ends.append(len(text))
        return text, ends, chat

    def encode(self, ex: Stepwise) -> EncodedSteps:
        """Tokenize one solution; raises :class:`StepDropped` or :class:`DataError` per the truncation policy."""
        text, char_ends, chat = self.render(ex.prompt, ex.steps)
        tok = self.tokenizer
        head = text[:char_ends[0] - len(ex.steps[0]) - len(self.tag)]
        enc = tok(head, add_special_tokens=not chat, return_offsets_mapping=True)
        ids, offsets = list(enc["input_ids"]), enc["offset_mapping"]
        while ids and not chat and tuple(offsets[-1]) == (0, 0) and ids[-1] in tok.all_special_ids and len(ids) > 1:
            ids, offsets = ids[:-1], offsets[:-1]  # a post-processor's appended EOS: the steps follow the prompt
        start, ends = len(ids), []
        for s in ex.steps:
            # each step with its tag is tokenized on its own: its tokens, and so its score, cannot depend on the
            # steps after it (a BPE tokenizer tokenizes "\n\n" at the end of a text and before a digit apart)
            ids += tok(s + self.tag, add_special_tokens=False)["input_ids"]
            ends.append(len(ids) - 1)
        src, _, line = ex.where.rpartition(":")
        where = (src or ex.where, int(line) if line.isdigit() else None)
        self.stats.counts["solutions"] += 1
        self.stats.counts["steps"] += len(ends)
        keep = sum(e < self.max_length for e in ends)
        if keep < len(ends):
            if self.cfg.truncation == "error":
                raise DataError(*where, self.cfg.steps_field, f"{ends[-1] + 1} tokens is more than "
                                f"data.max_length={self.max_length} and steps may not be cut; raise max_length or set "
                                "data.steps.truncation: drop_steps", "too_long")
            self.stats.counts["steps_dropped"] += len(ends) - keep
            if keep == 0:
                self.stats.counts["solutions_dropped"] += 1
                raise StepDropped(ex.where)
            self.stats.counts["solutions_truncated"] += 1
        group = ex.group if ex.group is not None else (ex.prompt if isinstance(ex.prompt, str) else repr(ex.prompt))
        return EncodedSteps(ids[:ends[keep - 1] + 1], ends[:keep], list(ex.labels[:keep]), start, ex.where,
                            len(ends) - keep, ex.correct, group, ex.answer)
