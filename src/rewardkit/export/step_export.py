"""Export a process reward model (``head: step``) as a ``*ForTokenClassification`` directory.

The step head is the transformers class's linear layer applied to every token, so a token classifier computes
it exactly: ``AutoModelForTokenClassification`` gives 2 logits (wrong, right) at every token, and a step's score
is ``softmax(logits)[1]`` at its end token. A 1-logit (BCE) head is written as 2 classes ``[0, z]``:
``softmax([0, z])[1] = sigmoid(z)``, the same score, in the layout serving engines expect (vLLM's STEP pooler
applies a softmax over the returned classes; Qwen2.5-Math-PRM has the same 2-class head).

``rewardkit.json`` carries the rendering (separator or step token and its id); ``serving.json`` the vLLM pooler
settings: ``{"pooling_type": "STEP", "step_tag_id": ...}`` (checked by hand against vLLM 0.32 on CPU, see docs/prm.md). vLLM returns a score
at every occurrence of ``step_tag_id`` in the input, so it needs a token that marks step ends and nothing else:
a dedicated step token (``data.steps.step_token``). With a text separator the export still works for
transformers and rewardkit, and ``serving.json`` names the separator's token but warns that it can occur
elsewhere (in the prompt, or inside a chat template).

Export reloads the directory with plain transformers and checks its step scores against the source's on fixed
probes (fp32: 1e-4), so a silent mismatch cannot ship.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from pathlib import Path

import torch

from ..models.reward_model import META_FILE
from ..models.step_readout import step_probabilities
from .exporter import (
    _DTYPES,
    FIDELITY_TOL,
    ExportError,
    ExportResult,
    _write_meta,
    load_source,
    merged_finite,
)

log = logging.getLogger(__name__)

PROBES = [
    ("Start at 2. Add 3, add 4. What is the result?", ["2 + 3 = 5", "5 + 4 = 9"]),
    ("Start at 7. Subtract 2. What is the result?", ["7 - 2 = 6"]),
    ("Compute 12 * 3 step by step.", ["12 * 3 = 10 * 3 + 2 * 3", "= 30 + 6", "= 36"]),
]
SERVING_FILE = "serving.json"


def _head_name(module) -> str:
    for name in ("score", "classifier"):
        if isinstance(getattr(module, name, None), torch.nn.Linear):
            return name
    raise ExportError(f"{type(module).__name__} has no linear 'score' or 'classifier' head")


def token_classifier(hf, step_outputs: int):
    """A ``*ForTokenClassification`` copy of a step model's ``*ForSequenceClassification`` (2 classes)."""
    from transformers import AutoModelForTokenClassification

    config = copy.deepcopy(hf.config)
    config.num_labels = 2
    config.id2label, config.label2id = {0: "wrong", 1: "right"}, {"wrong": 0, "right": 1}
    config.architectures = None
    try:
        tc = AutoModelForTokenClassification.from_config(config, dtype=torch.float32)
    except ValueError as e:
        raise ExportError(f"transformers has no token-classification class for {type(hf).__name__}: {e}") from None
    missing, unexpected = tc.base_model.load_state_dict(hf.base_model.state_dict(), strict=False)
    if missing or unexpected:
        raise ExportError(f"backbone weights do not fit the token classifier (missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]})")
    src, dst = getattr(hf, _head_name(hf)), getattr(tc, _head_name(tc))
    with torch.no_grad():
        w = src.weight.float()
        dst.weight.copy_(torch.cat([torch.zeros_like(w), w]) if step_outputs == 1 else w)
        if dst.bias is not None:
            b = src.bias.float() if src.bias is not None else torch.zeros(w.shape[0])
            dst.bias.copy_(torch.cat([torch.zeros_like(b), b]) if step_outputs == 1 else b)
    return tc.eval()


