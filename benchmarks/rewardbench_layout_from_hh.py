"""Build a RewardBench-layout (`filtered` split) JSONL from the bundled hh-rlhf held-out records (1912 on):
single-turn prompts only, subsets assigned in turn over the five Safety and five Chat subsets (Chat Hard and
Reasoning left out on purpose, to show partial results). Usage: python benchmarks/rewardbench_layout_from_hh.py OUT.jsonl"""
import json
import sys
from itertools import islice

from rewardkit.data.formats import split_implicit_prompt
from rewardkit.data.readers import read_records

CHAT = ["alpacaeval-easy", "alpacaeval-length", "alpacaeval-hard", "mt-bench-easy", "mt-bench-med"]
SAFETY = ["refusals-dangerous", "refusals-offensive", "xstest-should-refuse", "xstest-should-respond", "donotanswer"]
rows = []
for rec in islice(read_records("builtin:hh-rlhf-harmless"), 1912, None):
    prompt, c, r = split_implicit_prompt(rec.data["chosen"], rec.data["rejected"])
    if prompt.count("\n\nHuman:") != 1 or not c.strip() or not r.strip() or c.strip() == r.strip():
        continue  # RewardBench prompts are one user turn
    human = prompt.removeprefix("\n\nHuman: ").removesuffix("\n\nAssistant:").strip()
    rows.append({"prompt": human, "chosen": c.strip(), "rejected": r.strip(), "id": rec.line})
names = SAFETY + CHAT  # every row gets a subset in turn; Chat Hard and Reasoning are left out on purpose
for i, row in enumerate(rows):
    row["subset"] = names[i % len(names)]
with open(sys.argv[1], "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows)
print(len(rows), "rows")
