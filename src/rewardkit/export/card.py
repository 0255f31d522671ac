"""The exported model card (``README.md``): what the model is, how it was trained, how well it did on held-out
pairs, and the exact recipe that reproduces its scores in transformers, TRL and the rewardkit server."""

from __future__ import annotations

import json
from pathlib import Path

from ..models.head_kinds import head_kind
from ..models.reward_model import ModelMeta
from .manifest import card_section


def _load_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def metrics_table(metrics: dict) -> list[str]:
    """One row per scalar metric; ``name_ci: [lo, hi]`` (or ``{"ci": [lo, hi]}``) goes next to ``name``."""
    rows = ["| metric | value | 95% interval |", "|---|---|---|"]
    for key, value in metrics.items():
        if key.endswith("_ci") or isinstance(value, (list, dict)) and not (isinstance(value, dict) and "value" in value):
            continue
        ci = metrics.get(f"{key}_ci")
        if isinstance(value, dict):  # {"value": v, "ci": [lo, hi]}
            ci, value = value.get("ci"), value["value"]
        interval = (f"[{_fmt(ci[0])}, {_fmt(ci[1])}]" if isinstance(ci, list) and len(ci) == 2 and None not in ci
                    else "-")
        rows.append(f"| {key} | {_fmt(value)} | {interval} |")
    return rows


def _training_section(meta: ModelMeta, run_dir: Path | None) -> list[str]:
    lines = ["## How it was trained", ""]
    lines.append(f"- base model: `{meta.base_model or 'unknown'}`, read-out: {meta.kind}, pooling `{meta.pooling}`, "
                 f"head `{meta.head}`")
    if meta.training:
        lines.append(f"- steps: {meta.training.get('steps')}, loss: `{meta.training.get('loss')}`")
    config = (run_dir / "config.yaml") if run_dir else None
    if config and config.exists():
        import yaml

        cfg = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        data, train, model = cfg.get("data", {}), cfg.get("train", {}), cfg.get("model", {})
        lines.append(f"- data: train `{data.get('train')}`, held-out `{data.get('eval')}`, max_length "
                     f"{data.get('max_length')}, over-length policy `{data.get('truncation')}`")
        lines.append(f"- optimisation: lr {train.get('lr')}, batch size {train.get('batch_size')} pairs, "
                     f"grad accumulation {train.get('grad_accum')}, seed {train.get('seed')}"
                     + (f", LoRA r={model['lora'].get('r')} (merged into the weights)" if model.get("lora") else ""))
        lines += ["", "<details><summary>config.yaml</summary>", "", "```yaml", config.read_text().rstrip(), "```",
                  "", "</details>"]
    summary = _load_json(run_dir / "summary.json") if run_dir else None
    lines += ["", "## Held-out results", ""]
    if summary and summary.get("eval"):
        lines += metrics_table(summary["eval"])
        for name, label in (("zero_shot", "untrained head (zero-shot)"), ("longer_wins", "longer response wins")):
            other = summary.get(name)
            if isinstance(other, dict) and "accuracy" in other:
                lines.append(f"\nBaseline, {label}: accuracy {_fmt(other['accuracy'])}")
        trunc = summary.get("data", {}).get("eval_truncation")
        if trunc:
            lines.append(f"\nOver-length held-out sequences: {trunc}")
    else:
        lines.append("No held-out metrics were recorded for this model (no `summary.json` next to it: a "
                     "checkpoint, or a run without `data.eval`).")
    return lines


def _combination(meta: ModelMeta, weights: list[float] | None) -> list[str]:
    """How the reward follows from the transformers logits, for heads with several outputs."""
    return head_kind(meta.head).card_lines(meta, weights)


def _judge_usage(meta: ModelMeta) -> list[str]:
    j = meta.judge or {}
    return ["## How to use it", "",
            f"An LM-head judge: a causal LM asked `{j.get('question')}` after the reply; the reward is "
            f"`logit({j.get('pos_piece')!r}) - logit({j.get('neg_piece')!r})` of the next token (token ids "
            f"{j.get('pos_token_id')} and {j.get('neg_token_id')}), read at the end of the judge text.", "",
            "```python", "import rewardkit", "scorer = rewardkit.load_model(\"PATH\")",
            "scorer.score([prompt], [response])",
            "# plain transformers: the judge text, then the two logits at its last token",
            "from rewardkit.models.judge import judge_text",
            "ids = tok(judge_text(tok, meta['judge'], prompt, response), add_special_tokens=False,"
            " return_tensors='pt').input_ids",
            "z = AutoModelForCausalLM.from_pretrained(\"PATH\")(ids).logits[0, -1]",
            f"reward = z[{j.get('pos_token_id')}] - z[{j.get('neg_token_id')}]", "```", "",
            "Served by vLLM as a one-label classifier (its classify output is sigmoid(reward)):", "",
            "```bash", str(j.get("vllm_command")), "```"]


