"""The attributor contract (style.md §5, §11), checked for every entry of ``ATTRIBUTORS`` as
registered at collection time, and for each of a subset of removers where the attributor takes
``remover=``.

Each attributor runs on ``tiny_cnn`` with 2x3x32x32 images and cheap hyperparameters: ``CHEAP``
gives values by keyword name (passed only where the attributor's signature has that keyword),
``CHEAP_BY_NAME`` overrides them per attributor; anything not listed keeps its default. A newly
registered method whose expensive knobs have other names should add them here.
"""

from __future__ import annotations

import inspect
import random
import warnings

import captum.attr  # noqa: F401  (import-time warnings must not be blamed on an attributor)
import numpy as np
import pytest
import torch

from kit.attributors import ATTRIBUTORS, get_attributor

REMOVERS = ["gray", "blur"]
TARGETS = torch.tensor([0, 2])

CHEAP = {
    "steps": 8,  # IG
    "n_samples": 4,  # SmoothGrad family (LIME: see CHEAP_BY_NAME)
    "n_masks": 64,  # RISE
    "window": 8,  # sliding patch
    "stride": 8,
    "iterations": 5,  # mask optimisation (MP, MP2, FIDO)
    "grid": 4,
    "n_segments": 10,  # LIME superpixels
}
CHEAP_BY_NAME = {
    "lime": {"n_samples": 32},
}


def cheap_kwargs(name: str, fn) -> dict:
    params = inspect.signature(fn).parameters
    wanted = {**CHEAP, **CHEAP_BY_NAME.get(name, {})}
    return {k: v for k, v in wanted.items() if k in params}


def _cases():
    for name, fn in ATTRIBUTORS.items():
        if inspect.signature(fn).parameters["remover"].default is not None:  # removes pixels
            for r in REMOVERS:
                yield pytest.param(name, r, id=f"{name}-{r}")
        else:
            yield pytest.param(name, None, id=name)


CASES = list(_cases())
NAMES = list(ATTRIBUTORS)


@pytest.fixture
def run(tiny_cnn):
    """``run(name, remover, x, target=..., **kw)``: call the attributor with its cheap kwargs."""

    def call(name, remover, x, target=TARGETS, model=tiny_cnn, **kw):
        fn = ATTRIBUTORS[name]
        kwargs = cheap_kwargs(name, fn)
        if remover is not None:
            kwargs["remover"] = remover
        kwargs.update(kw)
        return fn(model, x, target, **kwargs)

    return call


@pytest.mark.parametrize("name", NAMES)
def test_signature(name):
    """Positional (model, x, target); every other argument keyword-only with a default."""
    params = list(inspect.signature(ATTRIBUTORS[name]).parameters.values())
    assert [p.name for p in params[:3]] == ["model", "x", "target"]
    assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params[:3])
    for p in params[3:]:
        assert p.kind is p.KEYWORD_ONLY and p.default is not p.empty, p.name
    # the one uniform signature: callers never inspect it to decide what to pass
    names = [p.name for p in params]
    assert {"remover", "seed", "batch_size", "progress"} <= set(names[3:]), names


@pytest.mark.parametrize("name", NAMES)
def test_uniform_keywords_accepted(tiny_cnn, images, name):
    """seed, batch_size and progress are accepted by every attributor; methods that remove no
    pixels refuse a remover by name."""
    fn = ATTRIBUTORS[name]
    if inspect.signature(fn).parameters["remover"].default is None:
        with pytest.raises(ValueError, match="remover"):
            fn(tiny_cnn, images, TARGETS, remover="gray")


@pytest.mark.parametrize("name, remover", CASES)
def test_output_shape_dtype_finite(run, images, name, remover):
    sal = run(name, remover, images)
    assert isinstance(sal, torch.Tensor)
    assert sal.dim() == 4 and sal.shape[:2] == (2, 1), tuple(sal.shape)
    assert 1 <= sal.shape[2] <= 32 and 1 <= sal.shape[3] <= 32
    assert sal.dtype == torch.float32 and sal.device == images.device
    assert torch.isfinite(sal).all()
    assert not sal.requires_grad


@pytest.mark.parametrize("name, remover", CASES)
def test_deterministic(run, images, name, remover):
    assert torch.equal(run(name, remover, images), run(name, remover, images))


@pytest.mark.parametrize("name, remover", CASES)
def test_batch_consistency(run, images, name, remover):
    """N = 2 equals two stacked N = 1 calls."""
    both = run(name, remover, images)
    one_by_one = torch.cat([run(name, remover, images[i : i + 1], target=t)
                            for i, t in enumerate((0, 2))])
    torch.testing.assert_close(both, one_by_one, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name, remover", CASES)
def test_batch_size_does_not_change_result(run, images, name, remover):
    if "batch_size" not in inspect.signature(ATTRIBUTORS[name]).parameters:
        pytest.skip("no batch_size argument")
    torch.testing.assert_close(run(name, remover, images, batch_size=1),
                               run(name, remover, images), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name, remover", CASES)
def test_target_int_equals_tensor(run, images, name, remover):
    torch.testing.assert_close(run(name, remover, images, target=1),
                               run(name, remover, images, target=torch.tensor([1, 1])))


def _hooks(model):
    return [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks),
             len(m._backward_pre_hooks)) for m in model.modules()]


