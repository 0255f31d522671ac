"""The serving manifest of an export: how vLLM, SGLang and the transformers pipeline reproduce rewardkit's scores.

Serving engines read a sequence classifier's ``config.json`` and apply an activation to its outputs: vLLM
(``vllm/model_executor/layers/pooler/activations.py``, 0.32) and the transformers ``text-classification``
pipeline use the identity only when ``problem_type`` is ``"regression"``; without it a 1-output head gets a
sigmoid (vLLM, pipeline) and a K-output head a softmax. A reward is a raw score, so every head that exports to
transformers exports with ``problem_type: "regression"`` and the engines return the head's raw outputs: the
reward itself for scalar heads, the logits of the card's formula for 2-output classifiers and K attributes
(``num_labels=K``). Heads no engine computes (mean pooling over the response) fail :func:`require_engine`.

The manifest is written into ``rewardkit.json`` (``"serving"``) and the model card.
"""

from __future__ import annotations

import shlex
from typing import Literal, get_args

from ..models.reward_model import ModelMeta

Engine = Literal["vllm", "sglang"]
ENGINES: tuple[str, ...] = get_args(Engine)
PROBLEM_TYPE = "regression"


def engine_support(meta: ModelMeta, readout: str) -> tuple[bool, str]:
    """(can vLLM / SGLang compute this head's reward, how or why not)."""
    if readout == "rewardkit_only":
        return False, (f"pooling '{meta.pooling}' with head '{meta.head}' is not one token through a linear head; "
                       "vLLM and SGLang pool the last token (decoders) or [CLS] (encoders) into the classifier, "
                       "so they would compute a different score: serve it with `rewardkit serve`")
    if readout == "judge":  # a causal LM: vLLM converts it into a classifier from two answer tokens
        return True, ("LM-head judge: vLLM --convert classify with from_2_way_softmax gives sigmoid(reward); "
                      "reward = log(p / (1 - p)); SGLang has no such conversion")
    if meta.head == "ensemble" and meta.ensemble_members == "lora":
        return False, ("an ensemble of K LoRA adapters: member k's reward needs its own adapter "
                       "(adapters/member_k), and vLLM / SGLang would score the base without them: serve it with "
                       "`rewardkit serve`, or score each adapter with peft (the card's recipe)")
    if meta.head == "classifier":
        return True, "2 outputs (reject, accept) as raw logits; the reward is the card's formula of them"
    if meta.head == "multi":
        return True, (f"{len(meta.attributes or [])} attributes as num_labels={len(meta.attributes or [])} raw "
                      "outputs; the reward is their weighted sum (weights in the manifest)")
    return True, "1 output: the reward itself (identity activation)"


def require_engine(meta: ModelMeta, readout: str, engine: str, where: str) -> None:
    """Raise :class:`~rewardkit.export.exporter.ExportError` when ``engine`` cannot express this head."""
    from .exporter import ExportError

    if engine not in ENGINES:
        raise ExportError(f"engine {engine!r}: choose one of {', '.join(ENGINES)}")
    ok, why = engine_support(meta, readout)
    if not ok or (readout == "judge" and engine != "vllm"):
        raise ExportError(f"{where}: cannot export for {engine}: {why}")


def apply_problem_type(config, readout: str) -> None:
    """``problem_type: regression`` on the exported config: raw outputs in vLLM, SGLang and the pipeline."""
    if readout not in ("rewardkit_only", "judge"):  # a judge exports a causal LM: no classification head
        config.problem_type = PROBLEM_TYPE


def reward_formula(meta: ModelMeta, weights: list[float] | None) -> str:
    if meta.head == "classifier":
        return "softmax(outputs)[1]" if meta.reward_from == "probability" else "outputs[1] - outputs[0]"
    if meta.head == "multi":
        return "outputs @ attribute_weights"
    if meta.head == "ensemble":  # K heads; rewardkit.json's export.ensemble holds the aggregation
        agg = meta.ensemble_aggregate or "mean"
        return ("mean(outputs) - beta * std(outputs), beta = " + f"{meta.ensemble_beta:g}"
                if agg == "mean_minus_std" else f"{agg}(outputs)")
    return "outputs[0]"


def serving_manifest(meta: ModelMeta, readout: str, weights: list[float] | None, tokenizer, dtype: str,
                     path: str = "PATH", chat_tokenizer: str | None = None) -> dict:
    """What a serving engine needs to score like rewardkit (see the module docstring); ``path``: the directory
    as the commands should name it; ``chat_tokenizer``: the export's subdirectory with a tokenizer for chat text
    sent with special tokens on (``export/tokenizer.py``), if it wrote one."""
    if readout == "judge":
        return _judge_manifest(meta)
    ok, how = engine_support(meta, readout)
    chat = bool(getattr(tokenizer, "chat_template", None)) and meta.kind == "decoder" and meta.template != "plain"
    manifest = {
        "problem_type": PROBLEM_TYPE if ok else None,
        "activation": "identity" if ok else None,
        "outputs": (2 if meta.head == "classifier" else len(meta.attributes or []) if meta.head == "multi" else
                    meta.ensemble_size if meta.head == "ensemble" else 1),
        "reward": reward_formula(meta, weights),
        "attribute_weights": weights,
        "pooling": "CLS" if meta.kind == "encoder" else "LAST",
        "score_token": meta.score_token,
        "score_token_id": meta.score_token_id,
        "tokenizer_appends_score_token": meta.kind == "decoder",
        "chat_template": chat,
        "chat_score_token": "the template's end-of-turn token (the exported template ends there)" if chat else None,
        # verl's reward loop posts apply_chat_template text to /classify with special tokens on: the root
        # tokenizer would append one EOS too many; vLLM started with --tokenizer DIR/chat_tokenizer does not
        "chat_tokenizer": chat_tokenizer if chat else None,
        "text_pair": meta.kind == "encoder",
        "max_length": meta.max_length,
        "normalization": meta.normalization,
        "engines": {},
    }
    q = shlex.quote(path)
    max_len = str(meta.max_length)
    for engine in ENGINES:
        if not ok:
            manifest["engines"][engine] = {"supported": False, "reason": how}
            continue
        if engine == "vllm":
            manifest["engines"][engine] = {
                "supported": True, "how": how,
                "serve": f"vllm serve {q} --runner pooling --dtype {dtype} --max-model-len {max_len}",
                "offline": f"LLM(model={path!r}, runner='pooling', dtype={dtype!r}).classify(texts)",
                "endpoint": "/classify" if meta.kind == "decoder" else "/score (text_1=prompt, text_2=response)",
            }
        else:
            manifest["engines"][engine] = {
                "supported": meta.kind == "decoder", "how": how if meta.kind == "decoder" else
                "encoders: not documented for SGLang's reward path; use vLLM or rewardkit serve",
                "serve": f"python -m sglang.launch_server --model-path {q} --is-embedding --dtype {dtype} "
                         f"--context-length {max_len}",
                "endpoint": "/v1/classify (vLLM-compatible) or the native /classify",
            }
    return manifest


