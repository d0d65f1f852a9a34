"""kit.studies.continuum: F_lam between the completion fill (lam 0 = X-G) and the true background
(lam 1 = X-O), exactly at the ends; per-image localisation and within-object agreement against
lam, summarised with intervals and NaN counts, cached through kit.cache."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from kit import world
from kit.attributors import explain
from kit.models import Inpainter
from kit.studies import continuum

SP = {"window": 16, "stride": 8}
ENDS = {"window": 16, "stride": 16}  # 16 patches: the real completion inpainter at the ends


class Flat(Inpainter):
    """A cheap stand-in completion inpainter (the study's wiring, not the world model's fills)."""

    def generate(self, images, hole):
        return images.mean((2, 3), keepdim=True).expand_as(images)


@pytest.fixture(scope="module")
def clf():
    from kit.models import load_classifier

    torch.set_num_threads(1)
    return load_classifier("world")


@pytest.fixture(scope="module")
def batch():
    return world.sample(2, seed=4242, split="test")


@pytest.mark.parametrize("method, params", [("SP", ENDS), ("MP2", {"iterations": 2})])
def test_the_ends_are_the_completion_and_oracle_rungs(clf, batch, method, params):
    maps = continuum.continuum_maps(method, clf, batch.images, batch.labels, batch.backgrounds,
                                    lambdas=(0.0, 1.0), overrides=params, cache=False)
    assert torch.equal(maps["lam=0"], explain(f"{method}-G", clf, batch.images, batch.labels,
                                               **params))
    assert torch.equal(maps["lam=1"], explain(f"{method}-O", clf, batch.images, batch.labels,
                                               backgrounds=batch.backgrounds, **params))


def test_per_image_summary_and_cache(clf, batch, tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_CACHE", str(tmp_path))
    flat = Flat()
    per = continuum.continuum_per_image("SP-G", clf, batch, lambdas=(0.0, 0.5), overrides=SP,
                                        inpainter=flat)
    assert list(per.columns) == ["image", "method", "fill", "lam", "metric", "value"]
    assert set(per["method"]) == {"SP"} and set(per["metric"]) == set(continuum.METRICS)
    # the X rung beside the continuum (lam NaN), the lam = 1 reference computed though not asked
    assert set(per.loc[per["lam"].isna(), "fill"]) == {"gray"}
    assert set(per["lam"].dropna()) == {0.0, 0.5}
    files = sorted(p.name for p in (tmp_path / "continuum").glob("*.pt"))
    assert len(files) == 3 and all(f.startswith("SP-O-") for f in files)
    # the cached maps are read back: no attributor runs again
    import kit.attributors

    def fail(*a, **k):
        raise AssertionError("recomputed a cached map")

    monkeypatch.setattr(kit.attributors, "explain", fail)
    again = continuum.continuum_per_image("SP", clf, batch, lambdas=(0.0, 0.5), overrides=SP,
                                          inpainter=flat)
    pd.testing.assert_frame_equal(per, again)
    monkeypatch.undo()
    # agreement against the lam = 1 map: 1 for that map itself
    monkeypatch.setenv("KIT_CACHE", str(tmp_path))
    ref = continuum.continuum_per_image("SP", clf, batch, lambdas=(1.0,), overrides=SP,
                                        include_x=False, inpainter=flat)
    a = ref[ref["metric"] == "within_object_agreement"]["value"].dropna()
    assert len(a) and np.allclose(a, 1.0)
    table = continuum.summarize(per)
    assert set(table["fill"]) == {"blend", "gray"}
    assert (table["n"] + table["n_nan"] == len(batch.images)).all()
    ok = table["n"] >= 2
    assert (table.loc[ok, "ci_low"] <= table.loc[ok, "mean"]).all()
    assert (table.loc[ok, "mean"] <= table.loc[ok, "ci_high"]).all()


def test_matching_lambda_interpolates_between_grid_points():
    rows = [{"method": "A", "fill": "blend", "lam": lam, "metric": "mass_inside", "mean": m}
            for lam, m in zip(continuum.LAMBDAS, (0.2, 0.4, 0.6, 0.8, 1.0), strict=True)]
    rows += [{"method": "A", "fill": "gray", "lam": float("nan"), "metric": "mass_inside",
              "mean": 0.5}]
    rows += [{"method": "B", "fill": "blend", "lam": lam, "metric": "mass_inside", "mean": 0.1}
             for lam in continuum.LAMBDAS]
    rows += [{"method": "B", "fill": "gray", "lam": float("nan"), "metric": "mass_inside",
              "mean": 0.5}]
    got = continuum.matching_lambda(pd.DataFrame(rows)).set_index("method")["lam"]
    assert math.isclose(got["A"], 0.375) and math.isnan(got["B"])


def test_bad_input(clf, batch):
    with pytest.raises(ValueError, match="method: 'Saliency' is not a perturbation method.*SP"):
        continuum.resolve_method("Saliency")
    assert continuum.resolve_method("FIDO-CA-SDR")[0] == "FIDO-SDR"
    with pytest.raises(ValueError, match=r"lambdas must be a number in \[0, 1\]"):
        continuum.continuum_maps("SP", clf, batch.images, batch.labels, batch.backgrounds,
                                 lambdas=(0.0, 1.5), cache=False)
    with pytest.raises(ValueError, match="backgrounds: expected shape"):
        continuum.continuum_maps("SP", clf, batch.images, batch.labels, batch.backgrounds[:1],
                                 cache=False)


def test_continuum_table_runs_each_method_at_its_profile_budget(clf, batch, monkeypatch):
    # the O rung's budget along the continuum, the X rung's beside it: the same tables as
    # continuum_per_image called with those entries of the profile
    from kit.attributors import budget

    calls = []
    real = continuum.continuum_per_image

    def spy(method, model, b, **kw):
        calls.append((method, kw["overrides"], kw["x_overrides"]))
        return real(method, model, b, **{**kw, "inpainter": Flat()})

    monkeypatch.setattr(continuum, "continuum_per_image", spy)
    table = continuum.continuum_table(["SP", "MP2-G"], clf, batch, profile="cheap",
                                      lambdas=(0.0, 1.0), cache=False)
    cheap = budget("cheap", ["SP-O", "SP", "MP2-O", "MP2"])
    assert calls == [("SP", cheap["SP-O"], cheap["SP"]), ("MP2-G", cheap["MP2-O"], cheap["MP2"])]
    assert "local" not in calls[0][1]  # never SP's local windows along the blend
    assert list(dict.fromkeys(table["method"])) == ["SP", "MP2"]
    assert set(table["lam"].dropna()) == {0.0, 1.0}
    with pytest.raises(ValueError, match="methods: expected at least one"):
        continuum.continuum_table([], clf, batch)
    with pytest.raises(ValueError, match="not a perturbation method"):
        continuum.continuum_table(["GradCAM"], clf, batch)