def _pairwise_judge_usage(meta: ModelMeta) -> list[str]:
    j = meta.judge or {}
    a, b = j.get("pos_token_id"), j.get("neg_token_id")
    return ["## How to use it", "",
            f"A pairwise LM-head judge: a causal LM shown the conversation and two replies, asked "
            f"`{j.get('pairwise_question')}`; `m(x, y) = logit({j.get('pos_piece')!r}) - logit({j.get('neg_piece')!r})`"
            f" of the next token (token ids {a} and {b}) with x shown as A. The preference of x over y is the "
            "order-averaged `(m(x, y) - m(y, x)) / 2` (antisymmetric); `(m(x, y) + m(y, x)) / 2` is the judge's "
            "position bias.", "",
            "```python", "import rewardkit", "scorer = rewardkit.load_model(\"PATH\")",
            "scorer.compare([prompt], [x], [y])[0].margin   # also .position_bias",
            "# plain transformers: the judge text in both orders, the two logits at its last token",
            "from rewardkit.models.judge import judge_text",
            "def m(first, second):",
            "    ids = tok(judge_text(tok, meta['judge'], prompt, first, second), add_special_tokens=False,"
            " return_tensors='pt').input_ids",
            "    z = AutoModelForCausalLM.from_pretrained(\"PATH\")(ids).logits[0, -1]",
            f"    return z[{a}] - z[{b}]", "margin = (m(x, y) - m(y, x)) / 2", "```", "",
            "Served by vLLM as a one-label classifier (its classify output is sigmoid(m) of one order):", "",
            "```bash", str(j.get("vllm_command")), "```"]


def _usage_section(meta: ModelMeta, compatible: bool, weights: list[float] | None = None) -> list[str]:
    if meta.judge and meta.judge.get("mode") == "pairwise":  # two replies in one context, both orders
        return _pairwise_judge_usage(meta)
    if meta.judge:  # an LM-head judge (head_kinds: lm_head): a causal LM, and vLLM's classifier command
        return _judge_usage(meta)
    sep = json.dumps(meta.separator)
    if not compatible:
        return ["## How to use it", "",
                f"This model's read-out (pooling `{meta.pooling}`, head `{meta.head}`) is not what a transformers "
                "`*ForSequenceClassification` class computes (one token through a linear head), so "
                "`AutoModelForSequenceClassification` would give different scores. Load it with rewardkit:", "",
                "```python", "import rewardkit", "scorer = rewardkit.load_model(\"PATH\")",
                "scorer.score([prompt], [response])", "```", "",
                "or serve it with `rewardkit serve PATH`."]
    if meta.kind == "encoder":
        tf_code = ["from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline",
                   "tok = AutoTokenizer.from_pretrained(\"PATH\")",
                   "model = AutoModelForSequenceClassification.from_pretrained(\"PATH\")",
                   "reward = model(**tok(prompt, response, return_tensors=\"pt\")).logits[0, 0]",
                   "# or: pipeline(\"text-classification\", model=\"PATH\", function_to_apply=\"none\")(",
                   "#         {\"text\": prompt, \"text_pair\": response})[0][\"score\"]"]
        recipe = ["The prompt and the response are a text pair: `[CLS] prompt [SEP] response [SEP]`; the reward is "
                  "read at `[CLS]` through the model's pooler and classifier."]
    else:
        tf_code = ["from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline",
                   "tok = AutoTokenizer.from_pretrained(\"PATH\")",
                   "model = AutoModelForSequenceClassification.from_pretrained(\"PATH\")",
                   "# plain text: the tokenizer appends the score token itself",
                   "reward = model(**tok(prompt + response, truncation=True, return_tensors=\"pt\")).logits[0, 0]",
                   "# or: pipeline(\"text-classification\", model=\"PATH\", function_to_apply=\"none\")(",
                   "#         prompt + response, truncation=True)[0][\"score\"]",
                   "# chat messages: the template already writes the special tokens",
                   "text = tok.apply_chat_template(messages, tokenize=False)",
                   "reward = model(**tok(text, add_special_tokens=False, truncation=True, "
                   "return_tensors=\"pt\")).logits[0, 0]"]
        recipe = [
            f"The reward is read at the score token `{meta.score_token}` appended after the response.",
            "",
            "- **Plain text**: the input is `prompt + response`; rewardkit inserts the separator "
            f"{sep} between them only when neither side has whitespace at the boundary (write it yourself in "
            "that case). The exported tokenizer's post-processor appends the EOS token whenever special tokens "
            "are added (the default of `tokenizer(text)` and of the pipeline), after the BOS token if the model "
            "uses one.",
            "- **Chat**: the exported chat template ends at the last end-of-turn token when no generation prompt "
            "is asked for (rewardkit drops the newline the original template writes after it); that token is "
            "the score token. Tokenize the rendered text with `add_special_tokens=False` (as "
            "`apply_chat_template(..., tokenize=True)` and TRL do), otherwise an extra EOS follows it.",
            f"- **Length**: rewardkit cuts sequences longer than {meta.max_length} tokens from the left of the "
            "prompt, keeping the response end and the score token; the exported tokenizer does the same with "
            "`truncation=True` (`truncation_side=\"left\"`, `model_max_length` "
            f"{meta.max_length}). Without it, longer inputs are scored whole and differ.",
            "- **Padding**: the tokenizer has its own pad token (never EOS) and pads on the right, so transformers' "
            "\"last non-pad token\" rule finds the score token. With left padding it finds it too, but "
            "transformers' default position ids ignore the attention mask: rotary models (Llama, Qwen2) keep their "
            "scores, models with absolute position embeddings (GPT-2) do not. Pad on the right.",
        ]
    combo = _combination(meta, weights)
    if combo:
        tf_code = [line.replace("logits[0, 0]", "logits  # then the formula above") for line in tf_code]
    lines = ["## How to use it", "", *recipe, *([""] + combo if combo else []), "", "### transformers", "", "```python", *tf_code, "```", "",
             "### TRL (GRPO / RLOO / PPO reward model)", "", "```python",
             "from trl import GRPOConfig, GRPOTrainer",
             "trainer = GRPOTrainer(model=policy, reward_funcs=\"PATH\", args=GRPOConfig(...), train_dataset=ds)",
             "```", "",
             "TRL tokenizes the reward model's input with `add_special_tokens=False` (trl 1.16 "
             "`GRPOTrainer._calculate_rewards`). With **conversational** prompts the trimmed chat template ends at "
             "the score token and TRL's rewards equal rewardkit's. With **plain-text** prompts nothing appends the "
             "score token, and TRL would read the reward one token early; pass the tokenizer returned by "
             "`rewardkit.export.score_token_tokenizer(\"PATH\")` as `reward_processing_classes` (it appends the "
             "score token whatever `add_special_tokens` says), or use conversational data.", "",
             *(["TRL takes `logits[:, 0]` as the reward, which for this head is not the reward: give TRL a "
                "reward function that applies the formula above instead.", ""] if combo else []),
             "### rewardkit", "", "```python", "import rewardkit",
             "rewardkit.load_model(\"PATH\").score([prompt], [response])", "```", "",
             "or `rewardkit serve PATH`."]
    return lines