def serving_settings(tokenizer, meta) -> dict:
    """vLLM STEP pooler settings, with a warning when the step tag is not a dedicated token."""
    steps = meta.steps or {}
    if steps.get("step_token"):
        tag_id, note = steps.get("step_token_id") or tokenizer.convert_tokens_to_ids(steps["step_token"]), None
    else:
        ids = tokenizer(steps.get("separator", "\n\n"), add_special_tokens=False)["input_ids"]
        tag_id = ids[-1]
        note = ("the step separator is text, not a dedicated token: vLLM returns a score at every occurrence of "
                "step_tag_id, also in the prompt; send the token ids rewardkit renders (Scorer.step_encoder) or "
                "retrain with data.steps.step_token")
    # no returned_token_ids: vLLM 0.32 selects those columns of the hidden states *before* a token classifier's
    # head (it is meant for LM-head PRMs) and fails; without it the STEP pooler returns softmax(logits) per step
    out = {"vllm": {"runner": "pooling", "pooler_config": {"pooling_type": "STEP", "step_tag_id": int(tag_id)},
                    "task": "token_classify"},
           "score": "softmax(logits)[1] at each step end = P(step is right)", "classes": ["wrong", "right"],
           "step_aggregate": meta.step_aggregate}
    if note:
        out["warning"] = note
    return out


def export_step_model(source: str | Path, out_dir: str | Path, dtype: str = "float32", overwrite: bool = False,
                      verify: bool = True) -> ExportResult:
    """Write ``out_dir`` as described in the module docstring; returns what was checked."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out}: exists and is not empty; choose a new directory")
    src = load_source(source)
    if src.meta.head != "step":
        raise ExportError(f"{src.path}: head {src.meta.head!r} is not a step head")
    before = _source_scores(src) if verify else []
    hf = merged_finite(src.model.hf)
    tc = token_classifier(hf, src.meta.step_outputs)
    tc.config.pad_token_id = src.tokenizer.pad_token_id
    out.mkdir(parents=True, exist_ok=True)
    tc.to(_DTYPES[dtype]).save_pretrained(out, safe_serialization=True)
    src.tokenizer.save_pretrained(out)
    meta = copy.deepcopy(src.meta)
    meta.step_outputs = 2  # [0, z] for a BCE head: the same scores
    serving = serving_settings(src.tokenizer, meta)
    (out / SERVING_FILE).write_text(json.dumps(serving, indent=2) + "\n", encoding="utf-8")
    info = {"dtype": dtype, "source": str(src.path), "source_kind": src.kind, "transformers_compatible": True,
            "readout": "token_classification", "transformers_class": type(tc).__name__, "serving": serving}
    _write_meta(out, meta, info)
    checks = _verify(out, before, dtype) if verify else {}
    info["checks"] = checks
    _write_meta(out, meta, info)
    write_step_card(out, meta, info, src.run_dir)
    log.info("exported step model %s -> %s (%s); checks %s", src.path, out, type(tc).__name__, checks)
    return ExportResult(out, dtype, True, "logits", checks)


def write_step_card(out: Path, meta, info: dict, run_dir: Path | None) -> None:
    """README.md: what the model is, how it was trained and scored, and how transformers and vLLM read it."""
    from .card import _training_section

    steps, serving, checks = meta.steps or {}, info["serving"], info.get("checks") or {}
    pooler = serving["vllm"]["pooler_config"]
    if steps.get("step_token"):
        tag = f"the step token `{steps['step_token']}` (id {pooler['step_tag_id']})"
    else:
        tag = f"the separator {json.dumps(steps.get('separator', chr(10) * 2))}"
    code = [
        "from transformers import AutoModelForTokenClassification, AutoTokenizer",
        'tok = AutoTokenizer.from_pretrained("PATH")',
        'model = AutoModelForTokenClassification.from_pretrained("PATH")',
        'ids, ends = tok(prompt + sep, add_special_tokens=True)["input_ids"], []',
        "for step in steps:",
        '    ids += tok(step + tag, add_special_tokens=False)["input_ids"]',
        "    ends.append(len(ids) - 1)",
        "step_scores = model(input_ids=torch.tensor([ids])).logits[0, ends].softmax(-1)[:, 1]",
    ]
    vllm = [
        "from vllm import LLM",
        f'llm = LLM(model="PATH", runner="pooling", pooler_config={pooler!r})',
        'out = llm.encode([{"prompt_token_ids": ids}], pooling_task="token_classify")  # [n_steps, 2] per step',
    ]
    lines = [
        "---", "library_name: transformers", "pipeline_tag: token-classification",
        "tags: [reward-model, process-reward-model, rewardkit]", "---", "",
        f"# Process reward model (based on `{meta.base_model or 'unknown'}`)", "",
        "Trained with rewardkit: it reads a prompt and a solution written as steps and returns, at the end of "
        "every step, the probability that the step is right. A solution's reward is the "
        f"`{meta.step_aggregate}` of its step scores. Exported as `{info['transformers_class']}` "
        f"({info['dtype']}); `PATH` below is this directory.", "",
        *_training_section(meta, run_dir), "", "## How to use it", "",
        f"Write the prompt, then each step followed by {tag}; a text prompt is joined to the first step with "
        f"{json.dumps(meta.separator)} unless it ends in whitespace. Each step (with its tag) is tokenized on its "
        "own and the ids concatenated, so a step's score never depends on later steps. The score of a step is "
        "`softmax(logits)[1]` at its tag's last token (classes: wrong, right).", "",
        "### transformers", "", "```python", *code, "```", "",
        "### vLLM (STEP pooler)", "", "```bash",
        f"vllm serve PATH --runner pooling --pooler-config '{json.dumps(pooler)}'", "```", "",
        "```python", *vllm, "```", "",
        "vLLM's STEP pooler returns the softmax over the classes at every occurrence of `step_tag_id` "
        "(`LLM.encode(..., pooling_task=\"token_classify\")`; older vLLM versions spell the option "
        "`--override-pooler-config`). Do not pass `returned_token_ids`: vLLM 0.32 applies it to the hidden states "
        "before the classifier.",
    ]
    if "warning" in serving:
        lines += ["", f"> {serving['warning']}"]
    lines += ["", "### rewardkit", "", "```python", "import rewardkit",
              'rewardkit.load_model("PATH").score_steps([prompt], [steps])[0]  # .step_rewards, .reward', "```", "",
              "or `rewardkit serve PATH` (POST /score with `{prompt, steps}` items).", "", "## Export check", ""]
    if checks:
        lines.append(f"Reloaded and scored {checks['probes']} probe solutions: rewardkit on the export vs the "
                     f"source, max |diff| {checks['fidelity_max_abs_diff']:.2e}; plain transformers (token "
                     f"classifier, softmax at the step ends) vs rewardkit, max |diff| "
                     f"{checks['interop_max_abs_diff']:.2e}.")
    else:
        lines.append("The reload check was not run.")
    (out / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _source_scores(src) -> list[list[float]]:
    from ..serve.scorer import Scorer

    scorer = Scorer(src.model, src.tokenizer, src.meta)
    return [s.step_rewards for s in scorer.score_steps([p for p, _ in PROBES], [s for _, s in PROBES])]


def transformers_step_scores(directory: str | Path, input_ids: list[int], step_ends: list[int]) -> list[float]:
    """A consumer's step scores: plain ``AutoModelForTokenClassification``, softmax at the step ends."""
    from transformers import AutoModelForTokenClassification

    model = AutoModelForTokenClassification.from_pretrained(directory, dtype=torch.float32).eval()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([input_ids])).logits[0]
    return step_probabilities(logits[step_ends]).tolist()