def card_section(manifest: dict) -> list[str]:
    """The model card's *Serving engines* section from the manifest."""
    lines = ["## Serving engines (vLLM, SGLang)", ""]
    vllm = manifest["engines"]["vllm"]
    if "command" in vllm:  # an LM-head judge: vLLM converts the causal LM into a classifier
        return lines + [f"vLLM serves this judge as a classifier; {manifest['activation']}. SGLang: "
                        f"{manifest['engines']['sglang']['reason']}.", "", "```bash", vllm["command"], "```", "",
                        f"Send the judge text ({manifest['judge_text']}); reward = {manifest['reward']}.", ""]
    if not vllm["supported"]:
        return lines + [f"Not servable by vLLM or SGLang with the same scores: {vllm['reason']}."]
    lines += [f"`config.json` has `problem_type: \"{manifest['problem_type']}\"`, so vLLM, SGLang and the "
              "transformers `text-classification` pipeline apply no activation (without it a 1-output head gets "
              f"a sigmoid). The engines return {vllm['how']}; reward = `{manifest['reward']}`.", ""]
    if manifest["tokenizer_appends_score_token"]:
        lines += ["Plain text: send `prompt + response`; the tokenizer appends the score token "
                  f"`{manifest['score_token']}` (vLLM and SGLang add special tokens by default). Chat: send the "
                  "messages to `/classify` (`{\"messages\": [...]}`) or the text of `apply_chat_template`; the "
                  "template ends at the score token.", ""]
        if manifest.get("chat_tokenizer"):
            lines += ["Chat text tokenized *with* special tokens (verl's reward loop posts the rendered conversation "
                      "to `/classify` as `input`): start vLLM with `--tokenizer PATH/"
                      f"{manifest['chat_tokenizer']}` (verl: `reward.reward_model.rollout.engine_kwargs.vllm."
                      "tokenizer`); the root tokenizer would append one EOS after the score token.", ""]
    else:
        lines += ["Encoder: the prompt and the response are a text pair; use vLLM's `/score` (cross-encoder) "
                  "with `text_1` = prompt and `text_2` = response.", ""]
    lines += ["```bash", "# vLLM", vllm["serve"],
              "curl -s localhost:8000/classify -H 'Content-Type: application/json' "
              "-d '{\"model\": \"PATH\", \"input\": [\"PROMPT RESPONSE\"]}'", "```", "",
              "```python", "from vllm import LLM", "if __name__ == \"__main__\":  # vLLM starts worker processes",
              f"    rewards = [o.outputs.probs[0] for o in {vllm['offline']}]", "```", ""]
    sglang = manifest["engines"]["sglang"]
    if sglang["supported"]:
        lines += ["```bash", "# SGLang (last-token pooling, raw scores with problem_type regression)", sglang["serve"],
                  "```", ""]
    if manifest["normalization"]:
        n = manifest["normalization"]
        lines.append(f"Normalised reward: `(reward - {n['mean']:.6g}) / {n['std']:.6g}` (the engines return the raw "
                     "reward).")
    return lines


def _judge_manifest(meta: ModelMeta) -> dict:
    """An LM-head judge (``model.head: judge``): what vLLM is told and what it returns."""
    judge = meta.judge or {}
    pairwise = judge.get("mode") == "pairwise"
    return {
        "problem_type": None,
        "activation": "vLLM classify returns sigmoid(m); m = log(p / (1 - p))" if pairwise else
                      "vLLM classify returns sigmoid(reward); reward = log(p / (1 - p))",
        "outputs": 1,
        "reward": ("pairwise: m(x, y) = logit(A) - logit(B) after the judge text with x shown as A; the preference "
                   "of x over y is (m(x, y) - m(y, x)) / 2, the position bias (m(x, y) + m(y, x)) / 2") if pairwise
                  else "logit(yes) - logit(no) of the next token after the judge text",
        "pooling": "LAST",
        "tokenizer_appends_score_token": False,
        "judge_text": "the judge template rendered by rewardkit (rewardkit.models.judge.judge_text)",
        "max_length": meta.max_length,
        "normalization": meta.normalization,
        "engines": {"vllm": {"supported": True, "command": judge.get("vllm_command")},
                    "sglang": {"supported": False, "reason": "no from-token classifier conversion in SGLang"}},
    }
