"""The budget convergence check (kit.studies.convergence): under-converged budgets are caught,
converged (deterministic) ones pass, the table round-trips to the summary's reader."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest
import torch

from kit import world
from kit.attributors import PROFILES
from kit.attributors.fido import fido
from kit.attributors.kernel_shap import kernel_shap
from kit.attributors.lime import lime_explain
from kit.attributors.meaningful_perturbation import meaningful_perturbation, mp2
from kit.attributors.rise import rise
from kit.models import load_classifier
from kit.studies import convergence as cv


@pytest.fixture(scope="module")
def clf():
    return load_classifier("world")


@pytest.fixture(scope="module")
def batch():
    return world.sample(3, seed=71, split="test")  # a seed no document uses


def test_under_converged_budget_fails_and_exact_one_passes(clf, batch):
    # RISE with 8 masks against 32: a handful of random masks cannot give the 32-mask map's
    # ranking. KernelSHAP on <= 4 segments with 16 coalitions enumerates all 2^K - 2 of them at
    # B and at 4B: the same exact solution, a trivial pass.
    table = cv.check_budgets(["RISE", "KernelSHAP", "Saliency"], model=clf, batch=batch,
                             overrides={"RISE": {"n_masks": 8},
                                        "KernelSHAP": {"n_samples": 16, "n_segments": 4}},
                             cache=False)
    assert list(table.columns) == cv.COLUMNS
    rows = table.set_index("method")
    assert rows.loc["RISE", "budget"] == 8 and rows.loc["RISE", "budget_high"] == 32
    assert rows.loc["RISE", "spearman_mean"] < cv.THRESHOLD
    assert not rows.loc["RISE", "passed"] and rows.loc["RISE", "status"] == "run"
    assert rows.loc["KernelSHAP", "spearman_mean"] == 1.0 and rows.loc["KernelSHAP", "passed"]
    assert rows.loc["KernelSHAP", "n_images"] == 3 and rows.loc["KernelSHAP", "n_nan"] == 0
    assert rows.loc["Saliency", "status"] == "no budget"


def test_table_round_trip_and_reader(tmp_path, clf, batch):
    table = cv.check_budgets(["RISE"], model=clf, batch=batch,
                             overrides={"RISE": {"n_masks": 8}}, cache=False)
    path = tmp_path / "convergence.csv"
    out = cv.write_table(table, path)
    assert set(out["method"]) == set(cv.budgeted())  # every budgeted method has a row ...
    rest = out[out["method"] != "RISE"]
    assert (rest["status"] == "not run").all()       # ... saying whether it was run
    assert cv.budget_limited(path) == {"RISE"}        # not-run rows are not budget-limited
    # a later run replaces its own rows and keeps the others
    passed = table.assign(method="LIME", passed=True, spearman_mean=0.99)
    again = cv.write_table(passed, path)
    assert set(again[again["status"] == "run"]["method"]) == {"RISE", "LIME"}
    assert cv.budget_limited(path) == {"RISE"}
    assert list(pd.read_csv(path).columns) == cv.COLUMNS


def test_spearman_per_image():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 1, 4, 4, generator=g)
    b = a.clone()
    b[1] = -a[1]          # reversed ranking
    b[2] = 0.0            # constant against non-constant: undefined
    rho = cv.spearman_per_image(a, b)
    assert rho[0] == 1.0 and rho[1] == pytest.approx(-1.0) and np.isnan(rho[2])
    zeros = torch.zeros(1, 1, 4, 4)
    assert cv.spearman_per_image(zeros, zeros)[0] == 1.0  # identical constant maps agree
    with pytest.raises(ValueError, match=r"b: expected the shape of a"):
        cv.spearman_per_image(a, b[:2])


def test_budget_of_profile_and_defaults():
    for name in cv.budgeted():
        param, value = cv.budget_of(name, "full")
        assert value == PROFILES["full"].get(name, {}).get(param, value) and value >= 1
    # the explicit defaults are the attributors' own
    for fn, attributor in [(lime_explain, "lime"), (kernel_shap, "kernel_shap"), (rise, "rise"),
                           (meaningful_perturbation, "meaningful_perturbation"), (mp2, "mp2"),
                           (fido, "fido")]:
        param, default = cv.BUDGETS[attributor]
        assert inspect.signature(fn).parameters[param].default == default
    assert cv.budget_of("KernelSHAP", "reference") == ("n_samples", 2048)


@pytest.mark.parametrize("call, pattern", [
    (lambda: cv.budget_of("Saliency"), r"method: 'Saliency' \(saliency\) has no sample"),
    (lambda: cv.budget_of("MP", "fast"), r"profile: unknown profile 'fast'; valid names"),
    (lambda: cv.budget_of("XP"), r"methods: unknown method\(s\) \['XP'\]; valid names"),
    (lambda: cv.check_budgets(["MP"], factor=1), r"factor must be an integer >= 2, got 1"),
])
def test_bad_input(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()
