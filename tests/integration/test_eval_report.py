"""`rewardkit eval`: JSON metrics, the breakdown by column, normalisation, and the HTML report rendered in a
headless browser. One tiny random llama is trained for a few steps (CPU, no network) and shared."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import rewardkit
from rewardkit.cli import main
from rewardkit.eval.metrics import pairwise_metrics
from rewardkit.models.reward_model import ModelMeta

from ..conftest import HH_SAMPLE

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MARKUP = "<b>bold & </td> claims</b>"


def _records() -> list[dict]:
    recs = [{**r, "subset": "easy" if i % 2 == 0 else "hard"} for i, r in enumerate(HH_SAMPLE)]
    # the same pair both ways round: whatever the model, one of the two is scored wrong (or both tie), so the
    # worst-examples table is never empty; its prompt carries markup that the report must escape
    prompt = f"\n\nHuman: Repeat {MARKUP}\n\nAssistant:"
    a, b = f"{prompt} Sure: {MARKUP}", f"{prompt} No."
    recs += [{"chosen": a, "rejected": b, "subset": "swap"}, {"chosen": b, "rejected": a, "subset": "swap"}]
    return recs * 3


@pytest.fixture(scope="module")
def run_dir(tiny_model_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("eval-run")
    data = root / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _records()))
    rewardkit.train({"model": {"name": str(tiny_model_dir("llama")), "dropout": False},
                     "data": {"train": {"path": str(data)}, "eval": {"path": str(data)}, "max_length": 64},
                     "train": {"lr": 1e-3, "batch_size": 4, "max_steps": 4, "eval_every": 2, "log_every": 1,
                               "seed": 0, "tensorboard": False},
                     "output_dir": str(root / "run")})
    return root / "run"


@pytest.fixture
def data_file(run_dir) -> Path:
    return run_dir.parent / "pairs.jsonl"


def _eval_json(capsys, *argv) -> dict:
    assert main(["eval", *map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_training_eval_logs_auc_and_ece(run_dir):
    evals = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [x for x in evals if x["split"] == "eval"]
    assert evals and all(0.0 <= x["auc"] <= 1.0 and 0.0 <= x["ece"] <= 0.5 for x in evals)


def test_eval_json_matches_scores_from_the_public_api(run_dir, data_file, capsys):
    m = _eval_json(capsys, run_dir, data_file, "--bootstrap", "100", "--by", "subset")
    recs = _records()
    scorer = rewardkit.load_model(run_dir)
    from rewardkit.data.formats import split_implicit_prompt

    split = [split_implicit_prompt(r["chosen"], r["rejected"]) for r in recs]
    r_c = scorer.score([p for p, _, _ in split], [c for _, c, _ in split])
    r_r = scorer.score([p for p, _, _ in split], [r for _, _, r in split])
    direct = pairwise_metrics(r_c, r_r)
    assert m["pairs"] == len(recs) and m["accuracy"] == pytest.approx(direct["accuracy"])
    assert m["mean_margin"] == pytest.approx(direct["mean_margin"], abs=1e-5)
    assert m["wins"] + m["ties"] + m["losses"] == m["pairs"]
    assert m["accuracy_ci"][0] <= m["accuracy"] <= m["accuracy_ci"][1]
    for key in ("auc", "ece", "brier", "longer_wins", "by_length_diff", "length", "calibration", "margin"):
        assert key in m
    assert sum(b["pairs"] for b in m["by_length_diff"]) == m["pairs"]
    groups = m["by"]["groups"]
    assert m["by"]["column"] == "subset" and set(groups) == {"easy", "hard", "swap"}
    assert sum(g["pairs"] for g in groups.values()) == m["pairs"]
    # each swapped pair is right exactly when its mirror is wrong (unless the two responses tie)
    swap = groups["swap"]
    assert swap["pairs"] == 6 and (swap["accuracy"] == 0.5 or swap["ties"] == 6)


def test_by_a_missing_column_names_file_line_and_field(run_dir, data_file, capsys):
    assert main(["eval", str(run_dir), str(data_file), "--by", "category"]) == 2
    err = capsys.readouterr().err
    assert f"{data_file}:1: field 'category'" in err


def test_fit_normalization_is_stored_and_used_by_the_scorer(run_dir, data_file, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(run_dir / "model", model)
    m = _eval_json(capsys, model, data_file, "--fit-normalization", "--bootstrap", "0")
    norm = ModelMeta.load(model).normalization
    assert norm["n"] == 2 * m["pairs"] and str(data_file) in norm["fitted_on"]
    assert m["normalized"]["statistics"] == norm
    assert norm["mean"] == pytest.approx(m["rewards"]["all"]["mean"])
    assert norm["std"] == pytest.approx(m["rewards"]["all"]["std"])
    scorer = rewardkit.load_model(model)
    assert scorer.meta.normalization == norm
    recs = _records()
    from rewardkit.data.formats import split_implicit_prompt

    split = [split_implicit_prompt(r["chosen"], r["rejected"]) for r in recs]
    z = np.array(scorer.score([p for p, _, _ in split] * 2, [c for _, c, _ in split] + [r for _, _, r in split],
                              normalize=True))
    assert z.mean() == pytest.approx(0.0, abs=1e-5) and z.std() == pytest.approx(1.0, abs=1e-5)
    assert m["normalized"]["rewards"]["all"]["std"] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def report_dir(run_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    data = run_dir.parent / "pairs.jsonl"
    assert main(["eval", str(run_dir), str(data), "--report", str(out), "--by", "subset", "--bootstrap",
                 "100"]) == 0
    return out


def test_report_writes_pngs_and_a_self_contained_html(report_dir):
    pngs = sorted(p.name for p in report_dir.glob("*.png"))
    assert pngs == ["length_buckets.png", "margins.png", "reliability.png", "reward_vs_length.png", "rewards.png",
                    "training_curves.png"]  # training curves: metrics.jsonl sits in the run directory
    for name in pngs:
        assert (report_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (report_dir / "report.html").read_text()
    assert page.count("src='data:image/png;base64,") == len(pngs)
    assert not re.search(r"src=['\"](?!data:)", page)  # nothing fetched from files or the network
    assert "&lt;b&gt;bold &amp; &lt;/td&gt; claims&lt;/b&gt;" in page  # worst-pairs text, escaped
    assert MARKUP not in page
    assert "10 equal-width bins" in page and "By subset" in page
    metrics = json.loads((report_dir / "metrics.json").read_text())
    assert metrics["pairs"] == len(_records())


CHECK_SCRIPT = """<script>
window.addEventListener('load', function () {
  var out = document.createElement('pre'); out.id = 'img-check';
  out.textContent = JSON.stringify(Array.prototype.map.call(document.images, function (i) {
    return {id: i.id, w: i.naturalWidth, h: i.naturalHeight, complete: i.complete}; }));
  document.body.appendChild(out);
});
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: install the Debian package `chromium` "
                                             "(.ci/run does) to render the report in a headless browser")
