"""Gradient attributors, Grad-CAM and the random baseline: closed forms on the oracle models and
equivalence with the Captum classes (style.md §11; methods.md §3.6)."""

from __future__ import annotations

import pytest
import torch
from captum.attr import (
    GuidedBackprop,
    InputXGradient,
    IntegratedGradients,
    LayerGradCam,
    NoiseTunnel,
    Saliency,
)
from torch import nn

from kit.attributors import (
    ATTRIBUTORS,
    grad_cam,
    guided_backprop,
    input_x_gradient,
    integrated_gradients,
    random_baseline,
    saliency,
    smoothgrad,
    smoothgrad_sq,
    vargrad,
)
from kit.attributors.grad_cam import block_output, last_conv
from kit.attributors.gradients import REDUCTIONS, gradient_explain

TARGETS = torch.tensor([0, 2])


def assert_close(a, b, rtol=1e-5, atol=1e-6):
    torch.testing.assert_close(a.float(), b.float(), rtol=rtol, atol=atol)


def w_t(model, target=TARGETS):
    """``(N,3,H,W)`` exact logit gradient of the linear model."""
    return model.net.weights()[target]


# ------------------------------------------------------------------ closed forms on linear_model


def test_saliency_is_max_abs_weight(linear_model, images):
    sal = saliency(linear_model, images, TARGETS)
    assert sal.shape == (2, 1, 32, 32) and sal.dtype == torch.float32
    assert_close(sal, w_t(linear_model).abs().amax(1, keepdim=True))


def test_input_x_gradient_is_x_times_weight(linear_model, images):
    assert_close(input_x_gradient(linear_model, images, TARGETS),
                 (images * w_t(linear_model)).sum(1, keepdim=True))


@pytest.mark.parametrize("steps", [2, 8])
def test_integrated_gradients_exact_for_linear_logit(linear_model, images, steps):
    """Black baseline: IG = x * w for any number of steps, and it sums to S(x) - S(0)."""
    sal = integrated_gradients(linear_model, images, TARGETS, steps=steps)
    assert_close(sal, (images * w_t(linear_model)).sum(1, keepdim=True))
    logits = linear_model(images).gather(1, TARGETS[:, None]).squeeze(1)
    zero = linear_model(torch.zeros_like(images)).gather(1, TARGETS[:, None]).squeeze(1)
    assert_close(sal.sum((1, 2, 3)), logits - zero, rtol=1e-4, atol=1e-4)


def test_integrated_gradients_baseline(linear_model, images):
    sal = integrated_gradients(linear_model, images, TARGETS, steps=4, baseline=0.5)
    assert_close(sal, ((images - 0.5) * w_t(linear_model)).sum(1, keepdim=True))
    tensor_base = torch.full((1, 3, 32, 32), 0.5)
    assert_close(integrated_gradients(linear_model, images, TARGETS, steps=4,
                                      baseline=tensor_base), sal)
    with pytest.raises(ValueError, match="baseline"):
        integrated_gradients(linear_model, images, TARGETS, baseline=torch.zeros(3, 5, 5))


def test_smoothgrad_family_closed_forms(linear_model, images):
    """Noise cancels for a linear logit: SG = gradient, SG² = gradient², VarGrad = 0."""
    w = w_t(linear_model)
    kw = dict(n_samples=5, spread=0.3)
    assert_close(smoothgrad(linear_model, images, TARGETS, **kw), w.abs().amax(1, keepdim=True))
    assert_close(smoothgrad_sq(linear_model, images, TARGETS, **kw), (w * w).sum(1, keepdim=True))
    var = vargrad(linear_model, images, TARGETS, **kw)
    assert var.abs().max() < 1e-9


def test_guided_backprop_without_relus_is_saliency(linear_model, images):
    assert_close(guided_backprop(linear_model, images, TARGETS),
                 saliency(linear_model, images, TARGETS))


