"""World classifier and inpainter: loading, contract, measured quality, errors, training."""

import pytest
import torch

from kit import models, world
from kit.metrics import classification, plausibility
from kit.models import (
    CLASSIFIERS,
    INPAINTERS,
    WORLD_CLASSIFIER_PATH,
    WORLD_INPAINTER_PATH,
    WORLD_REMOVAL_INPAINTER_PATH,
    Classifier,
    available_classifiers,
    available_inpainters,
    load_classifier,
    load_inpainter,
)
from kit.removers import Blur, Gray, Inpaint, Telea
from kit.train import train_inpainter, train_world_classifier, training_batch


@pytest.fixture(scope="module")
def clf():
    return load_classifier("world")


@pytest.fixture(scope="module")
def test_batch():
    return world.sample(300, seed=11, split="test")


def test_classifier_contract(clf):
    assert isinstance(clf, Classifier) and not clf.training
    assert clf.classes == world.CLASSES
    assert all(not p.requires_grad for p in clf.parameters())
    assert all(0 < m < 1 for m in clf.mean)
    x = world.sample(4, seed=0, split="val").images
    assert clf(x).shape == (4, len(world.CLASSES))
    assert clf.features(x).shape[0] == 4 and clf.features(x).dim() == 2
    assert WORLD_CLASSIFIER_PATH.stat().st_size <= 5 * 2**20


def test_classifier_accuracy_on_fresh_images(clf, test_batch):
    acc = classification.accuracy(clf, test_batch.images, test_batch.labels)
    assert acc.accuracy >= 0.97, acc
    assert acc.confusion.sum() == 300


@pytest.mark.parametrize("name", ["world", "world-removal"])
def test_inpainter_composite_contract(name):
    inp = load_inpainter(name)
    b = world.sample(6, seed=2, split="val")
    keep = plausibility.object_keep_mask(b.masks, 2)
    out = inp(b.images, keep)
    assert out.shape == b.images.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    kept = keep.bool().expand_as(out)
    assert torch.equal(out[kept], b.images[kept])
    assert not torch.equal(out, b.images)
    # batching is invisible: one call equals per-chunk calls
    assert torch.allclose(out[:3], inp(b.images[:3], keep[:3]), atol=1e-5)
    # odd sizes are padded internally
    odd = inp(b.images[:, :, :30, :45].contiguous(), keep[:, :, :30, :45].contiguous())
    assert odd.shape == (6, 3, 30, 45)
    path = WORLD_INPAINTER_PATH if name == "world" else WORLD_REMOVAL_INPAINTER_PATH
    assert path.stat().st_size <= 5 * 2**20


@pytest.mark.parametrize("name", ["world", "world-removal"])
def test_inpainter_quality_bounds(clf, test_batch, name):
    """Issue 2's bounds that the textured fills keep, measured on 300 fresh test images."""
    removers = {
        "gray": Gray(color=clf.mean), "blur": Blur(3.0), "telea": Telea(),
        "inpaint": Inpaint(model=load_inpainter(name)),
    }
    q = plausibility.removal_quality(clf, test_batch, removers, dilate_px=2)
    assert q.loc["inpaint", "p_removed"] <= 0.25, q
    # against the smooth fills; Telea's L1 and FD are not beaten by the textured fills (issue 13:
    # texture costs L1; the FD goal is an xfail in tests/metrics/test_inpainting.py)
    for other in ("gray", "blur"):
        assert q.loc["inpaint", "l1"] < q.loc[other, "l1"], q
        assert q.loc["inpaint", "fd_background"] < q.loc[other, "fd_background"], q
    # the oracle row is the floor
    assert q.loc["true background", "l1"] == 0


def test_missing_checkpoint_errors(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(FileNotFoundError, match=r"world classifier checkpoint not found: expected the file .*nope\.pt.*python -m kit.train classifier"):
        load_classifier("world", path=missing)
    with pytest.raises(FileNotFoundError, match=r"world inpainter checkpoint not found.*python -m kit.train inpainter"):
        load_inpainter("world", path=missing)
    with pytest.raises(FileNotFoundError, match=r"world removal inpainter checkpoint not found.*"
                                                r"python -m kit.train inpainter --target removal"):
        load_inpainter("world-removal", path=missing)


def test_corrupt_and_mismatched_checkpoints(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(RuntimeError, match=r"could not be read.*corrupt"):
        load_classifier("world", path=bad)
    wrong = tmp_path / "wrong.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "config": {"width": 24},
                "classes": ["a", "b"], "mean": [0.5] * 3, "std": [0.2] * 3}, wrong)
    with pytest.raises(RuntimeError, match="does not match kit.nets.WorldCNN"):
        load_classifier("world", path=wrong)


