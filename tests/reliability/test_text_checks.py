"""Lone surrogates, BOMs, repeated keys and huge texts: clear errors or correct results, never a crash."""

from __future__ import annotations

import json
import time

import pytest

from rewardkit.cli import main
from rewardkit.config import DataConfig, SplitConfig
from rewardkit.data.dataset import load_pairs
from rewardkit.data.errors import DataError, SkipReport
from rewardkit.data.render import Renderer
from rewardkit.data.tokenize import SequenceEncoder
from rewardkit.serve.scorer import Scorer
from rewardkit.serve.server import ServerConfig

from ..conftest import load_test_tokenizer
from ..integration.test_server import Running
from ..unit.test_score_batch import save_rewardkit_model

SURROGATE_LINE = '{"prompt": "q", "response": "caf\\ud800"}\n'


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir, tmp_path_factory):
    return save_rewardkit_model(tiny_model_dir("llama"), tmp_path_factory.mktemp("rk"))


def test_lone_surrogate_in_train_data_is_a_data_error_naming_the_field(tiny_model_dir, tmp_path):
    import rewardkit
    from rewardkit.config import load_config

    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "q", "chosen": "a\\ud800", "rejected": "b"}\n')
    cfg = load_config(None, None, base={"model": {"name": str(tiny_model_dir("llama"))},
                                        "data": {"train": str(data)}, "output_dir": str(tmp_path / "run"),
                                        "train": {"max_steps": 1, "tensorboard": False}})
    with pytest.raises(DataError, match=r"d\.jsonl:1: field 'chosen': text holds a lone surrogate"):
        rewardkit.train(cfg)
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_score_skips_a_lone_surrogate_record_and_counts_it(model_dir, tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text('{"prompt": "q", "response": "fine"}\n' + SURROGATE_LINE)
    out = tmp_path / "out.jsonl"
    assert main(["score", str(model_dir), str(src), "-o", str(out), "--on-invalid", "skip"]) == 0
    assert "1 invalid skipped" in capsys.readouterr().out
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 1 and isinstance(rows[0]["reward"], float)
    assert main(["score", str(model_dir), str(src), "-o", str(tmp_path / "o2.jsonl")]) == 2
    assert "in.jsonl:2: field 'response': text holds a lone surrogate" in capsys.readouterr().err


def test_server_answers_422_for_a_lone_surrogate_and_a_repeated_key(model_dir):
    with Running(Scorer.from_pretrained(model_dir), ServerConfig()) as server:
        status, body = server.post("/score", None, token=None, raw=b'[{"prompt": "q", "response": "a\\udc00"}]')
        assert status == 422, body
        (err,) = body["detail"]
        assert err["loc"] == ["body", 0, "response"] and err["type"] == "invalid_text"
        status, body = server.post("/get_reward", None, token=None, raw=b'{"query": ["\\ud800 x"]}')
        assert status == 422 and body["detail"][0]["loc"] == ["body", "query", 0]
        status, body = server.post("/score", None, token=None,
                                   raw=b'[{"prompt": "q", "response": "a", "response": "b"}]')
        assert status == 422 and body["detail"][0]["type"] == "duplicate_key"
        assert server.post("/score", [{"prompt": "q", "response": "ok \\ud800 as text"}], token=None)[0] == 200


@pytest.mark.parametrize("suffix", ["jsonl", "json"])
def test_a_utf8_bom_at_the_start_of_a_json_file_is_accepted(suffix, tmp_path):
    rec = {"prompt": "q", "chosen": "a", "rejected": "b"}
    text = json.dumps(rec) + "\n" + json.dumps(rec | {"chosen": "c"}) + "\n" if suffix == "jsonl" else \
        json.dumps([rec, rec | {"chosen": "c"}])
    path = tmp_path / f"bom.{suffix}"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    pairs = load_pairs(SplitConfig(path=str(path)), DataConfig(), SkipReport())
    assert [p.chosen for p in pairs] == ["a", "c"] and pairs[0].prompt == "q"


@pytest.mark.parametrize("tok_name,kind", [("gpt2", "decoder"), ("bert", "encoder")])
def test_huge_texts_are_cut_by_characters_first_with_the_same_tokens_kept(tok_name, kind, tokenizer_dirs):
    tok = load_test_tokenizer(tokenizer_dirs, tok_name)
    renderer = Renderer(tok, kind)
    words = " ".join(f"w{i % 997}" for i in range(30_000))  # ~150k characters
    cases = [("Q: " + words, " the answer is here"), ("Q:", " " + words + " THE END"), (words, " " + words),
             ("Q:" + " " * 100_000 + "end", " a" + " " * 100_000 + " b")]  # whitespace runs: few tokens
    for i, (prompt, response) in enumerate(cases):
        fast, whole = SequenceEncoder(tok, kind, 64), SequenceEncoder(tok, kind, 64)
        whole._char_bound = None  # the old path: tokenize everything
        group = [renderer.render(prompt, response), renderer.render(prompt, " short")]
        assert fast.encode_group(group) == whole.encode_group(group)
        assert fast.stats.summary() == whole.stats.summary()
        if i < 3:  # these really took the character cut (the whitespace runs may fall back to the whole text)
            assert fast._split(group[0]).cut


def test_a_50mb_response_is_not_tokenized_whole(tokenizer_dirs):
    tok = load_test_tokenizer(tokenizer_dirs, "gpt2")
    encoder = SequenceEncoder(tok, "decoder", 512)
    huge = " " + "lorem ipsum dolor sit amet " * 2_000_000  # 54 MB
    t0 = time.perf_counter()
    enc = encoder.encode(Renderer(tok, "decoder").render("Q:", huge + "THE END"))
    assert time.perf_counter() - t0 < 10  # whole, it took over a minute and GBs of offsets
    assert len(enc.input_ids) == 512 and tok.decode(enc.input_ids[-3:-1]).strip() == "THE END"