@pytest.mark.parametrize("score", ["prob", "logprob"])
def test_score_variants_closed_form(linear_model, images, score):
    """d log p_t / dx = w_t - sum_c p_c w_c; d p_t / dx = p_t times that."""
    p = linear_model(images).softmax(1)
    w_all = linear_model.net.weights()
    dlogp = w_t(linear_model) - torch.einsum("nc,cdhw->ndhw", p, w_all)
    want = dlogp if score == "logprob" else p.gather(1, TARGETS[:, None])[..., None, None] * dlogp
    res = gradient_explain(linear_model, images, TARGETS, method="saliency", score=score)
    assert_close(res.per_channel, want, rtol=1e-4, atol=1e-7)


def test_gradient_explain_reductions(linear_model, images):
    for method, how in REDUCTIONS.items():
        res = gradient_explain(linear_model, images, TARGETS, method=method, steps=4, n_samples=3)
        want = (res.per_channel.abs().amax(1, keepdim=True) if how == "max_abs"
                else res.per_channel.sum(1, keepdim=True))
        assert res.method == method and res.per_channel.shape == (2, 3, 32, 32)
        assert_close(res.sal, want, rtol=0, atol=0)
        assert_close(res.sal, ATTRIBUTORS[method](linear_model, images, TARGETS,
                                                   **_hp(method, steps=4, n_samples=3)))


def _hp(method, **kw):
    if method == "integrated_gradients":
        return {"steps": kw["steps"]}
    if method in ("smoothgrad", "smoothgrad_sq", "vargrad"):
        return {"n_samples": kw["n_samples"]}
    return {}


# ------------------------------------------------------------------ patch_model: argmax in square


@pytest.mark.parametrize("name", ["saliency", "input_x_gradient", "integrated_gradients",
                                  "smoothgrad", "smoothgrad_sq", "guided_backprop"])
@pytest.mark.parametrize("score", ["logit", "prob"])
def test_patch_model_argmax_in_square(patch_model, images, name, score):
    sal = ATTRIBUTORS[name](patch_model, images, 0, score=score, **_hp(name, steps=4, n_samples=4))
    inside = patch_model.net.inside()
    for m in sal[:, 0]:
        assert inside.flatten()[m.flatten().argmax()]
        assert m[~inside].abs().max() <= 1e-6 < m[inside].max()


# ------------------------------------------------------------------ Captum equivalence on tiny_cnn


def _captum_fwd(model):
    return lambda z: model(z)


@pytest.mark.filterwarnings("ignore:Setting backward hooks:UserWarning")
def test_captum_equivalence_plain(tiny_cnn, images):
    fwd = _captum_fwd(tiny_cnn)
    x = images.clone().requires_grad_(True)
    g = Saliency(fwd).attribute(x, target=TARGETS, abs=False).detach()
    assert_close(gradient_explain(tiny_cnn, images, TARGETS).per_channel, g)
    assert_close(saliency(tiny_cnn, images, TARGETS), g.abs().amax(1, keepdim=True))
    ixg = InputXGradient(fwd).attribute(x, target=TARGETS).detach()
    assert_close(input_x_gradient(tiny_cnn, images, TARGETS), ixg.sum(1, keepdim=True))
    ig = IntegratedGradients(fwd).attribute(x, baselines=0.0, target=TARGETS, n_steps=6,
                                            method="riemann_right").detach()
    assert_close(integrated_gradients(tiny_cnn, images, TARGETS, steps=6),
                 ig.sum(1, keepdim=True), rtol=1e-4, atol=1e-6)
    gb = GuidedBackprop(tiny_cnn).attribute(x, target=TARGETS).detach()
    assert_close(guided_backprop(tiny_cnn, images, TARGETS), gb.abs().amax(1, keepdim=True))
    assert not torch.allclose(gb, g)  # the ReLU rule matters on this model


@pytest.mark.parametrize("nt_type, name", [("smoothgrad", "smoothgrad"),
                                           ("smoothgrad_sq", "smoothgrad_sq"),
                                           ("vargrad", "vargrad")])
