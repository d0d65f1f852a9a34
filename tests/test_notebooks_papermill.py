"""Papermill smoke runs: every notebook runs with small parameter overrides that, together, name
every remover and every method a notebook accepts, and a bad name fails with a message that lists
the valid ones. nbval (``make test``) separately re-executes each notebook at its defaults.

Each case overrides only parameters the notebook declares (checked first with
``papermill.inspect_notebook``), so a renamed parameter fails here instead of being ignored. A
case starts from the notebook's cheap configuration (``params/cheap/<stem>.yaml``, what nbval
runs), not from its defaults (the teach configuration, minutes per notebook).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pm = pytest.importorskip("papermill")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"

# Removers a notebook can be handed by name (``precomputed`` and ``cached`` wrap explicit fills).
REMOVER_NAMES = ["gray", "blur", "noise", "telea", "ns", "inpaint", "inpaint_removal", "oracle"]
MASK_METHODS = ["SP", "SP-G", "SP-R", "SP-O", "LIME", "LIME-G", "LIME-R", "LIME-O", "RISE",
                "RISE-G", "RISE-R", "RISE-O", "MP", "MP-G", "MP-R", "MP-O", "MP2", "MP2-G",
                "MP2-R", "MP2-O"]


def _all_methods() -> list[str]:
    from kit.attributors import METHODS

    return list(METHODS)


GRADIENTS = ["Saliency", "InputXGradient", "IntegratedGradients", "SmoothGrad", "GuidedBackprop"]

CASES: dict[str, list[dict]] = {
    "01_counterfactual_plausibility": [
        dict(n_images=3, n_masks=2, n_method_masks=2, profile="cheap", n_boot=0,
             removers=REMOVER_NAMES, methods=MASK_METHODS),
    ],
    "02_localization": [
        dict(n_images=2, n_val=2, sp_stride=8, lime_samples=20, mp_iterations=2,
             methods=_all_methods()),
    ],
    "03_deletion": [
        dict(n_images=2, steps=4, sp_stride=8, lime_samples=20, mp_iterations=2,
             removers=REMOVER_NAMES, insertion_removers=["insertion_blur", "gray"],
             methods=["SP", "SP-R", "SP-O", "random"]),
    ],
    "04_sam_sensitivity": [
        dict(n_images=2, methods=["SP-G", "SP-O", "LIME", "LIME-R", "MP2-G", "FIDO-CA-SDR",
                                  "SmoothGrad", "RISE"],
             sweep={"seed": [0, 1], "window": [5, 8], "n_samples": [20, 40],
                    "spread": [0.15, 0.2]}, against="all"),
    ],
    "05_gad_class_distancing": [
        dict(class_a="star", class_b="cross", alphas=[0, 4], methods=GRADIENTS, k=1, n_train=32,
             epochs=1, n_images=2, remover="blur"),
    ],
    "06_roar": [
        dict(n_train=16, n_test=8, methods=["sobel", "SP-G"], fractions=[0.3], modes=["kar"],
             fills=["inpaint"]),
    ],
}
"""Notebook stem -> parameter overrides of each smoke run."""

BAD: dict[str, tuple[dict, str]] = {
    "01_counterfactual_plausibility": (
        dict(n_images=2, n_masks=1, n_method_masks=1, n_boot=0, removers=["gray", "nope"],
             methods=["SP"]),
        "valid names"),
    "02_localization": (dict(n_images=1, n_val=1, methods=["SP", "nope"]), "valid names"),
    "03_deletion": (dict(n_images=1, steps=4, removers=["gray", "nope"], methods=["SP"]),
                    "valid names"),
    "04_sam_sensitivity": (dict(n_images=1, methods=["nope"]), "valid names"),
    "05_gad_class_distancing": (dict(n_images=1, methods=["nope"]), "valid"),
    "06_roar": (dict(fills=["nope"]), "valid"),
}
"""Notebook stem -> (overrides with an unknown name, text the error must contain)."""


def _conftest():
    """tests/conftest.py as a module (its cheap-parameter helpers), loaded by path: several
    test folders have a conftest.py, so ``import conftest`` is ambiguous."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("kit_tests_conftest",
                                                  ROOT / "tests" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(stem: str, params: dict, tmp_path: Path, monkeypatch) -> Path:
    nb = NOTEBOOKS / f"{stem}.ipynb"
    declared = pm.inspect_notebook(str(nb))
    unknown = sorted(set(params) - set(declared))
    assert not unknown, f"{stem} declares no parameter(s) {unknown}; it has {sorted(declared)}"
    monkeypatch.setenv("KIT_OUTPUT", str(tmp_path))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel picks the inline backend
    out = tmp_path / f"{stem}.ipynb"
    params = {**_conftest().cheap_parameters(stem), **params}
    pm.execute_notebook(str(nb), str(out), parameters=params, kernel_name="python3",
                        cwd=str(ROOT), progress_bar=False)
    return out


