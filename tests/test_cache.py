"""kit.cache: digests, atomic checksummed entries, corruption detected, concurrent writers."""

from __future__ import annotations

import multiprocessing as mp

import pytest
import torch

from kit import cache


def test_round_trip_and_key_sensitivity(tmp_path):
    obj = {"sal": torch.arange(6.0).view(1, 1, 2, 3), "n": 3}
    f = cache.write(obj, tmp_path / "a" / "x.pt")
    back = cache.read(f)
    assert torch.equal(back["sal"], obj["sal"]) and back["n"] == 3
    assert not list((tmp_path / "a").glob(".*tmp*"))  # no temporary file left behind
    assert cache.digest("ab", "c") != cache.digest("a", "bc")
    assert cache.digest(torch.zeros(2)) != cache.digest(torch.zeros(3))
    assert cache.digest({"a": 1, "b": 2}) == cache.digest({"b": 2, "a": 1})


def test_corrupted_entry_is_detected(tmp_path):
    f = cache.write(torch.arange(1000.0), tmp_path / "x.pt")
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped byte inside the payload
    f.write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning, match="corrupted"):
        assert cache.read(f) is None
    f.write_bytes(b"")  # a truncated file
    with pytest.warns(RuntimeWarning):
        assert cache.read(f) is None
    assert cache.read(tmp_path / "absent.pt") is None


def test_cache_root_read_at_call_time(tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_CACHE", str(tmp_path / "one"))
    assert cache.path("maps", "k.pt") == tmp_path / "one" / "maps" / "k.pt"
    monkeypatch.setenv("KIT_CACHE", str(tmp_path / "two"))
    assert cache.cache_root() == tmp_path / "two"


def _writer(path: str, rounds: int) -> None:
    t = torch.arange(50_000.0)
    for _ in range(rounds):
        cache.write(t, path)


def test_two_processes_writing_one_key(tmp_path):
    """Two writers of the same key never leave a partial or corrupted entry."""
    import warnings

    f = tmp_path / "same.pt"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(f), 20)) for _ in range(2)]
    for p in procs:
        p.start()
    seen = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a corrupted read would warn: make it fail the test
        for _ in range(400):  # read while they write: every visible file is complete
            if f.exists():
                assert torch.equal(cache.read(f), torch.arange(50_000.0))
                seen += 1
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    assert torch.equal(cache.read(f), torch.arange(50_000.0))
    assert not list(tmp_path.glob(".*tmp*"))


def _killed_writer(path: str) -> None:
    """Write one entry, then die between writing the temporary file and renaming it."""
    import os

    cache.write(torch.zeros(10), path)
    os.replace = lambda *a: os._exit(3)  # the next write is killed just before its rename
    cache.write(torch.ones(10), path)


def test_writer_killed_mid_write_leaves_the_old_entry_and_a_removable_temp(tmp_path):
    f = tmp_path / "k.pt"
    p = mp.get_context("spawn").Process(target=_killed_writer, args=(str(f),))
    p.start()
    p.join(timeout=120)
    assert p.exitcode == 3
    assert torch.equal(cache.read(f), torch.zeros(10))  # the complete earlier entry, no warning
    left = list(tmp_path.glob(f".*{cache.TMP_MARK}*"))
    assert len(left) == 1 and left[0].stat().st_size > 0
    assert cache.remove_partial(tmp_path) == []  # too young: a live writer may still rename it
    assert cache.remove_partial(tmp_path, older_than=0) == left
    assert not left[0].exists() and f.exists()
