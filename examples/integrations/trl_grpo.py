"""GRPO with TRL, rewarded by a rewardkit export: the scorer itself is the reward function.

    python examples/integrations/trl_grpo.py --policy Qwen/Qwen2.5-0.5B-Instruct --reward-model exported/rm \\
        --prompts prompts.jsonl --output-dir grpo --max-steps 100

``--prompts`` is a JSONL file with a ``prompt`` field per line: a string (plain text) or a list of chat messages
(``[{"role": "user", "content": ...}]``). ``rewardkit.load_model(DIR)`` returns a ``Scorer``; TRL calls it as
``reward_func(prompts=..., completions=..., **columns)`` and reads one float per completion, the same rewards
``rewardkit score`` gives (tests/integration/test_integration_examples.py runs this file for one step on CPU).
The alternative ``reward_funcs="exported/rm"`` (TRL loads the directory as a sequence classifier) is in the
model card; for plain-text prompts it needs ``rewardkit.export.score_token_tokenizer`` (see docs/serving.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", required=True, help="the policy: a causal LM name or directory")
    ap.add_argument("--reward-model", required=True, help="a `rewardkit export` directory (or any rewardkit model)")
    ap.add_argument("--prompts", required=True, help="JSONL with a `prompt` field (text or chat messages)")
    ap.add_argument("--output-dir", default="grpo")
    ap.add_argument("--max-steps", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=8, help="completions per device and step")
    ap.add_argument("--num-generations", type=int, default=8, help="completions per prompt (GRPO's group)")
    ap.add_argument("--max-completion-length", type=int, default=256)
    ap.add_argument("--normalize", action="store_true", help="rewards normalised with the model's statistics")
    ap.add_argument("--cpu", action="store_true", help="force CPU (tests; GRPO wants a GPU)")
    return ap.parse_args(argv)


def build_trainer(args: argparse.Namespace):
    import datasets
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    import rewardkit

    scorer = rewardkit.load_model(args.reward_model)
    scorer.normalize_rewards = args.normalize
    prompts = [json.loads(line)["prompt"] for line in Path(args.prompts).read_text().splitlines() if line.strip()]
    tok = AutoTokenizer.from_pretrained(args.policy)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    config = GRPOConfig(output_dir=args.output_dir, max_steps=args.max_steps,
                        per_device_train_batch_size=args.batch_size, num_generations=args.num_generations,
                        max_completion_length=args.max_completion_length, logging_steps=1, report_to=[],
                        save_strategy="no", use_cpu=args.cpu, bf16=not args.cpu, seed=0)
    return GRPOTrainer(model=args.policy, reward_funcs=[scorer], args=config, processing_class=tok,
                       train_dataset=datasets.Dataset.from_dict({"prompt": prompts}))


def main(argv: list[str] | None = None):
    trainer = build_trainer(parse_args(argv))
    trainer.train()
    return trainer


if __name__ == "__main__":
    main()
