"""`rewardkit eval --suite`: each benchmark read in its official layout (parquet, save_to_disk, JSON), scored
with a plain transformers reward model, and the figures equal the suite's rules applied to the model's own
scores; partial data is reported as partial; the report and the baseline comparison."""

import json

import pytest

from rewardkit.cli import main
from rewardkit.eval.suites.rewardbench import score_rewardbench
from rewardkit.eval.suites.rewardbench2 import score_rewardbench2
from rewardkit.eval.suites.rmbench import score_rmbench
from rewardkit.serve.scorer import Scorer

QA = [("What is 2+2?", "4.", "5."), ("Capital of France?", "Paris.", "Rome, I think."),
      ("Say hello.", "Hello!", "No."), ("Name a fruit.", "An apple.", "A chair."),
      ("Is ice cold?", "Yes, ice is cold.", "No, ice is hot.")]


def _user(p):
    return [{"role": "user", "content": p}]


def _asst(r):
    return [{"role": "assistant", "content": r}]


def _eval_json(capsys, *argv) -> dict:
    assert main(["eval", *map(str, argv), "--json", "--bootstrap", "50"]) == 0
    return json.loads(capsys.readouterr().out)


def test_rewardbench_on_a_partial_parquet_file_reports_missing_subsets(tiny_model_dir, tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    subsets = ["alpacaeval-easy", "alpacaeval-easy", "mt-bench-easy", "hep-python", "math-prm"]
    rows = [{"prompt": p, "chosen": c, "rejected": r, "subset": s, "id": i}
            for i, ((p, c, r), s) in enumerate(zip(QA, subsets, strict=True))]
    path = tmp_path / "filtered.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    model = tiny_model_dir("qwen2")
    out = _eval_json(capsys, model, path, "--suite", "rewardbench")
    assert set(out) >= {"suite", "subsets", "sections", "overall", "missing_subsets", "rendering"}
    assert out["suite"] == "rewardbench" and "chat template" in out["rendering"]
    assert out["details"]["model_inferred"]["rendering"] == "the tokenizer's chat template"
    assert set(out["sections"]) == {"Chat", "Reasoning"} and out["partial_sections"] == ["Chat", "Reasoning"]
    assert len(out["missing_subsets"]) == 19 and "llmbar-natural" in out["missing_subsets"]
    scorer = Scorer.from_pretrained(model)
    c = scorer.score([_user(p) for p, _, _ in QA], [_asst(x) for _, x, _ in QA])
    r = scorer.score([_user(p) for p, _, _ in QA], [_asst(x) for _, _, x in QA])
    ref = score_rewardbench(subsets, c, r)
    assert out["subsets"] == ref.subsets
    assert out["sections"] == pytest.approx(ref.sections) and out["overall"] == pytest.approx(ref.overall)
    lo, hi = out["details"]["intervals"]["overall"]
    assert 0.0 <= lo <= hi <= 1.0


def test_rewardbench2_from_a_save_to_disk_directory(tiny_model_dir, tmp_path, capsys):
    import datasets

    rows = [{"id": "f1", "prompt": "What is 2+2?", "chosen": ["4."], "rejected": ["5.", "3.", "22."],
             "num_correct": 1, "subset": "Factuality"},
            {"id": "ref:0", "prompt": "Name a fruit.", "chosen": ["An apple."], "rejected": ["A chair."],
             "num_correct": 1, "subset": "Ties"},
            {"id": "tied:0", "prompt": "Name a fruit.", "chosen": ["An apple.", "A pear."],
             "rejected": ["A chair.", "A car."], "num_correct": 2, "subset": "Ties"}]
    d = tmp_path / "rb2"
    datasets.Dataset.from_list(rows).save_to_disk(str(d))
    model = tiny_model_dir("gpt2")
    out = _eval_json(capsys, model, d, "--suite", "rewardbench2")
    assert "plain format" in out["rendering"]
    scorer = Scorer.from_pretrained(model)
    scores = [scorer.score([_user(r["prompt"])] * (len(r["chosen"]) + len(r["rejected"])),
                           [_asst(x) for x in r["chosen"] + r["rejected"]]) for r in rows]
    ref = score_rewardbench2([r["subset"] for r in rows], [r["id"] for r in rows], scores,
                             [r["num_correct"] for r in rows])
    assert out["overall"] == pytest.approx(ref.overall)
    assert out["missing_subsets"] == ["Precise IF", "Math", "Safety", "Focus"]


def test_rmbench_from_a_json_array_and_report_against_a_baseline(tiny_model_dir, tmp_path, capsys):
    rows = [{"id": i, "prompt": p, "chosen": [c, c + " Indeed.", "**" + c + "**"],
             "rejected": [r, r + " Indeed.", "**" + r + "**"], "domain": d}
            for i, ((p, c, r), d) in enumerate(zip(QA, ["chat", "chat", "math", "safety-refuse", "code"],
                                                   strict=True))]
    path = tmp_path / "total_dataset.json"
    path.write_text(json.dumps(rows))
    model, base = tiny_model_dir("qwen2"), tiny_model_dir("gpt2")
    out = _eval_json(capsys, model, path, "--suite", "rm-bench", "--report", tmp_path / "rep", "--baseline", base)
    scorer = Scorer.from_pretrained(model)
    per = [scorer.score([_user(r["prompt"])] * 6, [_asst(x) for x in r["chosen"] + r["rejected"]]) for r in rows]
    ref = score_rmbench([r["domain"] for r in rows], [s[:3] for s in per], [s[3:] for s in per])
    assert out["sections"] == pytest.approx(ref.sections) and out["overall"] == pytest.approx(ref.overall)
    assert out["missing_subsets"] == [] and out["baseline"]["suite"] == "rm-bench"
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "rm-bench" in html and html.count("<img") == 1  # sections; length categories are RewardBench's


def test_a_row_missing_its_subset_is_an_error_naming_file_and_line(tiny_model_dir, tmp_path, capsys):
    path = tmp_path / "rb.jsonl"
    path.write_text(json.dumps({"prompt": "a", "chosen": "b", "rejected": "c", "subset": "shp"}) + "\n"
                    + json.dumps({"prompt": "a", "chosen": "b", "rejected": "c"}) + "\n")
    assert main(["eval", str(tiny_model_dir("gpt2")), str(path), "--suite", "rewardbench"]) == 2
    assert f"{path}:2: field 'subset'" in capsys.readouterr().err