def test_unknown_names():
    with pytest.raises(ValueError, match=r"unknown classifier 'resnet5'; valid names: world, places365_resnet50, .*resnet50"):
        load_classifier("resnet5")
    with pytest.raises(ValueError, match="unknown inpainter 'deepfill'; valid names: world, world-removal, lama, torchscript"):
        load_inpainter("deepfill")
    with pytest.raises(ValueError, match="needs path="):
        load_inpainter("lama")
    with pytest.raises(ValueError, match="needs path="):
        load_classifier("places365_resnet50")
    with pytest.raises(ValueError, match=r"load_classifier\('resnet18'\) takes no path=.*weights="):
        load_classifier("resnet18", path="resnet18.pth")
    with pytest.raises(TypeError, match="name must be a str"):
        load_classifier(3)


def test_registries_are_the_valid_names():
    """Two dicts name -> loader; the available_* lists and the errors come from them."""
    assert available_inpainters() == list(INPAINTERS) == [
        "world", "world-removal", "lama", "torchscript"]
    names = available_classifiers()
    assert names[:2] == list(CLASSIFIERS) == ["world", "places365_resnet50"]
    assert "resnet50" in names and "vit_b_16" in names
    assert all(callable(f) for f in [*CLASSIFIERS.values(), *INPAINTERS.values()])
    # the private transition aliases are gone: checks.images and models.load_state are the API
    assert not hasattr(models, "_check_images") and not hasattr(models, "_load_state")


def test_training_is_reproducible_and_loadable(tmp_path):
    """Tiny runs of both trainers: same seed, same bits; the checkpoints load."""
    tiny = dict(n_train=16, iterations=3, warmup=1, batch_size=6, width=4, d_width=4)
    state = torch.get_rng_state()
    a = train_inpainter(tmp_path / "a.pt", **tiny)
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is left alone
    b = train_inpainter(tmp_path / "b.pt", **tiny)
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert a["config"]["target"] == "completion" and a["config"]["arch"] == "lite"
    # the removal target is the only difference: same holes, other weights
    r = train_inpainter(tmp_path / "r.pt", target="removal", **tiny)
    assert r["config"]["target"] == "removal"
    assert not all(torch.equal(a["state_dict"][k], r["state_dict"][k]) for k in a["state_dict"])
    x = world.sample(2, seed=0).images
    for name, path in (("world", "a.pt"), ("world-removal", "r.pt")):
        inp = load_inpainter(name, path=tmp_path / path)
        assert inp.name == name and inp(x, torch.ones(2, 1, 64, 64)).shape == (2, 3, 64, 64)
    with pytest.raises(ValueError, match=r"target: unknown inpainter target 'remove'; valid "
                                         r"names: completion, removal"):
        train_inpainter(tmp_path / "x.pt", target="remove", **tiny)
    with pytest.raises(ValueError, match=r"unknown options \['iteration'\]"):
        train_inpainter(tmp_path / "x.pt", iteration=3)
    e = train_world_classifier(tmp_path / "e.pt", n_train=64, n_val=16, epochs=1, batch_size=32)
    model = load_classifier("world", path=tmp_path / "e.pt")
    assert model.classes == world.CLASSES and 0 <= e["val_accuracy"] <= 1
    with pytest.raises(ValueError, match=r"unknown options \['epoch'\]"):
        train_world_classifier(tmp_path / "d.pt", epoch=3)


