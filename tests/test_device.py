"""Devices: kit moves models to the input's device (a copy; the caller's stays), compute_maps
takes device=, and GPU maps are cached apart. Tested on the CPU (and PyTorch's "meta" device for
a move that changes device); no test needs a GPU."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kit import mapcache, models, world
from kit.attributors import explain
from kit.removers import Inpaint

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def clf():
    return models.load_classifier("world")


@pytest.fixture(scope="module")
def batch():
    return world.sample(2, seed=616, split="test")


def test_on_device_returns_the_model_where_it_is_and_a_kept_copy_elsewhere(clf):
    assert models.on_device(clf, "cpu") is clf and models.on_device(clf, torch.device("cpu")) is clf
    moved = models.on_device(clf, "meta")
    assert moved is not clf and next(moved.parameters()).device.type == "meta"
    assert next(clf.parameters()).device.type == "cpu"  # the caller's model did not move
    assert models.on_device(clf, "meta") is moved  # the copy is kept for the next call
    with pytest.raises(ValueError, match="device: expected a torch device such as 'cpu'"):
        models.on_device(clf, "gpu please")


def test_compute_maps_on_a_device_equals_the_default_and_shares_its_cpu_cache(clf, batch,
                                                                            tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_CACHE", str(tmp_path))
    kw = dict(overrides={"SP-G": {"stride": 16, "window": 16}}, seed=3)
    a = mapcache.compute_maps(["SP-G", "Saliency"], clf, batch.images, batch.labels, **kw)
    files = sorted(p.name for p in (tmp_path / "maps").glob("*.pt"))
    b = mapcache.compute_maps(["SP-G", "Saliency"], clf, batch.images, batch.labels,
                              device="cpu", cache=False, **kw)
    assert all(torch.equal(a[k], b[k]) and b[k].device.type == "cpu" for k in a)
    x, t = batch.images, batch.labels
    config = {"attributor": "saliency", "remover": None}
    cpu = mapcache.cache_key("Saliency", config, "d", x, t, 0)
    assert mapcache.cache_key("Saliency", config, "d", x, t, 0, device="cpu") == cpu
    assert mapcache.cache_key("Saliency", config, "d", x, t, 0, device="cuda:1") != cpu
    mapcache.compute_maps(["SP-G", "Saliency"], clf, batch.images, batch.labels, device="cpu",
                          **kw)
    assert sorted(p.name for p in (tmp_path / "maps").glob("*.pt")) == files  # read, not new
    with pytest.raises(ValueError, match="device: expected a torch device"):
        mapcache.compute_maps(["Saliency"], clf, x, t, device="tpu?", cache=False)


def test_the_inpainter_follows_the_input_without_moving_the_shared_one(batch):
    rem = Inpaint()
    shared = rem.inpainter()
    out = rem(batch.images, 1 - batch.masks.float())
    assert out.device.type == "cpu" and next(shared.parameters()).device.type == "cpu"
    assert explain("Saliency", models.load_classifier("world"), batch.images,
                   batch.labels).device.type == "cpu"


def test_the_gpu_script_runs_on_the_cpu():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_maps.py"), "--device",
                           "cpu", "--n", "2", "--methods", "SP", "Saliency", "--profile",
                           "cheap"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "| SP |" in proc.stdout and "| Saliency |" in proc.stdout and "cpu" in proc.stdout
