"""An A/B file with integer winner labels trains, evaluates and inspects without conversion (CLI overrides)."""

import json

from rewardkit.cli import main

from ..conftest import HH_SAMPLE

AB = ["--data.format", "ab", "--data.fields.prompt", "input", "--data.winner.a", "1", "--data.winner.b", "2",
      "--data.winner.tie", "0"]


def _ab_rows() -> list[dict]:
    rows = []
    for i, r in enumerate(HH_SAMPLE * 4):
        prompt, _, good = r["chosen"].rpartition("\n\nAssistant:")
        bad = r["rejected"].rpartition("\n\nAssistant:")[2]
        a, b, w = (good, bad, 1) if i % 2 else (bad, good, 2)
        rows.append({"input": prompt + "\n\nAssistant:", "response_a": a, "response_b": b, "winner": w})
    rows.append({"input": "\n\nHuman: Hi\n\nAssistant:", "response_a": " Hello", "response_b": " Hey", "winner": 0})
    return rows


def test_ab_file_with_integer_winners_trains_evaluates_and_inspects(tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "arena.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _ab_rows()))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"model: {{name: {tiny_model_dir('llama')}}}\ndata: {{train: {{path: {data}}}, max_length: 64}}\n"
                   f"train: {{max_steps: 2, batch_size: 4, tensorboard: false, eval_zero_shot: false}}\n"
                   f"output_dir: {tmp_path / 'run'}\n")
    assert main(["train", str(cfg), *AB]) == 0
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run"), str(data), "--json", "--bootstrap", "0", *AB]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["pairs"] == 16 and m["invalid"]["by_reason"] == {"tie": 1}
    assert main(["data", "inspect", str(data), "--json", *AB]) == 0
    ins = json.loads(capsys.readouterr().out)
    assert ins["format"] == "pairs" and ins["examples"] == 16 and ins["skipped"] == {"tie": 1}


def test_ab_ties_train_with_the_soft_ranking_loss(tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "arena.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _ab_rows()))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"model: {{name: {tiny_model_dir('llama')}}}\n"
                   f"data: {{train: {{path: {data}}}, eval: {{path: {data}}}, max_length: 64}}\n"
                   "loss: {name: ranking, ties: soft}\n"
                   f"train: {{max_steps: 2, batch_size: 4, tensorboard: false, eval_zero_shot: false}}\n"
                   f"output_dir: {tmp_path / 'run'}\n")
    assert main(["train", str(cfg), *AB, "--data.ties", "train"]) == 0
    evals = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    final = [x for x in evals if x.get("split") == "eval"][-1]
    assert final["prompts"] == 17 and final["ranked_pairs"] == 16  # the tie is trained on, not a winner pair