_SOURCE_WORDS = {"model": "model directory", "run": "training run", "checkpoint": "training checkpoint"}


def write_card(out: Path, meta: ModelMeta, export_info: dict, run_dir: Path | None) -> None:
    compatible = export_info.get("transformers_compatible", True)
    checks = export_info.get("checks") or {}
    lines = ["---", "library_name: transformers", "pipeline_tag: text-classification",
             "tags: [reward-model, rlhf, rewardkit]", "---", "",
             f"# Reward model ({meta.kind}, based on `{meta.base_model or 'unknown'}`)", "",
             "A reward model trained with rewardkit: it reads a prompt and a response and returns one scalar; "
             f"higher is better. Exported in `{export_info.get('dtype')}` from a rewardkit "
             f"{_SOURCE_WORDS.get(export_info.get('source_kind'), 'model')}. In the code below, `PATH` is this "
             "directory."]
    if meta.normalization:
        lines += ["", f"Normalised reward (optional): `(reward - {meta.normalization['mean']:.6g}) / "
                  f"{meta.normalization['std']:.6g}` (mean and std fitted by `rewardkit eval --fit-normalization`)."]
    if not compatible:
        lines += ["", "> **Not loadable as a transformers sequence classifier with the same scores**: see "
                  "*How to use it*."]
    lines += ["", *_training_section(meta, run_dir), "",
              *_usage_section(meta, compatible, export_info.get("attribute_weights")), "",
              *(card_section(export_info["serving"]) + [""] if export_info.get("serving") else []),
              "## Export check", ""]
    if checks:
        lines.append(f"After writing, the directory was reloaded and {checks.get('probes')} probe examples "
                     f"({checks.get('chat_probes', 0)} conversations) were scored:")
        lines.append(f"- rewardkit on the export vs the source model: max |diff| "
                     f"{checks['fidelity_max_abs_diff']:.2e} ({export_info.get('dtype')})")
        if "interop_max_abs_diff" in checks:
            lines.append(f"- plain transformers vs rewardkit on the export (fp32): max |diff| "
                         f"{checks['interop_max_abs_diff']:.2e}")
    else:
        lines.append("The reload check was not run.")
    lines += ["", "## Rendering settings (`rewardkit.json`)", "", "```json",
              json.dumps({k: getattr(meta, k) for k in ("kind", "pooling", "mean_span", "head", "score_token",
                                                        "score_token_id", "template", "separator", "max_length",
                                                        "truncation", "normalization")}, indent=2), "```", ""]
    (out / "README.md").write_text("\n".join(lines), encoding="utf-8")
