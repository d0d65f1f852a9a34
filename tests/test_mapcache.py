"""kit.mapcache: cached maps equal fresh maps; the key reacts to everything that changes a map."""

import pytest
import torch
from torch import nn

from kit import mapcache
from kit.attributors import explain
from kit.models import Classifier


@pytest.fixture
def toy_classifier() -> Classifier:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(4, 3))
    return Classifier(net, ("a", "b", "c"), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), name="toy")


def _setup(tmp_path, monkeypatch, toy_classifier):
    monkeypatch.setenv("KIT_CACHE", str(tmp_path))
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 16, 16, generator=g)
    return toy_classifier, x, torch.tensor([0, 1, 2])


def test_cached_equals_fresh_and_is_reused(tmp_path, monkeypatch, toy_classifier):
    model, x, t = _setup(tmp_path, monkeypatch, toy_classifier)
    names = ["Saliency", "random"]
    times = {}
    a = mapcache.compute_maps(names, model, x, t, timings=times)
    assert list(a) == names and set(times) == set(names)
    files = sorted((tmp_path / "maps").glob("*.pt"))
    assert len(files) == 2
    for n in names:
        torch.testing.assert_close(a[n], explain(n, model, x, t, seed=0), rtol=0, atol=0)
    mtimes = [f.stat().st_mtime_ns for f in files]
    times2 = {}
    b = mapcache.compute_maps(names, model, x, t, timings=times2)
    assert [f.stat().st_mtime_ns for f in files] == mtimes and times2 == {n: 0.0 for n in names}
    for n in names:
        assert torch.equal(a[n], b[n])


def test_key_changes_with_inputs_seed_overrides_and_model(tmp_path, monkeypatch, toy_classifier):
    model, x, t = _setup(tmp_path, monkeypatch, toy_classifier)
    mapcache.compute_maps(["random"], model, x, t)
    mapcache.compute_maps(["random"], model, x, t, seed=1)
    mapcache.compute_maps(["random"], model, x, t.flip(0))
    mapcache.compute_maps(["random"], model, x.flip(0), t)
    assert len(list((tmp_path / "maps").glob("*.pt"))) == 4
    with torch.no_grad():
        next(model.parameters()).add_(0.1)
    mapcache.compute_maps(["random"], model, x, t)
    assert len(list((tmp_path / "maps").glob("*.pt"))) == 5