def test_training_holes_and_targets():
    """The same holes for both targets; completion keeps the object, removal the background,
    and a hole hiding the whole object gets the background under both."""
    data = world.sample(12, seed=3, split="train")
    idx = torch.arange(12)
    mix = (1.0, 1.0, 1.0)
    img, hole, comp = training_batch(data, idx, torch.Generator().manual_seed(0),
                                     target="completion", mix=mix)
    img2, hole2, rem = training_batch(data, idx, torch.Generator().manual_seed(0),
                                      target="removal", mix=mix)
    assert torch.equal(img, img2) and torch.equal(hole, hole2)
    out = ~hole.bool().expand_as(img)
    assert torch.equal(comp[out], img[out]) and torch.equal(rem[out], img[out])
    obj = img != rem  # where the removal target differs: hidden object pixels
    assert obj.any()
    hidden_all = [i for i in range(12) if torch.equal(comp[i], rem[i])]
    partial = [i for i in range(12) if not torch.equal(comp[i], rem[i])]
    assert partial and all(torch.equal(comp[i], img[i]) for i in partial)
    assert len(hidden_all) >= 2  # the whole-object holes (silhouettes and boxes)
    assert set(hole.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.filterwarnings("ignore:`torch.jit.(script|save)` is deprecated:FutureWarning")
def test_dispatch_to_real_scale_loaders(tmp_path):
    """load_classifier / load_inpainter reach the real-scale loaders for non-world names."""
    net = load_classifier("resnet18", weights=None)
    assert isinstance(net, Classifier) and len(net.classes) == 1000
    assert net.features(torch.rand(1, 3, 32, 32)).shape == (1, 512)

    class Fill(torch.nn.Module):
        def forward(self, image, mask):
            return image * (1 - mask) + 0.5 * mask

    path = tmp_path / "fill.pt"
    torch.jit.save(torch.jit.script(Fill()), str(path))
    inp = load_inpainter("torchscript", path=path)
    x = torch.rand(2, 3, 16, 16)
    keep = torch.ones(2, 1, 16, 16)
    keep[..., :4, :4] = 0
    out = inp(x, keep)
    assert torch.allclose(out[..., :4, :4], torch.tensor(0.5)) and torch.equal(out[..., 4:, :], x[..., 4:, :])


def test_every_classifier_pass_is_channels_last_with_the_same_values(clf):
    """The wrapper lays every pass out channels-last on the CPU (Classifier.normalize), whatever
    the caller's layout: the metrics' batched inference, a plain call and a pass differentiated
    to the input (the mask optimisers' and gradient methods'), with the contiguous pass's values
    and input gradients."""
    x = world.sample(6, seed=7, split="test").images
    assert x.is_contiguous()
    layouts = []
    first_conv = next(m for m in clf.net.modules() if isinstance(m, torch.nn.Conv2d))
    handle = first_conv.register_forward_pre_hook(
        lambda m, a: layouts.append(a[0].is_contiguous(memory_format=torch.channels_last)))
    try:
        probs = classification.probabilities(clf, x, batch_size=4)
        feats = classification.features(clf, x, batch_size=4)
        p2, f2 = classification.probabilities_and_features(clf, x, batch_size=4)
        xg = x.clone().requires_grad_(True)
        clf(xg).max(1).values.sum().backward()
    finally:
        handle.remove()
    assert layouts == [True] * 7  # 2 chunks per batched call, then the differentiated pass
    with torch.inference_mode():
        z = ((x - clf._mean) / clf._std).contiguous()
        ref_p, ref_f = clf.net(z).softmax(1), clf.net.features(z)
    # another memory layout changes the float summation order only
    assert torch.allclose(probs, ref_p, atol=1e-5) and torch.allclose(p2, ref_p, atol=1e-5)
    assert torch.allclose(feats, ref_f, atol=1e-4) and torch.allclose(f2, ref_f, atol=1e-4)
    zg = ((x - clf._mean) / clf._std).contiguous().requires_grad_(True)
    with torch.enable_grad():
        clf.net(zg).max(1).values.sum().backward()
    assert torch.allclose(xg.grad, zg.grad / clf._std, atol=1e-5, rtol=1e-4)


def test_probabilities_and_features_in_one_pass_equal_the_two_calls(clf):
    from kit import passes

    x = world.sample(10, seed=5, split="test").images
    with passes.counting() as counts:
        probs, feats = classification.probabilities_and_features(clf, x, batch_size=4)
    assert counts["classifier_forward"] == 10  # one pass per image, not two
    assert torch.equal(probs, classification.probabilities(clf, x, batch_size=4))
    assert torch.equal(feats, classification.features(clf, x, batch_size=4))
    assert not clf.net.fc._forward_hooks  # no hook left behind
    # a torchvision net: the features are the final layer's input, as Classifier.features's
    net = load_classifier("resnet18", weights=None)
    xr = torch.rand(3, 3, 32, 32)
    p, f = classification.probabilities_and_features(net, xr, batch_size=2)
    assert torch.allclose(p, classification.probabilities(net, xr, batch_size=2), atol=1e-6)
    assert torch.allclose(f, net.features(xr), atol=1e-5) and f.shape == (3, 512)
