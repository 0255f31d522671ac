"""The bad-input catalogue: every case is a small file, the error it must give, and the skip reason.

The tests in ``test_bad_input.py`` run every case; the table in ``docs/bad-input.md`` is rendered from the
same cases and the messages they really produce, and a test fails when the two differ. Regenerate the table
after changing a message::

    python -m tests.reliability.catalogue          # rewrites the table in docs/bad-input.md
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "bad-input.md"
START, END = "<!-- catalogue:start -->", "<!-- catalogue:end -->"

GOOD = {"prompt": "Q: name a colour.", "chosen": "Blue.", "rejected": "Seven."}
GOOD_CHAT = {"chosen": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"}],
             "rejected": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Go away."}]}


def _jsonl(*records: object) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


def _user(text: str) -> dict:
    return {"role": "user", "content": text}


def _bot(text: str) -> dict:
    return {"role": "assistant", "content": text}


@dataclass(frozen=True)
class Case:
    name: str
    """What is wrong, in words (the table's first column)."""
    file: str
    """File name; its suffix picks the reader."""
    content: str | bytes
    reason: str
    """The DataError's reason: the key it is counted under in summary.json's ``data.invalid.by_reason``."""
    line: int | None
    field: str | None
    contains: str
    """A piece of the message that says what is wrong."""
    fmt: str = "pairs"
    """`pairs` loads through the training path (load_pairs); other formats through load_examples."""
    skippable: bool = True
    """With ``on_invalid: skip`` the bad record is skipped and counted; False for errors about the whole file,
    which stop the run in either mode."""
    data: dict = field(default_factory=dict)
    """Extra data-config keys (e.g. the over-length policy)."""
    encode: bool = False
    """The error comes when tokenizing (over-length with the `error` policy), not when reading."""


def _big_csv_field() -> str:
    return "prompt,chosen,rejected\nq,a,b\nq,\"" + "x" * 140_000 + "\",b\n"


PAIR_CASES = [
    Case("invalid JSON line", "bad.jsonl", _jsonl(GOOD, '{"prompt": "q", "chosen": "a"'), "invalid_json", 2, None,
         "invalid JSON"),
    Case("non-UTF-8 bytes on a JSONL line", "bad.jsonl",
         _jsonl(GOOD).encode() + b'{"prompt": "q", "chosen": "caf\xe9", "rejected": "b"}\n', "invalid_utf8", 2,
         None, "not valid UTF-8"),
    Case("number with more than 4300 digits", "bad.jsonl", _jsonl(GOOD, '{"prompt": "q", "chosen": "a", '
         '"rejected": "b", "margin": ' + "9" * 4400 + "}"), "invalid_json", 2, None, "unreadable JSON"),
    Case("JSONL line that is not an object", "bad.jsonl", _jsonl(GOOD, [1, 2]), "not_an_object", 2, None,
         "expected a JSON object, got list"),
    Case("missing chosen", "bad.jsonl", _jsonl(GOOD, {"prompt": "q", "rejected": "b"}), "missing_field", 2,
         "chosen", "missing"),
    Case("missing rejected (null)", "bad.jsonl", _jsonl(GOOD, {"prompt": "q", "chosen": "a", "rejected": None}),
         "missing_field", 2, "rejected", "missing"),
    Case("response of the wrong type", "bad.jsonl", _jsonl(GOOD, {"prompt": "q", "chosen": 5, "rejected": "b"}),
         "wrong_type", 2, "chosen", "got int"),
    Case("prompt of the wrong type", "bad.jsonl",
         _jsonl(GOOD, {"prompt": {"text": "q"}, "chosen": "a", "rejected": "b"}), "wrong_type", 2, "prompt",
         "got dict"),
    Case("empty response", "bad.jsonl", _jsonl(GOOD, {"prompt": "q", "chosen": "", "rejected": "b"}),
         "empty_response", 2, "chosen", "empty"),
    Case("whitespace-only response", "bad.jsonl", _jsonl(GOOD, {"prompt": "q", "chosen": "a", "rejected": " \n\t"}),
         "empty_response", 2, "rejected", "only whitespace"),
    Case("chosen identical to rejected", "bad.jsonl", _jsonl(GOOD, {"prompt": "q", "chosen": "a", "rejected": "a"}),
         "identical_responses", 2, "rejected", "identical"),
    Case("identical implicit-prompt dialogues", "bad.jsonl",
         _jsonl(GOOD, {"chosen": "\n\nHuman: hi\n\nAssistant: yo", "rejected": "\n\nHuman: hi\n\nAssistant: yo"}),
         "identical_responses", 2, "rejected", "identical"),
    Case("chosen text, rejected messages", "bad.jsonl",
         _jsonl(GOOD, {"prompt": "q", "chosen": "a", "rejected": [_bot("b")]}), "wrong_type", 2, "rejected",
         "both be text or both be messages"),
    Case("NaN margin", "bad.jsonl", _jsonl(GOOD, '{"prompt": "q", "chosen": "a", "rejected": "b", "margin": NaN}'),
         "not_finite", 2, "margin", "must be finite"),
    Case("infinite margin", "bad.jsonl", _jsonl(GOOD, {"prompt": "q", "chosen": "a", "rejected": "b",
                                                       "margin": "-inf"}), "not_finite", 2, "margin", "must be finite"),
    Case("margin too large for a float", "bad.jsonl",
         _jsonl(GOOD, '{"prompt": "q", "chosen": "a", "rejected": "b", "margin": 1' + "0" * 400 + "}"),
         "wrong_type", 2, "margin", "expected a number"),
    Case("margin that is not a number", "bad.jsonl",
         _jsonl(GOOD, {"prompt": "q", "chosen": "a", "rejected": "b", "margin": "big"}), "wrong_type", 2, "margin",
         "expected a number"),
    Case("margin that is a boolean", "bad.jsonl",
         _jsonl(GOOD, {"prompt": "q", "chosen": "a", "rejected": "b", "margin": True}), "wrong_type", 2, "margin",
         "expected a number, got True"),
    Case("lone surrogate in a response", "bad.jsonl", _jsonl(GOOD, '{"prompt": "q", "chosen": "a\\ud800b", '
         '"rejected": "b"}'), "invalid_text", 2, "chosen", "lone surrogate (\\ud800 at character 1)"),
    Case("lone surrogate in message content", "bad.jsonl", _jsonl(GOOD_CHAT, '{"chosen": [{"role": "user", '
         '"content": "hi"}, {"role": "assistant", "content": "\\udfff"}], "rejected": "x"}'), "invalid_text", 2,
         "chosen[1].content", "not valid Unicode"),
    Case("duplicated JSON key", "bad.jsonl", _jsonl(GOOD, '{"prompt": "q", "chosen": "a", "chosen": "b", '
         '"rejected": "c"}'), "duplicate_key", 2, "chosen", "appears more than once"),
    Case("message with an unknown role", "bad.jsonl",
         _jsonl(GOOD_CHAT, {"chosen": [_user("hi"), {"role": "narrator", "content": "x"}, _bot("a")],
                            "rejected": [_user("hi"), _bot("b")]}), "unknown_role", 2, "chosen[1].role",
         "unknown role 'narrator'"),
    Case("conversation without a final assistant turn", "bad.jsonl",
         _jsonl(GOOD_CHAT, {"prompt": [_user("hi")], "chosen": [_bot("a")], "rejected": [_bot("b"), _user("?")]}),
         "no_final_assistant", 2, "rejected", "must end with an assistant turn"),
    Case("responses that are user turns", "bad.jsonl",
         _jsonl(GOOD_CHAT, {"chosen": [_user("hi"), _user("a")], "rejected": [_user("hi"), _user("b")]}),
         "no_final_assistant", 2, "chosen", "must start with an assistant turn"),
    Case("message without content", "bad.jsonl",
         _jsonl(GOOD_CHAT, {"chosen": [{"role": "user"}, _bot("a")], "rejected": [_user("hi"), _bot("b")]}),
         "bad_message", 2, "chosen[0]", "needs 'role' and 'content'"),
    Case("message content that is not text", "bad.jsonl",
         _jsonl(GOOD_CHAT, {"chosen": [_user("hi"), {"role": "assistant", "content": ["a"]}],
                            "rejected": [_user("hi"), _bot("b")]}), "wrong_type", 2, "chosen[1].content",
         "expected text, got list"),
    Case("empty message list", "bad.jsonl", _jsonl(GOOD_CHAT, {"chosen": [], "rejected": [_user("hi"), _bot("b")]}),
         "wrong_type", 2, "chosen", "non-empty list"),
    Case("empty final assistant turn", "bad.jsonl",
         _jsonl(GOOD_CHAT, {"chosen": [_user("hi"), _bot("  ")], "rejected": [_user("hi"), _bot("b")]}),
         "empty_response", 2, "chosen", "final assistant turn is empty"),
    Case("duplicated id", "bad.jsonl", _jsonl({**GOOD, "id": "a1"}, {**GOOD, "chosen": "Red.", "id": "a1"}),
         "duplicate_id", 2, "id", "duplicated id 'a1', first on line 1"),
    Case("id that is not a scalar", "bad.jsonl", _jsonl({**GOOD, "id": "a1"}, {**GOOD, "id": ["a", 2]}),
         "wrong_type", 2, "id", "ids must be scalars"),
    Case("prompt longer than max_length (policy error)", "bad.jsonl",
         _jsonl(GOOD, {"prompt": "word " * 80, "chosen": "a", "rejected": "b"}), "too_long", 2, "prompt",
         "more than data.max_length=32", data={"max_length": 32, "truncation": "error"}, encode=True,
         skippable=False),
    Case("response longer than max_length (policy error)", "bad.jsonl",
         _jsonl(GOOD, {"prompt": "q", "chosen": "a", "rejected": "word " * 80}), "too_long", 2, "rejected",
         "more than data.max_length=32", data={"max_length": 32, "truncation": "error"}, encode=True,
         skippable=False),
    Case("duplicated key in a JSON file", "bad.json", '[{"prompt": "q", "chosen": "a", "rejected": "b", '
         '"rejected": "c"}]', "duplicate_key", None, "rejected", "appears more than once", skippable=False),
    Case("lone surrogate in a JSON file", "bad.json", _jsonl(GOOD)[:-1].join("[]")[:-1] + ', {"prompt": '
         '"\\ud83d", "chosen": "a", "rejected": "b"}]', "invalid_text", 2, "prompt", "lone surrogate"),
    Case("CSV without a needed column", "bad.csv", "prompt,chosen\nq,a\nq,c\n", "missing_field", 2, "rejected",
         "missing", skippable=False),
    Case("CSV row with too few cells", "bad.csv", "prompt,chosen,rejected\nq,a,b\nq,a\n", "missing_field", 3,
         "rejected", "column is missing on this row"),
    Case("CSV row with too many cells", "bad.csv", "prompt,chosen,rejected\nq,a,b\nq,a,b,c\n", "csv_columns", 3,
         None, "quote fields that contain commas"),
    Case("CSV field over the csv module's limit", "bad.csv", _big_csv_field(), "invalid_csv", 3, None,
         "unreadable CSV", skippable=False),
    Case("non-UTF-8 CSV", "bad.csv", b"prompt,chosen,rejected\nq,caf\xe9,b\n", "invalid_utf8", None, None,
         "not valid UTF-8", skippable=False),
    Case("JSON whose top level is not a list", "bad.json", json.dumps("hello"), "not_an_array", None, None,
         "expected a JSON array of objects, got str", skippable=False),
    Case("JSON array item that is not an object", "bad.json", json.dumps([GOOD, 5]), "not_an_object", 2, None,
         "item 2 is a int"),
    Case("JSON file that does not parse", "bad.json", '[{"prompt": "q",\n "chosen": }]', "invalid_json", 2, None,
         "invalid JSON", skippable=False),
    Case("empty file", "empty.jsonl", "", "empty", None, None, "the file holds no records", skippable=False),
    Case("file of blank lines", "blank.jsonl", "\n  \n\n", "empty", None, None, "the file holds no records",
         skippable=False),
    Case("row range past the end of the file", "short.jsonl", _jsonl(GOOD), "empty", None, None,
         "no records in the row range [5, None)", skippable=False, data={"train_start": 5}),
    Case("unsupported file type", "bad.txt", "chosen,rejected\n", "unsupported_file", None, None,
         "unsupported file type '.txt'", skippable=False),
    Case("corrupt gzip", "bad.jsonl.gz", gzip.compress(_jsonl(GOOD).encode())[:25], "invalid_gzip", None, None,
         "not a readable gzip file", skippable=False),
    Case("corrupt Parquet", "bad.parquet", b"PAR1 this is not parquet PAR1", "invalid_parquet", None, None,
         "not a readable Parquet file", skippable=False),
]

# Binary, scalar, multi-attribute and ranked records: parsers by issue 3 (data formats), loaded with
# load_examples and data.format set explicitly.
GOOD_BINARY = {"prompt": "q", "response": "a", "label": 1}
GOOD_SCALAR = {"prompt": "q", "response": "a", "score": 0.5}
GOOD_MULTI = {"prompt": "q", "response": "a", "scores": {"helpful": 0.5, "safe": 1.0}}
GOOD_RANKED = {"prompt": "q", "responses": ["a", "b", "c"], "ranks": [0, 1, 2]}

FORMAT_CASES = [
    Case("label not 0/1", "bad.jsonl", _jsonl(GOOD_BINARY, {**GOOD_BINARY, "label": 2}), "bad_label", 2, "label",
         "expected 1/0", fmt="binary"),
    Case("label missing", "bad.jsonl", _jsonl(GOOD_BINARY, {"prompt": "q", "response": "a"}), "missing_field", 2,
         "label", "missing", fmt="binary"),
    Case("binary response empty", "bad.jsonl", _jsonl(GOOD_BINARY, {**GOOD_BINARY, "response": " "}),
         "empty_response", 2, "response", "empty", fmt="binary"),
    Case("NaN score", "bad.jsonl", _jsonl(GOOD_SCALAR, '{"prompt": "q", "response": "a", "score": NaN}'),
         "not_finite", 2, "score", "must be finite", fmt="scalar"),
    Case("score that is not a number", "bad.jsonl", _jsonl(GOOD_SCALAR, {**GOOD_SCALAR, "score": "good"}),
         "wrong_type", 2, "score", "expected a number", fmt="scalar"),
    Case("score too large for a float", "bad.jsonl",
         _jsonl(GOOD_SCALAR, '{"prompt": "q", "response": "a", "score": 1' + "0" * 400 + "}"), "wrong_type", 2,
         "score", "expected a number", fmt="scalar"),
    Case("multi-attribute scores all null", "bad.jsonl",
         _jsonl(GOOD_MULTI, {**GOOD_MULTI, "scores": {"helpful": None}}), "no_scores", 2, "scores", "every attribute",
         fmt="multi"),
    Case("multi-attribute score infinite", "bad.jsonl",
         _jsonl(GOOD_MULTI, '{"prompt": "q", "response": "a", "scores": {"helpful": Infinity}}'), "not_finite", 2,
         "scores.helpful", "must be finite", fmt="multi"),
    Case("ranks not matching the responses", "bad.jsonl", _jsonl(GOOD_RANKED, {**GOOD_RANKED, "ranks": [0, 1]}),
         "rank_count", 2, "ranks", "expected a list of 3 ranks", fmt="ranked"),
    Case("negative rank", "bad.jsonl", _jsonl(GOOD_RANKED, {**GOOD_RANKED, "ranks": [0, -1, 2]}), "bad_rank", 2,
         "ranks[1]", "expected an integer >= 0", fmt="ranked"),
    Case("every response tied", "bad.jsonl", _jsonl(GOOD_RANKED, {**GOOD_RANKED, "ranks": [1, 1, 1]}), "all_tied",
         2, "ranks", "same rank", fmt="ranked"),
    Case("a single response to rank", "bad.jsonl", _jsonl(GOOD_RANKED, {**GOOD_RANKED, "responses": ["a"],
                                                                         "ranks": [0]}),
         "too_few_responses", 2, "responses", "at least 2", fmt="ranked"),
]

CASES = PAIR_CASES + FORMAT_CASES


def write_case(case: Case, directory: Path) -> Path:
    path = directory / case.file
    if isinstance(case.content, bytes):
        path.write_bytes(case.content)
    else:
        path.write_text(case.content, encoding="utf-8")
    return path


def data_config(case: Case, path: Path, on_invalid: str):
    from rewardkit.config import DataConfig, SplitConfig

    extra = dict(case.data)
    start = extra.pop("train_start", 0)
    kwargs = {"on_invalid": on_invalid, "train": SplitConfig(path=str(path), start=start), **extra}
    if case.fmt != "pairs":
        kwargs["format"] = case.fmt
    return DataConfig(**kwargs)


def run_case(case: Case, path: Path, on_invalid: str = "error", tokenizer=None):
    """Load (and for over-length cases, encode) the case's file; returns (examples, SkipReport)."""
    from rewardkit.data.dataset import encode_pairs, load_pairs
    from rewardkit.data.errors import SkipReport

    data = data_config(case, path, on_invalid)
    report = SkipReport()
    if case.fmt == "pairs":
        examples = load_pairs(data.train, data, report)
    else:
        from rewardkit.data.examples import load_examples

        examples = load_examples(data.train, data, report)
    if case.encode:
        from rewardkit.data.render import Renderer
        from rewardkit.data.tokenize import SequenceEncoder

        examples = encode_pairs(examples, Renderer(tokenizer, "decoder", data.template, data.separator),
                                SequenceEncoder(tokenizer, "decoder", data.max_length, data.truncation))
    return examples, report


def observed_error(case: Case, directory: Path, tokenizer):
    """The DataError a case raises under ``on_invalid: error`` (None if it raised nothing)."""
    from rewardkit.data.errors import DataError

    path = write_case(case, directory)
    try:
        run_case(case, path, "error", tokenizer)
    except DataError as err:
        return err
    return None


def render_table(rows: list[tuple[Case, str]]) -> str:
    """Markdown table: case | format | error message (file paths shown as the file name) | skip reason."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    out = ["| # | case | format | error (`on_invalid: error`) | `on_invalid: skip` |",
           "|---|------|--------|-----------------------------|-------------------|"]
    for i, (case, message) in enumerate(rows, start=1):
        skip = f"skipped, counted as `{case.reason}`" if case.skippable else "stops the run (whole file or policy)"
        out.append(f"| {i} | {cell(case.name)} | {case.fmt} | `{cell(message)}` | {skip} |")
    return "\n".join(out) + "\n"


def table_from_runs(tokenizer) -> str:
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for i, case in enumerate(CASES):
            sub = Path(d) / f"c{i}"
            sub.mkdir()
            err = observed_error(case, sub, tokenizer)
            message = str(err).replace(str(sub) + "/", "") if err is not None else "(no error: pending)"
            rows.append((case, message))
    return render_table(rows)


def doc_table() -> str:
    text = DOC.read_text(encoding="utf-8")
    return text.split(START, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def unpacked_tokenizer():
    """The gpt2 test tokenizer, unpacked as tests/conftest.py does (for the over-length case)."""
    from transformers import AutoTokenizer

    src = REPO / "tests" / "assets" / "tokenizers" / "gpt2"
    dst = Path(tempfile.mkdtemp(prefix="rk-tok-"))
    for f in src.iterdir():
        if f.suffix == ".gz":
            (dst / f.stem).write_bytes(gzip.decompress(f.read_bytes()))
        else:
            shutil.copy(f, dst / f.name)
    return AutoTokenizer.from_pretrained(str(dst))


def main() -> int:
    table = table_from_runs(unpacked_tokenizer())
    text = DOC.read_text(encoding="utf-8")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    DOC.write_text(f"{head}{START}\n{table}{END}{tail}", encoding="utf-8")
    print(f"wrote {len(CASES)} cases to {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