def _verify(out: Path, before: list[list[float]], dtype: str) -> dict:
    from ..data.steps import Stepwise
    from ..serve.scorer import Scorer

    exported = Scorer.from_pretrained(out)
    after = [s.step_rewards for s in exported.score_steps([p for p, _ in PROBES], [s for _, s in PROBES])]
    fidelity = max(abs(a - b) for x, y in zip(before, after, strict=True) for a, b in zip(x, y, strict=True))
    consumer = []
    for prompt, steps in PROBES:
        enc = exported.step_encoder.encode(Stepwise(prompt, steps, [None] * len(steps), "probe"))
        consumer.append(transformers_step_scores(out, enc.input_ids, enc.step_ends))
    interop = max(abs(a - b) for x, y in zip(after, consumer, strict=True) for a, b in zip(x, y, strict=True))
    checks = {"probes": len(PROBES), "fidelity_max_abs_diff": fidelity, "interop_max_abs_diff": interop}
    if not math.isfinite(fidelity) or fidelity > FIDELITY_TOL[dtype]:
        raise ExportError(f"{out}: exported step scores differ from the source by {fidelity:.3g}")
    if not math.isfinite(interop) or interop > 1e-4:
        raise ExportError(f"{out}: plain transformers step scores differ from rewardkit's by {interop:.3g}")
    if not (out / META_FILE).exists():
        raise ExportError(f"{out}: {META_FILE} was not written")
    return checks
