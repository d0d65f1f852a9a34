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
