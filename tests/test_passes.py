"""kit.passes: the pass counts benchmarks/make_run_bound.py multiplies by per-pass times."""

import importlib.util
import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from kit import passes, world
from kit.attributors import explain
from kit.models import load_classifier, load_inpainter
from kit.removers import Telea

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def clf():
    return load_classifier("world")


@pytest.fixture(scope="module")
def batch():
    return world.sample(2, seed=515, split="test")


def test_sliding_patch_counts_one_forward_per_composite(clf, batch):
    # window 16, stride 16 on 64x64: 16 patches per image, each composite scored once, plus the
    # clean image; no gradient, no inpainting
    with passes.counting() as c:
        explain("SP", clf, batch.images, batch.labels, window=16, stride=16)
    assert dict(c) == {"classifier_forward": 2 * 16 + 2, "classifier_backward": 0,
                       "inpainter": 0, "opencv": 0}
    with passes.counting() as c:
        explain("SP-G", clf, batch.images, batch.labels, window=16, stride=16)
    assert c["inpainter"] == 2 * 16 and c["classifier_forward"] == 2 * 16 + 2


def test_gradients_count_backward_passes_and_blocks_nest(clf, batch):
    with passes.counting() as outer:
        with passes.counting() as inner:
            explain("Saliency", clf, batch.images, batch.labels)
        load_inpainter("world")(batch.images, 1 - batch.masks.float())
        Telea().fill(batch.images, 1 - batch.masks.float())
    assert inner == {"classifier_forward": 2, "classifier_backward": 2, "inpainter": 0,
                     "opencv": 0}
    assert outer == {"classifier_forward": 2, "classifier_backward": 2, "inpainter": 2,
                     "opencv": 2}
    assert not passes.active()
    with torch.inference_mode():
        clf(batch.images)  # nothing counts outside a block
    with pytest.raises(ValueError, match="kind: unknown pass kind 'gpu'; valid: classifier_"):
        with passes.counting():
            passes.record("gpu", 1)


def test_a_process_with_kit_pass_log_writes_its_counts_at_exit(tmp_path):
    log = tmp_path / "counts.json"
    code = ("import torch, kit\nfrom kit import world, models\n"
            "clf = models.load_classifier('world')\n"
            "with torch.inference_mode():\n    clf(world.sample(3, seed=1, split='test').images)\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=ROOT,
                   env={**os.environ, "KIT_PASS_LOG": str(log)})
    assert json.loads(log.read_text()) == {"classifier_forward": 3, "classifier_backward": 0,
                                           "inpainter": 0, "opencv": 0}


def _bound_module():
    spec = importlib.util.spec_from_file_location(
        "make_run_bound", ROOT / "benchmarks" / "make_run_bound.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_bound_scales_whole_image_counts_and_extrapolates_a_line():
    mod = _bound_module()
    for stem, (scale, keys) in mod.SCALES.items():  # every scaled count is whole, at s and 2s
        for s in (scale, 2 * scale):
            p = mod.scaled_params(stem, s)
            assert all(isinstance(p[k], int) and p[k] >= 1 for k in keys), (stem, p)
    with pytest.raises(ValueError, match="not a whole number of images"):
        mod.scaled_params("03_deletion", Fraction(1, 5))
    # counts 10 + 100 s: at s = 0.01 and 0.02 they are 11 and 12; at s = 1, 110; intercept 10
    c1 = {k: 11 for k in passes.KINDS}
    c2 = {k: 12 for k in passes.KINDS}
    full, fixed = mod.extrapolate(c1, c2, Fraction(1, 100))
    assert full["inpainter"] == pytest.approx(110) and fixed["opencv"] == pytest.approx(10)


def test_the_bound_reads_make_runs_own_pass_logs(tmp_path):
    mod = _bound_module()
    (tmp_path / "03.json").write_text(json.dumps({"classifier_forward": 1000,
                                                  "classifier_backward": 100, "inpainter": 10}))
    (tmp_path / "01_counterfactual_plausibility.json").write_text(json.dumps({"opencv": 7}))
    counts = mod.logged_counts(tmp_path, list(mod.SCALES))
    assert list(counts) == ["01_counterfactual_plausibility", "03_deletion"]
    assert counts["03_deletion"] == {"classifier_forward": 1000, "classifier_backward": 100,
                                     "inpainter": 10, "opencv": 0}
    # bound: 900 forward-only passes at 1 ms, 100 gradients at 3 ms, 10 fills at 2 ms = 1.22 s
    times = {"classifier_forward": (1e-3, 32), "classifier_backward": (3e-3, 32),
             "inpainter": (2e-3, 8), "opencv": (1e-3, 128)}
    lines = mod.table({"03_deletion": counts["03_deletion"]},
                      {"03_deletion": dict.fromkeys(passes.KINDS, 0)}, times,
                      {"03_deletion": 2.44})
    row = next(line for line in lines if line.startswith("| 03_deletion"))
    assert row.split(" | ")[-2:] == [f"{2.44 / 60:.1f}", "2.0 |"]
    with pytest.raises(SystemExit, match="no <stem>.passes.json"):
        mod.logged_counts(tmp_path / "none", ["05_gad_class_distancing"])