def test_chunks_are_shared_between_image_counts(tmp_path, monkeypatch, toy_classifier):
    model, _, _ = _setup(tmp_path, monkeypatch, toy_classifier)
    x = torch.rand(mapcache.CHUNK + 2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    t = torch.zeros(len(x), dtype=torch.long)
    small = mapcache.compute_maps(["Saliency"], model, x[: mapcache.CHUNK], t[: mapcache.CHUNK])
    times = {}
    big = mapcache.compute_maps(["Saliency"], model, x, t, timings=times)
    assert torch.equal(big["Saliency"][: mapcache.CHUNK], small["Saliency"])
    assert len(list((tmp_path / "maps").glob("*.pt"))) == 2


def test_no_cache_writes_nothing_and_corrupt_files_are_recomputed(tmp_path, monkeypatch,
                                                                   toy_classifier):
    model, x, t = _setup(tmp_path, monkeypatch, toy_classifier)
    mapcache.compute_maps(["Saliency"], model, x, t, cache=False)
    assert not (tmp_path / "maps").exists()
    ref = mapcache.compute_maps(["Saliency"], model, x, t)["Saliency"]
    (f,) = (tmp_path / "maps").glob("*.pt")
    f.write_bytes(b"truncated")
    with pytest.warns(RuntimeWarning, match="corrupted"):
        again = mapcache.compute_maps(["Saliency"], model, x, t)["Saliency"]
    assert torch.equal(ref, again)
    from kit import cache

    assert torch.equal(cache.read(f), ref)  # rewritten as a valid, checksummed entry


def test_maps_carry_their_geometry(tmp_path, monkeypatch, toy_classifier):
    """SP grids reach pixels by coverage with the run's window and stride; others bilinearly."""
    model, x, t = _setup(tmp_path, monkeypatch, toy_classifier)
    maps = mapcache.compute_maps(["SP", "Saliency"], model, x, t,
                                 overrides={"SP": {"window": 4, "stride": 2}}, cache=False)
    side = x.shape[-1]
    assert maps.geometry["SP"] == {"mode": "coverage", "window": 4, "stride": 2}
    assert maps.geometry["Saliency"] == {"mode": "bilinear"}
    pix = maps.pixels("SP", side)
    assert pix.shape == (x.shape[0], 1, side, side)
    from kit.masks import upsample

    g = maps.geometry["SP"]
    assert torch.equal(pix, upsample(maps["SP"], side, "coverage", window=g["window"],
                                     stride=g["stride"]))


def test_bad_input(tmp_path, monkeypatch, toy_classifier):
    model, x, t = _setup(tmp_path, monkeypatch, toy_classifier)
    with pytest.raises(ValueError, match="unknown method.*valid names"):
        mapcache.compute_maps(["Nope"], model, x, t)
    with pytest.raises(ValueError, match="overrides: unknown"):
        mapcache.compute_maps(["SP"], model, x, t, overrides={"MPx": {"iterations": 2}})
    with pytest.raises(ValueError, match="target"):
        mapcache.compute_maps(["random"], model, x, torch.tensor([0, 1]))


def test_seedless_attributors_are_called_without_seed(tmp_path, monkeypatch, toy_classifier):
    model, x, t = _setup(tmp_path, monkeypatch, toy_classifier)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    got = mapcache.compute_maps(["SP"], model, x, t[:2], overrides={"SP": {"window": 4,
                                                                           "stride": 4}})
    torch.testing.assert_close(got["SP"], explain("SP", model, x, t[:2], window=4, stride=4))


def test_batch_size_reaches_every_method(tmp_path, monkeypatch, toy_classifier):
    """``batch_size`` is passed to every method, including the model-free random baseline."""
    model, x, t = _setup(tmp_path, monkeypatch, toy_classifier)
    got = mapcache.compute_maps(["random", "Saliency"], model, x, t, batch_size=1)
    ref = mapcache.compute_maps(["random", "Saliency"], model, x, t, cache=False)
    for name in ("random", "Saliency"):
        torch.testing.assert_close(got[name], ref[name])


def test_oracle_methods_need_backgrounds_and_key_them(tmp_path, monkeypatch, toy_classifier):
    model, x, t = _setup(tmp_path, monkeypatch, toy_classifier)
    ov = {"SP-O": {"window": 4, "stride": 4}}
    with pytest.raises(ValueError, match=r"'SP-O'.*true backgrounds.*pass backgrounds="):
        mapcache.compute_maps(["SP-O"], model, x, t, overrides=ov)
    with pytest.raises(ValueError, match=r"backgrounds: expected shape \(3, 3, 16, 16\)"):
        mapcache.compute_maps(["SP-O"], model, x, t, overrides=ov, backgrounds=x[:2])
    bg = torch.rand(x.shape, generator=torch.Generator().manual_seed(5))
    a = mapcache.compute_maps(["SP-O"], model, x, t, overrides=ov, backgrounds=bg)
    ref = explain("SP-O", model, x, t, seed=0, backgrounds=bg, **ov["SP-O"])
    assert torch.equal(a["SP-O"], ref)
    b = mapcache.compute_maps(["SP-O"], model, x, t, overrides=ov, backgrounds=bg.flip(0))
    assert not torch.equal(a["SP-O"], b["SP-O"])  # other backgrounds: another entry, other map
    assert len(list((tmp_path / "maps").glob("*.pt"))) == 2
    # a method that needs no backgrounds ignores them: same key as without
    mapcache.compute_maps(["Saliency"], model, x, t, backgrounds=bg)
    mapcache.compute_maps(["Saliency"], model, x, t)
    assert len(list((tmp_path / "maps").glob("*.pt"))) == 3


def test_corrupted_entry_is_warned_about_and_recomputed(tmp_path, monkeypatch, toy_classifier):
    from kit import cache

    model, x, t = _setup(tmp_path, monkeypatch, toy_classifier)
    a = mapcache.compute_maps(["Saliency"], model, x, t)
    (f,) = (tmp_path / "maps").glob("*.pt")
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    times = {}
    with pytest.warns(RuntimeWarning, match="corrupted"):
        b = mapcache.compute_maps(["Saliency"], model, x, t, timings=times)
    assert torch.equal(a["Saliency"], b["Saliency"]) and times["Saliency"] > 0
    assert torch.equal(cache.read(f), a["Saliency"])  # overwritten with a sound entry