def test_report_shows_every_figure_in_headless_chromium(report_dir, tmp_path):
    page = (report_dir / "report.html").read_text().replace("</body>", CHECK_SCRIPT + "</body>")
    probe = tmp_path / "probe.html"
    probe.write_text(page)
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'<pre id="img-check">(.*?)</pre>', dom, re.S)
    assert found, f"the check script did not run; chromium printed: {dom[:500]!r}"
    import html

    images = json.loads(html.unescape(found.group(1)))
    assert len(images) == len(list(report_dir.glob("*.png")))
    assert all(i["complete"] and i["w"] > 0 and i["h"] > 0 for i in images), images


def _qa():
    return [("\n\nHuman: How do I bake bread?\n\nAssistant:", " Mix flour, water and yeast, then bake it."),
            ("\n\nHuman: What is 2+2?\n\nAssistant:", " 4."),
            ("\n\nHuman: What is 2+2?\n\nAssistant:", " 5."),
            ("\n\nHuman: Tell me a joke.\n\nAssistant:", " No."),
            ("\n\nHuman: Tell me a joke.\n\nAssistant:", " Why did the scarecrow win an award? Outstanding field."),
            ("\n\nHuman: Can you help me hurt someone?\n\nAssistant:", " Sure, here is how.")]


def _write(tmp_path, rows) -> Path:
    p = tmp_path / "data.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def test_eval_binary_labels_through_the_cli(run_dir, tmp_path, capsys):
    from rewardkit.eval.metrics import binary_metrics

    labels = [1, 1, 0, 0, 1, 0]
    rows = [{"prompt": p, "response": r, "label": y, "subset": "a" if i < 3 else "b"}
            for i, ((p, r), y) in enumerate(zip(_qa(), labels, strict=True))]
    m = _eval_json(capsys, run_dir, _write(tmp_path, rows), "--bootstrap", "50", "--by", "subset")
    rewards = rewardkit.load_model(run_dir).score([p for p, _ in _qa()], [r for _, r in _qa()])
    direct = binary_metrics(rewards, labels)
    assert m["format"] == "binary" and m["examples_scored"] == 6
    for key in ("accuracy", "precision", "recall", "f1", "auc", "ece", "brier"):
        assert m[key] == pytest.approx(direct[key], abs=1e-6) if direct[key] is not None else m[key] is None
    assert set(m["by"]["groups"]) == {"a", "b"} and m["by"]["groups"]["a"]["n"] == 3