@pytest.mark.parametrize(
    "stem,params",
    [pytest.param(s, p, id=f"{s}-{i}") for s, ps in CASES.items() for i, p in enumerate(ps)],
)
def test_smoke(stem, params, tmp_path, monkeypatch):
    if not (NOTEBOOKS / f"{stem}.ipynb").exists():
        pytest.fail(f"notebooks/{stem}.ipynb is missing")
    _run(stem, params, tmp_path, monkeypatch)
    results = tmp_path / "results"
    assert (results / f"{stem}.csv").exists(), "the notebook wrote no results table"
    assert any((tmp_path / "figures" / stem).glob("*.png")), "the notebook saved no figure"


@pytest.mark.parametrize("stem", sorted(BAD))
def test_unknown_name_fails_clearly(stem, tmp_path, monkeypatch):
    params, expected = BAD[stem]
    with pytest.raises(pm.PapermillExecutionError) as info:
        _run(stem, params, tmp_path, monkeypatch)
    assert expected in str(info.value.evalue), info.value.evalue


def test_every_notebook_has_a_smoke_case():
    stems = {p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")}
    # 00 has no name parameters (nbval runs it); the explorer's widgets have their own tests
    missing = sorted(stems - set(CASES) - {"00_world", "07_explorer"})
    assert not missing, f"no papermill smoke case for {missing}"


def test_params_files_only_name_declared_parameters():
    import yaml

    # make run's, the cheap (nbval) and the audit-sized (params/full) configurations
    for path in sorted([*(ROOT / "params").glob("*.yaml"), *(ROOT / "params").glob("*/*.yaml")]):
        if path.parent.name == "grids":  # grid files have their own test (test_run_notebooks)
            continue
        nb = NOTEBOOKS / f"{path.stem}.ipynb"
        assert nb.exists(), f"{path.name} has no notebook"
        declared = pm.inspect_notebook(str(nb))
        params = yaml.safe_load(path.read_text()) or {}
        unknown = sorted(set(params) - set(declared))
        assert not unknown, f"{path.name}: {unknown} are not parameters of {nb.name}"



@pytest.mark.parametrize("stem", ["01_counterfactual_plausibility", "02_localization",
                                  "03_deletion", "04_sam_sensitivity"])
def test_full_runs_report_every_rung(stem):
    # make run's configuration: each perturbation method it lists comes with all its rungs
    # (X, X-G, X-R, X-O), so the summary can say which rung makes a claim hold
    import yaml

    from kit.attributors import ladder

    methods = yaml.safe_load((ROOT / "params" / f"{stem}.yaml").read_text())["methods"]
    for base, rungs in ladder().items():
        listed = [n for n in rungs.values() if n in methods]
        if listed:
            assert listed == list(rungs.values()), f"{stem}: {base} lists {listed} of {rungs}"
    assert any(len(r) == 4 for r in ladder(methods).values())



TEACH = ["01_counterfactual_plausibility", "02_localization", "03_deletion", "04_sam_sensitivity"]
"""Notebooks whose defaults are the teach configuration (params/README.md)."""


@pytest.mark.parametrize("stem", TEACH)
def test_nbval_runs_the_cheap_configuration_after_the_teach_defaults(stem):
    # A person opening the notebook gets the teach configuration (>= 32 images at the make-run
    # budget, so that its verdicts can agree with make run's); nbval and the smoke tests must not:
    # params/cheap overrides every default that makes the teach run cost minutes.
    inspected = pm.inspect_notebook(str(NOTEBOOKS / f"{stem}.ipynb"))
    declared = {k: v["default"] for k, v in inspected.items()}
    assert int(declared["n_images"]) >= 32, f"{stem}: teach default n_images {declared['n_images']}"
    assert declared["profile"].strip("'\"") == "full", f"{stem}: teach profile {declared['profile']}"
    cheap = _conftest().cheap_parameters(stem)
    assert cheap.get("profile") == "cheap" and cheap.get("n_images", 99) <= 8, (stem, cheap)
    # the injected assignments execute after the defaults and leave the cheap values in force
    import json

    namespace: dict = {}
    cells = json.loads((NOTEBOOKS / f"{stem}.ipynb").read_text())["cells"]
    cell = next(c for c in cells if "parameters" in c["metadata"].get("tags", []))
    exec("".join(cell["source"]) + _conftest().injected_source(cheap), namespace)
    assert {k: namespace[k] for k in cheap} == cheap
    # the teach check compares this run's verdicts with make run's, but never under nbval's
    # output comparison: the cheap run's verdicts differ from the teach run's
    text = (NOTEBOOKS / f"{stem}.ipynb").read_text()
    assert "report.teach_check(NB, pairs)" in text and "teach-verdicts" in text
