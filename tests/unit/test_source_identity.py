"""A data file's content digest is remembered by its stat and a sampled hash (data/source_identity.py): a cached
start does not read the whole file again, and a changed file is still seen."""

import os

import pytest

from rewardkit.data import source_identity as si


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setattr(si, "RACY_SECONDS", 0.0)  # the files here are written just before they are hashed
    p = tmp_path / "d.jsonl"
    p.write_bytes(b"".join(b'{"chosen": "a %06d", "rejected": "b"}\n' % i for i in range(20000)))
    return p


def count_full_hashes(monkeypatch) -> list:
    calls = []
    real = si.full_digest
    monkeypatch.setattr(si, "full_digest", lambda path: calls.append(path) or real(path))
    return calls


def test_second_digest_comes_from_the_memo_without_reading_the_file(data, tmp_path, monkeypatch):
    calls = count_full_hashes(monkeypatch)
    memo = tmp_path / "cache"
    first = si.content_digest(str(data), memo)
    assert first == si.full_digest(str(data)) and len(calls) == 2
    assert len(list((memo / "sources").glob("*.json"))) == 1
    assert si.content_digest(str(data), memo) == first and len(calls) == 2  # the memo: no full read

    def no_full_read(*a, **k):
        raise AssertionError("read in full")

    monkeypatch.setattr(si, "full_digest", no_full_read)
    assert si.content_digest(str(data), memo) == first


def test_same_size_edit_with_the_mtime_put_back_is_seen(data, tmp_path, monkeypatch):
    memo = tmp_path / "cache"
    first = si.content_digest(str(data), memo)
    st = data.stat()
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 3 + 5] ^= 1  # one byte, same size, in place (same inode)
    with open(data, "r+b") as fh:
        fh.write(bytes(raw))
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns))  # the modification time put back: the ctime moved
    assert data.stat().st_size == st.st_size and data.stat().st_mtime_ns == st.st_mtime_ns
    assert si.content_digest(str(data), memo) == si.full_digest(str(data)) != first


def test_touched_file_is_hashed_again_and_keeps_its_digest(data, tmp_path, monkeypatch):
    memo = tmp_path / "cache"
    first = si.content_digest(str(data), memo)
    calls = count_full_hashes(monkeypatch)
    os.utime(data, (1, 1))
    assert si.content_digest(str(data), memo) == first and len(calls) == 1  # re-read once, same digest
    assert si.content_digest(str(data), memo) == first and len(calls) == 1  # and remembered again


def test_sampled_hash_catches_a_rewrite_whose_stat_does_not_move(data, tmp_path, monkeypatch):
    """A file system whose timestamps do not move (simulated: the stat identity is held fixed)."""
    memo = tmp_path / "cache"
    monkeypatch.setattr(si, "stat_identity", lambda p: [["", 1, 2, 3, 4, 5]])
    first = si.content_digest(str(data), memo)
    raw = bytearray(data.read_bytes())
    raw[len(raw) * 5 // 17 + 100] ^= 1  # inside the 5th sampled block
    data.write_bytes(bytes(raw))
    assert si.content_digest(str(data), memo) == si.full_digest(str(data)) != first


def test_replaced_file_is_seen(data, tmp_path):
    memo = tmp_path / "cache"
    first = si.content_digest(str(data), memo)
    other = tmp_path / "other.jsonl"
    other.write_bytes(data.read_bytes().replace(b"a 000001", b"a 00000x"))
    os.replace(other, data)  # an editor's save: a new inode, same size
    assert si.content_digest(str(data), memo) == si.full_digest(str(data)) != first


def test_a_just_changed_file_is_not_remembered(tmp_path, monkeypatch):
    """Racy: a write in the same timestamp tick as the hash could leave the stat equal; hash every time."""
    monkeypatch.setattr(si, "RACY_SECONDS", 3600.0)
    p = tmp_path / "d.jsonl"
    p.write_text('{"chosen": "a", "rejected": "b"}\n')
    calls = count_full_hashes(monkeypatch)
    for _ in range(2):
        si.content_digest(str(p), tmp_path / "cache")
    assert len(calls) == 2 and not (tmp_path / "cache" / "sources").exists()


def test_datasets_directory_memo_covers_every_file(tmp_path, monkeypatch):
    monkeypatch.setattr(si, "RACY_SECONDS", 0.0)
    d = tmp_path / "ds"
    d.mkdir()
    (d / "a.arrow").write_bytes(b"x" * 5000)
    (d / "state.json").write_text("{}")
    memo = tmp_path / "cache"
    first = si.content_digest(str(d), memo)
    (d / "state.json").write_text("{1}")
    assert si.content_digest(str(d), memo) == si.full_digest(str(d)) != first
    (d / "b.arrow").write_bytes(b"y")
    assert si.content_digest(str(d), memo) == si.full_digest(str(d)) != first


def test_no_memo_dir_hashes_in_full_and_writes_nothing(data, tmp_path, monkeypatch):
    calls = count_full_hashes(monkeypatch)
    si.content_digest(str(data), None)
    si.content_digest(str(data), None)
    assert len(calls) == 2
