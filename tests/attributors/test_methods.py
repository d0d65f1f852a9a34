"""The METHODS table: every entry resolves to a registered attributor and a known remover."""

import pytest
import torch

from kit.attributors import ATTRIBUTORS, METHODS, explain
from kit.removers import REMOVERS

PAPER = ["SP", "SP-G", "LIME", "LIME-G", "MP", "MP-G", "MP2", "MP2-G", "FIDO-CA-SDR", "FIDO-CA-SSR"]


def test_table_is_complete_and_consistent():
    assert set(PAPER) <= set(METHODS) and "random" in METHODS
    for name, m in METHODS.items():
        assert m.attributor in ATTRIBUTORS, name
        assert m.remover is None or m.remover in REMOVERS, name
    for x in ("SP", "LIME", "MP", "MP2"):  # X and X-G differ only by the remover
        a, g = METHODS[x], METHODS[f"{x}-G"]
        assert a.attributor == g.attributor and a.params == g.params and g.remover == "inpaint"


def test_explain_equals_the_direct_call(linear_model):
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    a = explain("SP", linear_model, x, 0, window=8, stride=8)
    b = ATTRIBUTORS["sliding_patch"](linear_model, x, 0, remover="gray", window=8, stride=8)
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="unknown method 'SP-X'; valid names: SP, SP-G"):
        explain("SP-X", linear_model, x, 0)


def test_profiles_name_real_methods_and_accepted_parameters():
    import inspect

    from kit.attributors import PROFILES, get_attributor

    assert {"reference", "full", "cheap"} <= set(PROFILES) and PROFILES["reference"] == {}
    for profile, table in PROFILES.items():
        for name, params in table.items():
            assert name in METHODS, f"PROFILES[{profile!r}] names unknown method {name!r}"
            accepted = inspect.signature(get_attributor(METHODS[name].attributor)).parameters
            bad = sorted(set(params) - set(accepted))
            assert not bad, f"PROFILES[{profile!r}][{name!r}]: {bad} not accepted"


def test_budget_layers_explicit_overrides_on_the_profile():
    from kit.attributors import PROFILES, budget

    got = budget("full", ["SP", "SP-G", "LIME", "Saliency"], {"sliding_patch": {"stride": 8},
                                                              "lime": {"n_samples": 0}})
    # the profile's other keys survive, the explicit stride wins, 0 keeps the profile's value
    assert got["SP-G"] == {**PROFILES["full"]["SP-G"], "stride": 8}
    assert got["SP"] == {"stride": 8}
    assert got["LIME"] == PROFILES["full"]["LIME"]
    assert "Saliency" not in got  # nothing to override: the method's defaults (and cache key)
    assert budget("reference", ["SP"]) == {}
    with pytest.raises(ValueError, match="profile: unknown profile 'fast'; valid names: reference"):
        budget("fast", ["SP"])
    with pytest.raises(ValueError, match="methods: unknown method.*'SPG'.*valid names: SP"):
        budget("full", ["SPG"])


def test_ladder_is_derived_from_the_registry():
    from kit.attributors.methods import GENERATIVE, RUNG_OF, RUNGS, ladder, pairs, rung

    lad = ladder()
    perturbation = {m.attributor for m in METHODS.values() if m.remover is not None}
    assert {METHODS[n].attributor for r in lad.values() for n in r.values()} == perturbation
    for base, rungs in lad.items():
        assert list(rungs) == [r for r in RUNGS if r in rungs], base  # rungs in ladder order
        assert {"G", "R", "O"} <= set(rungs), base  # every method has every generative rung
        family = {(METHODS[n].attributor, repr(sorted(METHODS[n].params.items())))
                  for n in rungs.values()}
        assert len(family) == 1, base  # the rungs differ by the remover only
        for r, n in rungs.items():
            assert rung(n) == r and RUNG_OF.get(METHODS[n].remover, "X") == r
    # every method with an X rung has it; FIDO-CA is itself the G rung (no X in the paper)
    assert {b for b, r in lad.items() if "X" not in r} == {"FIDO-SDR", "FIDO-SSR"}
    assert lad["SP"] == {"X": "SP", "G": "SP-G", "R": "SP-R", "O": "SP-O"}
    assert lad["FIDO-SDR"] == {"G": "FIDO-CA-SDR", "R": "FIDO-R-SDR", "O": "FIDO-O-SDR"}
    # restricted to the methods present (older results without X-R / X-O rungs)
    assert ladder(["SP", "SP-G", "MP-O", "Saliency", "nope"]) == {
        "SP": {"X": "SP", "G": "SP-G"}, "MP": {"O": "MP-O"}}
    # pairs: X against X-G only, never X-R or X-O against X-G, in registry order
    assert pairs() == [(r["X"], r["G"]) for r in lad.values() if "X" in r]
    assert pairs() == [("SP", "SP-G"), ("LIME", "LIME-G"), ("MP", "MP-G"), ("MP2", "MP2-G"),
                       ("KernelSHAP", "KernelSHAP-G"), ("RISE", "RISE-G")]
    assert pairs(["SP-O", "SP-G", "SP-R"]) == [] and GENERATIVE == ("inpaint",)
    assert rung("Saliency") is None
    with pytest.raises(ValueError, match="unknown method 'SPG'"):
        rung("SPG")


def test_explain_oracle_rung_needs_backgrounds(linear_model):
    from kit.removers import TrueBackground

    g = torch.Generator().manual_seed(3)
    x, bg = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    with pytest.raises(ValueError, match=r"backgrounds: method 'SP-O'.*pass backgrounds=.*"
                                         r"kit\.world\.sample\(\.\.\.\)\.backgrounds"):
        explain("SP-O", linear_model, x, 0, window=8, stride=8)
    with pytest.raises(ValueError, match=r"backgrounds: expected shape \(2, 3, 32, 32\)"):
        explain("SP-O", linear_model, x, 0, backgrounds=bg[:1], window=8, stride=8)
    got = explain("SP-O", linear_model, x, 0, backgrounds=bg, window=8, stride=8)
    direct = ATTRIBUTORS["sliding_patch"](linear_model, x, 0, remover=TrueBackground(bg),
                                          window=8, stride=8)
    assert torch.equal(got, direct)
    # backgrounds are ignored by rungs that do not fill from them, and by an explicit remover
    assert torch.equal(explain("SP", linear_model, x, 0, backgrounds=bg, window=8, stride=8),
                       explain("SP", linear_model, x, 0, window=8, stride=8))
    assert torch.equal(explain("SP-O", linear_model, x, 0, remover="gray", window=8, stride=8),
                       explain("SP", linear_model, x, 0, window=8, stride=8))


def test_explain_removal_rung(linear_model):
    """X-R fills with the removal inpainter; a stand-in Inpainter shows the wiring, and while the
    shipped file is absent the rung fails with the loader's error naming it."""
    from kit.models import Inpainter
    from kit.paths import DATA_DIR
    from kit.removers import Inpaint, InpaintRemoval

    class Flat(Inpainter):
        def generate(self, images, hole):
            return torch.full_like(images, 0.3)

    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    flat = Flat()
    assert torch.equal(
        explain("SP-R", linear_model, x, 0, remover=InpaintRemoval(model=flat), window=8,
                stride=8),
        explain("SP-G", linear_model, x, 0, remover=Inpaint(model=flat), window=8, stride=8))
    if not (DATA_DIR / "world_inpainter_removal.pt").exists():
        with pytest.raises((FileNotFoundError, ValueError), match="removal"):
            explain("SP-R", linear_model, x, 0, window=8, stride=8)