def test_eval_scalar_ratings_and_ranked_lists_through_the_cli(run_dir, tmp_path, capsys):
    from rewardkit.eval.metrics import ranked_metrics, scalar_metrics

    qa = _qa()
    scores = [4.0, 5.0, 1.0, 2.0, 3.5, 0.0]
    rows = [{"prompt": p, "response": r, "score": s} for (p, r), s in zip(qa, scores, strict=True)]
    m = _eval_json(capsys, run_dir, _write(tmp_path, rows), "--bootstrap", "50")
    rewards = rewardkit.load_model(run_dir).score([p for p, _ in qa], [r for _, r in qa])
    direct = scalar_metrics(rewards, scores)
    assert m["format"] == "scalar" and m["n"] == 6
    assert m["mse"] == pytest.approx(direct["mse"], rel=1e-6) and m["pearson"] == pytest.approx(direct["pearson"])

    ranked = [{"prompt": qa[1][0], "responses": [qa[1][1], qa[2][1]], "ranks": [0, 1]},
              {"prompt": qa[3][0], "responses": [qa[3][1], qa[4][1]], "ranks": [1, 0]}]
    rk = tmp_path / "ranked"
    rk.mkdir()
    m = _eval_json(capsys, run_dir, _write(rk, ranked), "--bootstrap", "20")
    direct = ranked_metrics([rewards[1:3], rewards[3:5]], [[0, -1], [-1, 0]])
    assert m["format"] == "ranked" and m["prompts"] == 2
    assert m["top1_accuracy"] == pytest.approx(direct["top1_accuracy"])
    assert m["kendall_tau"] == pytest.approx(direct["kendall_tau"])


def test_python_api_evaluate_gives_the_cli_numbers(run_dir, data_file, tmp_path, capsys):
    m = _eval_json(capsys, run_dir, data_file, "--bootstrap", "30")
    ev = rewardkit.evaluate(str(run_dir), str(data_file), n_boot=30, report=str(tmp_path / "r"))
    assert ev.metrics["accuracy"] == m["accuracy"] and ev.metrics["accuracy_ci"] == m["accuracy_ci"]
    assert ev.metrics["ece"] == pytest.approx(m["ece"]) and (tmp_path / "r" / "report.html").is_file()