def test_captum_noise_tunnel_equivalence(tiny_cnn, images, nt_type, name):
    """Same noise (NoiseTunnel's global draws under manual_seed(s) = our private draws)."""
    x, t, seed, sigma, n = images[:1], TARGETS[:1], 7, 0.2, 6
    ours = gradient_explain(tiny_cnn, x, t, method=name, n_samples=n, sigma=sigma, seed=seed,
                            batch_size=4).per_channel
    torch.manual_seed(seed)
    ref = NoiseTunnel(Saliency(_captum_fwd(tiny_cnn))).attribute(
        x.clone().requires_grad_(True), nt_type=nt_type, nt_samples=n, nt_samples_batch_size=n,
        stdevs=sigma, target=t, abs=False).detach()
    assert_close(ours, ref, rtol=1e-4, atol=1e-7)


def test_smoothgrad_spread_is_relative_to_image_range(tiny_cnn, images):
    x = images[:1] * 0.5
    sigma = 0.15 * float(x.max() - x.min())
    assert_close(smoothgrad(tiny_cnn, x, 0, n_samples=3),
                 smoothgrad(tiny_cnn, x, 0, n_samples=3, sigma=sigma))


def test_smoothgrad_seed_and_batch_size(tiny_cnn, images):
    a = smoothgrad(tiny_cnn, images, TARGETS, n_samples=4, seed=0)
    assert not torch.equal(a, smoothgrad(tiny_cnn, images, TARGETS, n_samples=4, seed=1))
    for bs in (1, 3):
        assert_close(smoothgrad(tiny_cnn, images, TARGETS, n_samples=4, batch_size=bs), a)
    assert_close(integrated_gradients(tiny_cnn, images, TARGETS, steps=5, batch_size=1),
                 integrated_gradients(tiny_cnn, images, TARGETS, steps=5))


def test_guided_backprop_inplace_relus(tiny_cnn, images):
    want = guided_backprop(tiny_cnn, images, TARGETS)
    relus = [m for m in tiny_cnn.modules() if isinstance(m, nn.ReLU)]
    for m in relus:
        m.inplace = True
    assert_close(guided_backprop(tiny_cnn, images, TARGETS), want)
    assert all(m.inplace for m in relus)


def test_float64_model_and_input(tiny_cnn, images):
    sal = integrated_gradients(tiny_cnn.double(), images.double(), TARGETS, steps=4)
    assert sal.dtype == torch.float32


def test_errors(linear_model, images):
    with pytest.raises(ValueError, match="steps"):
        integrated_gradients(linear_model, images, 0, steps=1)
    with pytest.raises(ValueError, match="n_samples"):
        smoothgrad(linear_model, images, 0, n_samples=0)
    with pytest.raises(ValueError, match="spread"):
        vargrad(linear_model, images, 0, spread=-0.1)
    with pytest.raises(ValueError, match="score"):
        saliency(linear_model, images, 0, score="proba")
    with pytest.raises(ValueError, match="batch_size"):
        saliency(linear_model, images, 0, batch_size=0)
    with pytest.raises(ValueError, match="method"):
        gradient_explain(linear_model, images, 0, method="deconvnet")
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        saliency(linear_model, images, 0)


# ------------------------------------------------------------------ Grad-CAM


def _activation(model, module, x):
    out = []
    h = module.register_forward_hook(lambda _m, _i, o: out.append(o.detach()))
    try:
        with torch.no_grad():
            model(x)
    finally:
        h.remove()
    return out[-1]


