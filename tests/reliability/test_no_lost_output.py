"""`rewardkit score` never loses or silently replaces a file: atomic output, refused overwrites, a real SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rewardkit.cli import main
from rewardkit.io_safety import atomic_write, check_output

from ..unit.test_score_batch import SINGLES, save_rewardkit_model

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir, tmp_path_factory):
    return save_rewardkit_model(tiny_model_dir("llama"), tmp_path_factory.mktemp("rk-model"))


def _write_jsonl(path: Path, rows: list[dict]) -> bytes:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path.read_bytes()


def test_score_refuses_output_equal_to_input_and_leaves_it_intact(model_dir, tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    before = _write_jsonl(src, SINGLES)
    for extra in ([], ["--overwrite"]):  # not even with --overwrite: the input is never replaced
        assert main(["score", str(model_dir), str(src), "-o", str(src), *extra]) == 2
        assert "the output is the input file" in capsys.readouterr().err
        assert src.read_bytes() == before


def test_score_refuses_an_existing_output_unless_overwrite(model_dir, tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    _write_jsonl(src, SINGLES)
    out = tmp_path / "out.jsonl"
    out.write_text("precious\n")
    assert main(["score", str(model_dir), str(src), "-o", str(out)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_text() == "precious\n"
    assert main(["score", str(model_dir), str(src), "-o", str(out), "--overwrite"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len(SINGLES) and all(isinstance(r["reward"], float) for r in rows)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]  # no temporary file left


def test_atomic_write_leaves_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_write(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk on fire")
    assert target.read_text() == "old\n"
    assert list(tmp_path.iterdir()) == [target]
    with pytest.raises(FileExistsError, match="is a directory"):
        check_output(tmp_path, overwrite=True)


# The child scores for real; its writer pauses after the first rows are on disk (in the temporary file) and says
# so, and the parent SIGKILLs it there: a kill in the middle of the write, not before or after it.
CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import rewardkit.serve.batch as batch
    real_open = batch._open_text_out

    class Slow:
        def __init__(self, f):
            self.f, self.n = f, 0
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            return self.f.__exit__(*exc)
        def write(self, s):
            self.f.write(s)
            self.n += 1
            if self.n == 50:
                self.f.flush()
                Path(sys.argv[1]).write_text("writing")
                time.sleep(120)

    batch._open_text_out = lambda path, gz: Slow(real_open(path, gz))
    from rewardkit.cli import main
    sys.exit(main(sys.argv[2:]))
""")


@pytest.mark.parametrize("target", ["new", "existing"])
def test_sigkill_during_score_write_leaves_no_partial_output(model_dir, tmp_path, target):
    src = tmp_path / "in.jsonl"
    src_bytes = _write_jsonl(src, [dict(r, id=i) for i, r in enumerate(SINGLES * 50)])  # 200 rows
    out = tmp_path / "out.jsonl"
    old = b'{"reward": 1.0}\n'
    if target == "existing":
        out.write_bytes(old)
    marker = tmp_path / "marker"
    argv = ["score", str(model_dir), str(src), "-o", str(out), "--overwrite"]
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(marker), *argv], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), proc.communicate(timeout=5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert src.read_bytes() == src_bytes
    if target == "existing":
        assert out.read_bytes() == old  # the previous output survives whole
    else:
        assert not out.exists()  # nothing under the output's name that could pass for a complete output
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in {"in.jsonl", "out.jsonl", "marker"}]
    assert all(n.startswith(".out.jsonl.") and n.endswith(".tmp") for n in leftovers), leftovers
