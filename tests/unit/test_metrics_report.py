"""Report helpers that need no model: the worst-pairs order, the training log reader, escaping, normalisation."""

import json

import numpy as np
import pytest

from rewardkit.data.formats import Pair
from rewardkit.eval.evaluate import PairEvaluation, attach_normalization, fit_normalization
from rewardkit.eval.metrics import pairwise_report
from rewardkit.eval.report import read_training_log, render_html, worst_pairs, write_report


def _evaluation(r_c, r_r, texts=None) -> PairEvaluation:
    n = len(r_c)
    texts = texts or [f"response {i}" for i in range(n)]
    pairs = [Pair(prompt=f"prompt {i}", chosen=t, rejected="other", margin=None, where=f"f.jsonl:{i + 1}")
             for i, t in enumerate(texts)]
    lc, lr = np.array([len(t) for t in texts], float), np.full(n, 5.0)
    m = pairwise_report(r_c, r_r, lc, lr, n_boot=20)
    m.update(data={"source": "f.jsonl[0:]", "pairs_read": n, "pairs_scored": n},
             invalid={"skipped": 0}, truncation={})
    return PairEvaluation(data="f.jsonl[0:]", pairs=pairs, r_chosen=np.asarray(r_c, float),
                          r_rejected=np.asarray(r_r, float), chosen_len=lc, rejected_len=lr, metrics=m)


def test_worst_pairs_are_the_largest_wrong_margins_without_ties():
    ev = _evaluation([0.0, 1.0, -3.0, 2.0, -1.0], [0.0, 0.0, 0.0, 0.0, 0.0])
    assert worst_pairs(ev, 10) == [2, 4]  # margins -3 then -1; the tie (pair 0) is not "wrong"
    assert worst_pairs(ev, 1) == [2]


def test_training_log_keeps_the_last_entry_of_a_step_logged_twice(tmp_path):
    log = tmp_path / "metrics.jsonl"
    rows = [{"step": 1, "split": "train", "loss": 0.7}, {"step": 2, "split": "train", "loss": 0.6},
            {"step": 2, "split": "train", "loss": 0.5}]  # a resumed run logs step 2 again
    log.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 3, "spl')  # a line being written
    out = read_training_log(log)
    assert {s: v["loss"] for s, v in out["train"].items()} == {1: 0.7, 2: 0.5}


def test_html_escapes_example_text_and_embeds_figures(tmp_path):
    ev = _evaluation([0.0, -2.0], [1.0, 0.0], texts=["<script>alert(1)</script>", "fine"])
    path = write_report(ev, tmp_path)
    page = path.read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("data:image/png;base64,") == 5  # no training log given: no training curves
    assert "no normalisation statistics" in page


def test_fit_normalization_gives_zero_mean_unit_std_and_the_report_shows_both():
    r = np.array([1.0, 3.0, 5.0, 7.0])
    norm = fit_normalization(r, "f.jsonl")
    assert norm == {"mean": 4.0, "std": pytest.approx(np.sqrt(5.0)), "fitted_on": "f.jsonl", "n": 4}
    with pytest.raises(ValueError, match="standard deviation is 0"):
        fit_normalization([2.0, 2.0], "f")
    ev = _evaluation([1.0, 7.0], [3.0, 5.0])
    attach_normalization(ev, norm)
    # normalised margins: (1-3)/sqrt5 and (7-5)/sqrt5 -> mean 0
    assert ev.metrics["normalized"]["mean_margin"] == pytest.approx(0.0)
    assert ev.metrics["normalized"]["rewards"]["all"]["mean"] == pytest.approx(0.0)
    page = render_html(ev, {}, "t")
    assert "normalised chosen" in page and "raw chosen" in page
