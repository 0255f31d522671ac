"""Make an exported tokenizer produce rewardkit's token ids on its own.

rewardkit renders a decoder's input as ``[bos?] prompt response <eos>`` and reads the reward at the appended
``<eos>`` (``data/tokenize.py``). A consumer who calls ``tokenizer(prompt + response)`` gets no ``<eos>`` from
most decoder tokenizers, so ``AutoModelForSequenceClassification`` would read the reward one token early. Two
changes close the gap, both stored in the tokenizer files so that they travel with the directory:

* the fast tokenizer's post-processor appends EOS whenever special tokens are added (the default of
  ``tokenizer(text)`` and of the ``text-classification`` pipeline), after whatever the original post-processor
  did (BOS, byte-level offset trimming);
* the chat template drops the whitespace it writes after the last end-of-turn token when no generation prompt
  is asked for, as rewardkit's renderer does (``data/render.py`` rstrips the rendered conversation), so
  ``apply_chat_template(messages)`` ends with the end-of-turn token, which is the score token.

Chat text already holds its special tokens, so it is tokenized with ``add_special_tokens=False`` (what
``apply_chat_template(..., tokenize=True)`` and TRL do); the post-processor then adds nothing. A consumer that
tokenizes chat text with special tokens on (verl's reward loop sends vLLM ``/classify`` the rendered conversation
without ``add_special_tokens: false``) would get one EOS too many from this tokenizer: for it the export also
writes ``chat_tokenizer/``, which adds no EOS to chat text (:func:`save_chat_tokenizer`).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

log = logging.getLogger(__name__)

TRIM_MARK = "{#- rewardkit: trailing whitespace after the last turn removed -#}"
CHAT_TOKENIZER_DIR = "chat_tokenizer"
PROBE_CHAT = [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "It is 4."}]


def append_eos_post_processor(tokenizer) -> None:
    """Chain a ``TemplateProcessing`` that appends EOS after the tokenizer's own post-processor (in place).

    Idempotent: a tokenizer that already ends single sequences with EOS is left as it is.
    """
    from tokenizers import processors

    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("export needs a fast (Rust) tokenizer to append the score token")
    eos, eos_id = tokenizer.eos_token, tokenizer.eos_token_id
    if eos is None or eos_id is None:
        raise ValueError("the tokenizer has no EOS token, so the score token cannot be appended")
    probe = tokenizer("a", add_special_tokens=True)["input_ids"]
    if probe and probe[-1] == eos_id:
        return
    backend = tokenizer.backend_tokenizer
    append = processors.TemplateProcessing(single=f"$A:0 {eos}:0", pair=f"$A:0 $B:1 {eos}:1",
                                           special_tokens=[(eos, eos_id)])
    old = backend.post_processor
    backend.post_processor = append if old is None else processors.Sequence([old, append])
    # transformers rebuilds the post-processor from these flags when they are set; ours must win
    for flag in ("_add_eos_token", "_should_update_post_processor"):
        if hasattr(tokenizer, flag):
            object.__setattr__(tokenizer, flag, False)
    tokenizer.init_kwargs.pop("add_eos_token", None)


def trim_chat_template(template: str) -> str:
    """Wrap a Jinja chat template so that, without a generation prompt, it ends at the last end-of-turn token.

    With ``add_generation_prompt`` the output is unchanged (its trailing newline belongs to the prompt the
    policy continues). Idempotent.
    """
    if TRIM_MARK in template:
        return template
    return (f"{TRIM_MARK}{{%- set rewardkit_text -%}}{template}{{%- endset -%}}"
            "{%- if add_generation_prompt is defined and add_generation_prompt -%}{{ rewardkit_text }}"
            "{%- else -%}{{ rewardkit_text.rstrip() }}{%- endif -%}")


def prepare_tokenizer(tokenizer, kind: str) -> None:
    """Apply the export changes in place: EOS post-processor and trimmed chat template (decoders), right
    padding (transformers' sequence classifiers read the last non-pad token)."""
    tokenizer.padding_side = "right"
    if kind == "encoder":
        return
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        raise ValueError("the decoder's pad token equals EOS (or is missing): transformers would read the reward "
                         "at the first EOS; rewardkit models carry a distinct pad token, was this one trained "
                         "elsewhere?")
    append_eos_post_processor(tokenizer)
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, str) and template:
        tokenizer.chat_template = trim_chat_template(template)
    elif isinstance(template, dict):
        tokenizer.chat_template = {name: trim_chat_template(t) for name, t in template.items()}


