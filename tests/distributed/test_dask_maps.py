"""compute_maps, deletion curves and ROAR retrainings on a 2-worker LocalCluster equal the serial
run's, bit for bit; a worker killed while writing a cache entry costs a rerun, never an entry."""

from __future__ import annotations

import os
import sys
import warnings

import pytest
import torch

distributed = pytest.importorskip("distributed")
import cloudpickle  # noqa: E402

from kit import cache, mapcache, world  # noqa: E402
from kit.metrics import deletion  # noqa: E402
from kit.models import load_classifier  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests
WAIT = 300
# cheap, deterministic and seeded methods; SP-O fills from the true backgrounds
NAMES = ["Saliency", "random", "SP", "RISE", "SP-O"]
OVERRIDES = {"SP": {"stride": 8}, "SP-O": {"stride": 8}, "RISE": {"n_masks": 24}}


@pytest.fixture(scope="module")
def batch():
    return world.sample(4, seed=3, split="test")


@pytest.fixture(scope="module")
def clf():
    return load_classifier("world")


def _maps(clf, batch, **kw):
    return mapcache.compute_maps(NAMES, clf, batch.images, batch.labels, overrides=OVERRIDES,
                                 backgrounds=batch.backgrounds, **kw)


def _entries_all_sound(folder):
    """Every visible entry reads back without a warning (checksummed, complete)."""
    files = sorted(folder.glob("*.pt"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert all(isinstance(cache.read(f), torch.Tensor) for f in files)
    return files


def _arm_kill_mid_write(marker: str):
    """On a worker: the first cache write anywhere writes half its bytes, then the process dies."""
    import kit.cache as kc

    original = kc.write_atomic_bytes

    def dying(data, file):
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # exactly one kill
        except FileExistsError:
            return original(data, file)
        os.close(fd)
        os.makedirs(os.path.dirname(file), exist_ok=True)
        tmp = os.path.join(os.path.dirname(file), f".{os.path.basename(file)}{kc.TMP_MARK}dead")
        with open(tmp, "wb") as fh:
            fh.write(data[: len(data) // 2])
        os._exit(1)

    kc.write_atomic_bytes = dying
    return True


def test_maps_on_a_cluster_equal_serial_and_survive_a_killed_worker(
        client, clf, batch, tmp_path, monkeypatch):
    monkeypatch.setattr(mapcache, "CHUNK", 2)  # 2 chunks per method: 10 tasks
    serial = _maps(clf, batch, cache=False)
    monkeypatch.setenv("KIT_CACHE", str(tmp_path))
    marker = tmp_path / "killed"
    assert all(client.run(_arm_kill_mid_write, str(marker)).values())
    got = _maps(clf, batch, client=client)
    assert marker.exists()  # a worker did die while writing an entry
    for n in NAMES:
        assert torch.equal(got[n], serial[n]), n
        assert got.geometry[n] == serial.geometry[n]
    folder = tmp_path / "maps"
    files = _entries_all_sound(folder)
    assert len(files) == len(NAMES) * 2  # one complete entry per (method, chunk), none missing
    # the dead writer's half-written temporary file is hidden from readers, and removable
    left = list(folder.glob(f".*{cache.TMP_MARK}*"))
    assert len(left) == 1
    assert cache.remove_partial(folder, older_than=0) == left
    # (the nanny restarts the dead worker in the background; later tests need not wait for it:
    # their tasks run on whichever workers are alive)
    # a rerun is served from the entries written on the cluster
    times = {}
    again = _maps(clf, batch, timings=times)
    assert times == {n: 0.0 for n in NAMES}
    assert all(torch.equal(again[n], serial[n]) for n in NAMES)


def test_corrupted_entry_is_recomputed_on_the_cluster(client, clf, batch, tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_CACHE", str(tmp_path))
    first = mapcache.compute_maps(["Saliency"], clf, batch.images, batch.labels, client=client)
    (f,) = (tmp_path / "maps").glob("*.pt")
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    # the worker reads it, warns (in its own log) and recomputes; the entry is sound again
    again = mapcache.compute_maps(["Saliency"], clf, batch.images, batch.labels, client=client)
    assert torch.equal(again["Saliency"], first["Saliency"])
    _entries_all_sound(tmp_path / "maps")


def test_curves_on_a_cluster_equal_serial(client, clf, batch):
    maps = mapcache.compute_maps(["Saliency", "SP"], clf, batch.images, batch.labels,
                                 overrides=OVERRIDES, cache=False)  # SP: coverage geometry
    kw = dict(removers=["gray", "oracle"], steps=7, backgrounds=batch.backgrounds)
    s_table, s_curves = deletion.curve_table(clf, batch.images, maps, batch.labels, **kw)
    c_table, c_curves = deletion.curve_table(clf, batch.images, maps, batch.labels, **kw,
                                             client=client)
    assert s_table.equals(c_table)
    assert list(s_curves) == list(c_curves)
    assert all(torch.equal(s_curves[k].scores, c_curves[k].scores) for k in s_curves)


def test_roar_on_a_cluster_equals_serial(client, clf, tmp_path, monkeypatch):
    from kit.studies import roar

    monkeypatch.setenv("KIT_CACHE", str(tmp_path))
    tr, te = world.sample(16, seed=1, split="train"), world.sample(8, seed=1, split="test")
    kw = dict(estimators=["Saliency"], fractions=[0.5], modes=["roar"], fills=["gray"],
              seeds=[0, 1], train_options=dict(epochs=1, width=4, batch_size=8), cache=False)
    serial = roar.run_roar(clf, tr.images, tr.labels, te.images, te.labels, **kw)
    cluster = roar.run_roar(clf, tr.images, tr.labels, te.images, te.labels, **kw,
                            client=client)
    cols = ["estimator", "mode", "fill", "fraction", "seed", "accuracy"]
    assert serial[cols].equals(cluster[cols])
    assert len(serial) == 2 * (1 + 1)