def test_grad_cam_default_layer_is_the_last_blocks_output(tiny_cnn, images):
    """The hooked layer is the block output after its ReLU, not the last convolution."""
    layer = block_output(tiny_cnn, images)
    assert layer is tiny_cnn.net.body                   # the Sequential, ending in its ReLU
    act = _activation(tiny_cnn, layer, images)
    assert act.shape == (2, 8, 16, 16) and (act >= 0).all() and (act == 0).any()
    assert (_activation(tiny_cnn, last_conv(tiny_cnn), images) < 0).any()   # before the ReLU
    sal = grad_cam(tiny_cnn, images, TARGETS)
    assert sal.shape == (2, 1, 16, 16) and sal.dtype == torch.float32
    assert (sal >= 0).all()
    ref = LayerGradCam(_captum_fwd(tiny_cnn), tiny_cnn.net.body).attribute(
        images, target=TARGETS, relu_attributions=True).detach()
    assert_close(sal, ref)
    old = grad_cam(tiny_cnn, images, TARGETS, layer=last_conv(tiny_cnn))
    assert not torch.allclose(sal, old)                 # the layer choice matters


def test_grad_cam_layer_of_the_world_classifier_and_a_resnet():
    from torchvision.models import resnet18

    from kit.models import Classifier, load_classifier
    from kit.nets import WorldCNN

    torch.manual_seed(0)
    world = Classifier(WorldCNN(n_classes=2, width=4), ("a", "b"), name="world-like")
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    assert block_output(world, x) is world.net.body     # after the last block's BN and ReLU
    assert (_activation(world, world.net.body, x) >= 0).all()
    assert not isinstance(world.net.body[-1], nn.Conv2d) and isinstance(world.net.body[-1], nn.ReLU)
    net = resnet18(num_classes=3)
    resnet = Classifier(net, ("a", "b", "c"), name="resnet18")
    assert block_output(resnet, x) is net.layer4        # not layer4's reused ReLU module
    assert grad_cam(resnet, x, 0).shape == (2, 1, 2, 2)
    shipped = load_classifier("world")
    assert block_output(shipped, x) is shipped.net.body


def test_grad_cam_layer_argument(tiny_cnn, linear_model, images):
    by_name = grad_cam(tiny_cnn, images, TARGETS, layer="net.body.0")
    assert by_name.shape == (2, 1, 32, 32)
    assert_close(by_name, grad_cam(tiny_cnn, images, TARGETS, layer=tiny_cnn.net.body[0]))
    with pytest.raises(ValueError, match="layer"):
        grad_cam(tiny_cnn, images, 0, layer="net.nope")
    with pytest.raises(ValueError, match="layer"):
        grad_cam(tiny_cnn, images, 0, layer=nn.Conv2d(3, 3, 1))
    with pytest.raises(ValueError, match="layer"):
        grad_cam(linear_model, images, 0)


# ------------------------------------------------------------------ random baseline


def test_random_baseline(tiny_cnn, images):
    assert ATTRIBUTORS["random"] is random_baseline
    sal = random_baseline(tiny_cnn, images, 0)
    assert sal.shape == (2, 1, 32, 32) and sal.dtype == torch.float32
    assert 0 <= sal.min() and sal.max() < 1
    assert not torch.equal(sal[0], sal[1])  # different images, independent maps
    same = random_baseline(tiny_cnn, images[:1].expand(2, -1, -1, -1), 0)
    assert torch.equal(same[0], same[1]) and torch.equal(same[0], sal[0])
    assert not torch.equal(random_baseline(tiny_cnn, images, 0, seed=1), sal)
    assert random_baseline(tiny_cnn, images, 0, size=8).shape == (2, 1, 8, 8)
    assert random_baseline(tiny_cnn, images, 0, size=(4, 6)).shape == (2, 1, 4, 6)
    with pytest.raises(ValueError, match="size"):
        random_baseline(tiny_cnn, images, 0, size=0)


def test_progress_bar_only_on_request(linear_model, images, capsys):
    saliency(linear_model, images, TARGETS, batch_size=1)
    assert capsys.readouterr().err == ""
    smoothgrad(linear_model, images, TARGETS, n_samples=2, batch_size=1, progress=True)
    assert "smoothgrad" in capsys.readouterr().err