def score_token_tokenizer(path, **kwargs):
    """Load an exported decoder's tokenizer so that it gives rewardkit's ids even with
    ``add_special_tokens=False`` (for consumers such as TRL that always pass it).

    Text without special tokens is plain text: it is tokenized with special tokens (BOS if the model uses one,
    then EOS from the post-processor). Text holding special tokens was rendered by a chat template: it is
    tokenized as it is, and EOS is appended only if it does not already end with a special token, as
    ``data/tokenize.py`` does. Pairs and pre-tokenized input go to the ordinary tokenizer.
    """
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, **kwargs)
    base = type(tok)
    special = set(tok.all_special_ids) | {i for i, t in tok.added_tokens_decoder.items() if t.special}

    class ScoreTokenTokenizer(base):
        def __call__(self, text=None, *args, add_special_tokens: bool = True, padding=False, truncation=None,
                     max_length=None, return_tensors=None, padding_side=None, **kw):
            plain_call = (args or kw.get("text_pair") is not None or kw.get("is_split_into_words")
                          or not (isinstance(text, str) or (isinstance(text, (list, tuple)) and text
                                                            and all(isinstance(t, str) for t in text))))
            if plain_call:
                return super().__call__(text, *args, add_special_tokens=add_special_tokens, padding=padding,
                                        truncation=truncation, max_length=max_length, return_tensors=return_tensors,
                                        padding_side=padding_side, **kw)
            texts = [text] if isinstance(text, str) else list(text)
            rows = [self._rewardkit_ids(t) for t in texts]
            if truncation and max_length:
                rows = [r[-max_length:] for r in rows]  # keep the end: the score token is last
            single = isinstance(text, str) and return_tensors is None
            return self.pad({"input_ids": rows[0] if single else rows}, padding=padding, padding_side=padding_side,
                            return_tensors=return_tensors)

        def _rewardkit_ids(self, text: str) -> list[int]:
            ids = list(base.__call__(self, text, add_special_tokens=False)["input_ids"])
            if not any(i in special for i in ids):
                return list(base.__call__(self, text, add_special_tokens=True)["input_ids"])
            if ids[-1] not in special:
                ids.append(self.eos_token_id)
            return ids

    tok.__class__ = ScoreTokenTokenizer
    return tok


def save_chat_tokenizer(exported, out: Path) -> str | None:
    """Write ``out/chat_tokenizer``: the exported tokenizer for chat text sent *with* special tokens and a leading
    BOS cut off, which is what verl's reward loop sends vLLM (``RewardLoopWorker._preprocess_reward_inputs``). Its
    post-processor adds only that BOS (when the chat template starts with one), never the EOS the root tokenizer
    appends, so ``chat_tokenizer(text)`` gives the exported chat ids. Reloaded from disk and checked on a probe
    conversation; returns the directory's name, or None (no chat template, or a check that fails)."""
    import shutil

    from tokenizers import processors
    from transformers import AutoTokenizer

    if not getattr(exported, "chat_template", None):
        return None
    try:
        text = exported.apply_chat_template(PROBE_CHAT, tokenize=False)
    except Exception as e:  # noqa: BLE001 - a template that refuses this probe: no chat tokenizer, said why
        log.info("no %s: the chat template did not render a probe conversation (%s)", CHAT_TOKENIZER_DIR, e)
        return None
    bos = exported.bos_token
    lead = bos if bos and text.startswith(bos) else None
    chat = copy.deepcopy(exported)
    head = f"{lead}:0 " if lead else ""
    chat.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{head}$A:0", pair=f"{head}$A:0 $B:1",
        special_tokens=[(lead, exported.convert_tokens_to_ids(lead))] if lead else [])
    chat.save_pretrained(out / CHAT_TOKENIZER_DIR)
    reloaded = AutoTokenizer.from_pretrained(out / CHAT_TOKENIZER_DIR)
    sent = text[len(lead):] if lead else text
    if reloaded(sent)["input_ids"] != exported(text, add_special_tokens=False)["input_ids"]:
        log.info("no %s: the reloaded tokenizer does not give the chat ids", CHAT_TOKENIZER_DIR)
        shutil.rmtree(out / CHAT_TOKENIZER_DIR)
        return None
    return CHAT_TOKENIZER_DIR