@pytest.mark.parametrize("name, remover", CASES)
def test_model_and_input_unchanged(run, tiny_cnn, images, name, remover):
    """Training modes, requires_grad flags, ReLU in-place flags restored; no hooks left;
    x neither modified nor made to require grad."""
    tiny_cnn.net.body[0].train()  # a mixed state the attributor must give back as it was
    tiny_cnn.net.fc.weight.requires_grad_(True)
    modes = [m.training for m in tiny_cnn.modules()]
    flags = [p.requires_grad for p in tiny_cnn.parameters()]
    inplace = [getattr(m, "inplace", None) for m in tiny_cnn.modules()]
    hooks = _hooks(tiny_cnn)
    params = [p.detach().clone() for p in tiny_cnn.parameters()]
    x = images.clone()
    run(name, remover, x)
    assert [m.training for m in tiny_cnn.modules()] == modes
    assert [p.requires_grad for p in tiny_cnn.parameters()] == flags
    assert [getattr(m, "inplace", None) for m in tiny_cnn.modules()] == inplace
    assert _hooks(tiny_cnn) == hooks
    assert all(torch.equal(a, b) for a, b in zip(params, tiny_cnn.parameters(), strict=True))
    assert all(p.grad is None for p in tiny_cnn.parameters())
    assert torch.equal(x, images) and not x.requires_grad and x.grad is None


@pytest.mark.parametrize("name, remover", CASES)
def test_silent(run, images, capsys, name, remover):
    """Nothing on stdout or stderr, no warnings shown by default (deprecations aside)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(name, remover, images)
    out, err = capsys.readouterr()
    assert out == "" and err == ""
    shown = [w for w in caught
             if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning))]
    assert not shown, [str(w.message) for w in shown]


@pytest.mark.parametrize("name, remover", CASES)
def test_global_rng_untouched(run, images, name, remover):
    states = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()  # noqa: NPY002
    run(name, remover, images)
    assert torch.equal(torch.get_rng_state(), states[0])
    assert np.array_equal(np.random.get_state()[1], states[1])  # noqa: NPY002
    assert random.getstate() == states[2]


BAD_INPUTS = {
    "rank": (lambda x: x[0], 2, r"\bx\b"),
    "channels": (lambda x: x[:, :1], 2, r"\bx\b"),
    "uint8": (lambda x: (x * 255).to(torch.uint8), 2, r"\bx\b"),
    "range": (lambda x: x * 255, 2, r"\bx\b"),
    "nan": (lambda x: x.masked_fill(x > 0.9, float("nan")), 2, r"\bx\b"),
    "target_high": (lambda x: x, 3, r"\btarget\b"),
    "target_negative": (lambda x: x, -1, r"\btarget\b"),
    "target_length": (lambda x: x, torch.tensor([0, 1, 2]), r"\btarget\b"),
    "target_float": (lambda x: x, 1.0, r"\btarget\b"),
}


@pytest.mark.parametrize("bad", list(BAD_INPUTS))
@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_name_the_argument(run, images, name, bad):
    make_x, target, pattern = BAD_INPUTS[bad]
    fn = ATTRIBUTORS[name]
    removes = inspect.signature(fn).parameters["remover"].default is not None
    remover = "gray" if removes else None
    with pytest.raises((ValueError, TypeError), match=pattern):
        run(name, remover, make_x(images), target=target)


def test_unknown_attributor_name():
    with pytest.raises(ValueError, match="unknown attributor 'nope'.*saliency"):
        get_attributor("nope")
    for name, fn in ATTRIBUTORS.items():
        assert get_attributor(name) is fn


def _background_methods():
    from kit.attributors import METHODS
    from kit.removers import REMOVERS as ALL_REMOVERS

    return [n for n, m in METHODS.items()
            if m.remover is not None and ALL_REMOVERS[m.remover].needs_backgrounds]


@pytest.mark.parametrize("method", _background_methods())
def test_oracle_rung_through_explain(tiny_cnn, images, method):
    """Every method whose remover fills from the true backgrounds (the O rung) runs through
    ``explain(..., backgrounds=)``, slices the backgrounds with its images (N = 2 equals two
    N = 1 calls), and without backgrounds says what to pass."""
    from kit.attributors import METHODS, explain

    assert _background_methods(), "no O-rung method registered"
    attributor = METHODS[method].attributor
    kw = cheap_kwargs(attributor, ATTRIBUTORS[attributor])
    bg = torch.rand(images.shape, generator=torch.Generator().manual_seed(5))
    both = explain(method, tiny_cnn, images, TARGETS, backgrounds=bg, **kw)
    assert both.shape[:2] == (2, 1) and torch.isfinite(both).all()
    one_by_one = torch.cat([explain(method, tiny_cnn, images[i:i + 1], int(t),
                                    backgrounds=bg[i:i + 1], **kw)
                            for i, t in enumerate(TARGETS)])
    torch.testing.assert_close(both, one_by_one, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="backgrounds="):
        explain(method, tiny_cnn, images, TARGETS, **kw)
