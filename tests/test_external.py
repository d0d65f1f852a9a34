"""kit.models' real-scale loaders (torchvision, places365, torchscript) on tiny stand-ins: cache-only
torchvision loading, Places365 checkpoints and TorchScript inpainters (polarity, padding/resizing
round trips, chunking, value ranges)."""

from __future__ import annotations

import warnings

import pytest
import torch
import torchvision
from torch import nn

from kit.models import IMAGENET_MEAN, IMAGENET_STD, Classifier
from kit.models.places365 import places365_classifier
from kit.models.torchscript import LAMA_DEFAULTS, TorchScriptInpainter, load_torchscript_inpainter
from kit.models.torchvision import (
    TorchvisionClassifier,
    torchvision_cache_file,
    torchvision_classifier,
)

SMALL = "shufflenet_v2_x0_5"  # the smallest torchvision classifier with a plain "fc" head (1.4M)


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty TORCH_HOME; any download attempt fails the test."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # in case someone called torch.hub.set_dir

    def no_download(url, *args, **kwargs):
        raise AssertionError(f"attempted to download {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    assert torch.hub.get_dir() == str(tmp_path / "torch" / "hub")
    return checkpoints


def _weights(name):
    return torchvision.models.get_model_weights(name).DEFAULT


# ------------------------------------------------------------------------------------------
# torchvision_classifier
# ------------------------------------------------------------------------------------------


def test_torchvision_classifier_loads_from_cache_without_download(torch_home):
    w = _weights(SMALL)
    net = torchvision.models.get_model(SMALL, weights=None)
    with torch.no_grad():
        net.fc.bias.copy_(torch.arange(1000.0) / 1000)  # a fingerprint to find after loading
    torch_home.mkdir(parents=True)
    torch.save(net.state_dict(), torch_home / torchvision_cache_file(w).name)
    assert torchvision_cache_file(w).parent == torch_home

    clf = torchvision_classifier(SMALL)

    assert isinstance(clf, Classifier)
    assert clf.weights == w and clf.name == SMALL and clf.fc_name == "fc"
    assert clf.classes == tuple(w.meta["categories"]) and clf.classes[0] == "tench"
    assert clf.mean == IMAGENET_MEAN and clf.std == IMAGENET_STD
    torch.testing.assert_close(clf.net.fc.bias, torch.arange(1000.0) / 1000, rtol=0, atol=0)
    assert not clf.training and not any(p.requires_grad for p in clf.parameters())
    x = torch.rand(2, 3, 32, 32)
    net.eval()
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(clf(x), net((x - mean) / std))
        assert clf.features(x).shape == (2, 1024)


def test_torchvision_classifier_missing_file_says_where_and_how(torch_home):
    w = _weights("resnet18")
    with pytest.raises(FileNotFoundError) as info:
        torchvision_classifier("resnet18")
    msg = str(info.value)
    assert torchvision_cache_file(w).name in msg  # resnet18-f37072fd.pth
    assert str(torch_home) in msg
    assert "TORCH_HOME" in msg and w.url in msg
    assert not torch_home.exists() or not any(torch_home.iterdir())  # nothing written


def test_torchvision_classifier_named_weights_and_errors(torch_home):
    with pytest.raises(FileNotFoundError, match="resnet18-5c106cde.pth|resnet18-f37072fd.pth"):
        torchvision_classifier("resnet18", weights="ResNet18_Weights.IMAGENET1K_V1")
    with pytest.raises(ValueError, match="valid names: .*resnet50"):
        torchvision_classifier("resnet51")
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        torchvision_classifier("resnet18", weights="IMAGENET9K")


def test_torchvision_classifier_corrupt_cache_file(torch_home):
    w = _weights(SMALL)
    torch_home.mkdir(parents=True)
    cache = torch_home / torchvision_cache_file(w).name
    cache.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="corrupt") as info:
        torchvision_classifier(SMALL)
    assert str(cache) in str(info.value)
    # A readable state dict of the wrong architecture is refused with a clear message too.
    torch.save({"conv.weight": torch.zeros(1)}, cache)
    with pytest.raises(RuntimeError, match="does not match"):
        torchvision_classifier(SMALL)


def test_random_resnet_has_imagenet_classes_and_fc_features():
    clf = torchvision_classifier("resnet18", weights=None)
    assert clf.weights is None and clf.fc_name == "fc"
    assert clf.classes == tuple(_weights("resnet18").meta["categories"])
    x = torch.rand(2, 3, 32, 32)
    base = Classifier(clf.net, clf.classes, name="resnet18", fc_name="fc")  # kit.models' own tap
    with torch.no_grad():
        torch.testing.assert_close(clf.features(x), base.features(x))
    assert clf.features(x).shape == (2, 512)


def test_nested_head_features_are_the_last_linear_input():
    # MobileNet has a `features` trunk attribute and a nested head (classifier.3).
    clf = torchvision_classifier("mobilenet_v3_small", weights=None, num_classes=7)
    assert isinstance(clf, TorchvisionClassifier)
    assert clf.fc_name == "classifier.3"
    assert clf.classes == tuple(f"class_{i}" for i in range(7))
    net = clf.net
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        z = clf.normalize(x)
        expected = net.classifier[:3](torch.flatten(net.avgpool(net.features(z)), 1))
        torch.testing.assert_close(clf.features(x), expected)
        assert clf(x).shape == (2, 7)
    assert all(not m._forward_hooks for m in net.modules())  # no hooks left behind


def test_convolutional_head_is_pooled():
    clf = torchvision_classifier("squeezenet1_1", weights=None)
    assert clf.fc_name == "classifier.1"
    with torch.no_grad():
        assert clf.features(torch.rand(1, 3, 64, 64)).shape == (1, 512)


# ------------------------------------------------------------------------------------------
# places365_classifier
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def places_net():
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=365).eval()


def test_places365_csail_checkpoint_with_module_prefix(tmp_path, places_net):
    state = {"module." + k: v for k, v in places_net.state_dict().items()}
    path = tmp_path / "resnet18_places365.pth.tar"
    torch.save({"epoch": 90, "arch": "resnet18", "state_dict": state, "best_prec1": 54.7}, path)
    cats = tmp_path / "categories_places365.txt"
    labels = ["/a/airfield", "/b/bakery/shop"] + [f"/c/place{i}" for i in range(2, 365)]
    cats.write_text("".join(f"{n} {i}\n" for i, n in enumerate(labels)))

    clf = places365_classifier(path, arch="resnet18", categories_path=cats)

    assert clf.classes[:2] == ("airfield", "bakery/shop") and len(clf.classes) == 365
    assert clf.fc_name == "fc" and clf.mean == IMAGENET_MEAN
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(clf.net(clf.normalize(x)), places_net(clf.normalize(x)))
        assert clf.features(x).shape == (2, 512)


def test_places365_bare_state_dict_and_default_names(tmp_path, places_net):
    path = tmp_path / "bare.pth"
    torch.save(places_net.state_dict(), path)
    clf = places365_classifier(path, arch="resnet18")
    assert clf.classes[0] == "place_0" and clf.classes[-1] == "place_364"


def test_places365_errors(tmp_path):
    missing = tmp_path / "resnet50_places365.pth.tar"
    with pytest.raises(FileNotFoundError, match="resnet50_places365.pth.tar") as info:
        places365_classifier(missing)
    assert str(missing) in str(info.value) and "Download" in str(info.value)

    corrupt = tmp_path / "corrupt.pth.tar"
    corrupt.write_bytes(b"\x00garbage")
    with pytest.raises(RuntimeError, match="corrupt"):
        places365_classifier(corrupt, arch="resnet18")

    wrong = tmp_path / "wrong.pth.tar"
    torch.save({"state_dict": {"module.conv1.weight": torch.zeros(3)}}, wrong)
    with pytest.raises(
        RuntimeError, match=r"does not match torchvision resnet18\(num_classes=365\)"
    ):
        places365_classifier(wrong, arch="resnet18")

    not_tensors = tmp_path / "meta.pth.tar"
    torch.save({"epoch": 3}, not_tensors)
    with pytest.raises(RuntimeError, match="no state dict"):
        places365_classifier(not_tensors, arch="resnet18")

    bad_cats = tmp_path / "cats.txt"
    bad_cats.write_text("/a/airfield 0\n")
    torch.save(torchvision.models.resnet18(num_classes=365).state_dict(), wrong)
    with pytest.raises(ValueError, match="0..364"):
        places365_classifier(wrong, arch="resnet18", categories_path=bad_cats)


# ------------------------------------------------------------------------------------------
# TorchScript inpainters
# ------------------------------------------------------------------------------------------


class FillConst(nn.Module):
    """Stand-in inpainter: holes (mask = 1) become 0.3."""

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return image * (1 - mask) + mask * 0.3


class Recorder(nn.Module):
    """Records what it receives; returns ``out(image)`` (identity by default)."""

    def __init__(self, out=None):
        super().__init__()
        self.calls = []
        self.out = out

    def forward(self, image, mask):
        self.calls.append((image.clone(), mask.clone()))
        return image if self.out is None else self.out(image)


def _save_script(module: nn.Module, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.* deprecation notices
        torch.jit.save(torch.jit.script(module), str(path))
    return path


def _keep(n, h, w):
    """A blocky keep-mask (1 = keep) with a different hole per image."""
    keep = torch.ones(n, 1, h, w)
    for i in range(n):
        keep[i, :, 3 + i : 17 + i, 5 + 2 * i : 30 + i] = 0
    return keep


def test_lama_flavor_native_size_with_padding(tmp_path):
    path = _save_script(FillConst(), tmp_path / "fill.pt")
    inp = load_torchscript_inpainter(path, flavor="lama")
    assert inp.pad_multiple == 8 and inp.size is None and inp.hole_value == 1
    assert LAMA_DEFAULTS["input_range"] == "01"
    x, keep = torch.rand(3, 3, 30, 45), _keep(3, 30, 45)  # 30x45: not multiples of 8

    out = inp(x, keep)

    kept = keep.bool().expand_as(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(out[kept], x[kept])  # bit for bit
    torch.testing.assert_close(out[~kept], torch.full_like(out[~kept], 0.3), rtol=0, atol=1e-7)


def test_resized_round_trip_fills_holes_and_keeps_pixels(tmp_path):
    path = _save_script(FillConst(), tmp_path / "fill.pt")
    inp = load_torchscript_inpainter(path, flavor="lama", size=20)  # shrink 30x45 -> 20x20
    x = torch.rand(2, 3, 30, 45)
    keep = torch.ones(2, 1, 30, 45)
    keep[:, :, 8:24, 10:36] = 0
    out = inp(x, keep)
    kept = keep.bool().expand_as(x)
    assert torch.equal(out[kept], x[kept])
    # Deep inside the hole the model's constant survives the resize back.
    torch.testing.assert_close(out[:, :, 12:20, 15:31], torch.full((2, 3, 8, 16), 0.3))


def test_hole_polarity_padding_and_zeroed_holes():
    rec = Recorder(out=lambda im: torch.zeros_like(im))
    inp = TorchScriptInpainter(rec, pad_multiple=8)
    x, keep = torch.rand(1, 3, 30, 45), _keep(1, 30, 45)
    keep[..., 26:, 40:] = 0  # a hole touching the padded corner
    out = inp(x, keep)
    image, mask = rec.calls[0]
    assert image.shape == (1, 3, 32, 48) and mask.shape == (1, 1, 32, 48)
    # The module receives a HOLE mask: 1 exactly where keep is 0.
    assert torch.equal(mask[..., :30, :45], 1 - keep)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    # Mirror padding of the mask too (reflect: rows 30, 31 repeat rows 28, 27).
    assert torch.equal(mask[..., 30:32, :45], mask[..., 27:29, :45].flip(-2))
    assert torch.equal(mask[..., 45:48], mask[..., 41:44].flip(-1))
    assert mask[..., 31, 47] == 1  # mirrored hole pixels stay holes
    # Hole pixels are zeroed; kept ones passed through.
    hole = (keep < 0.5).expand_as(x)
    assert torch.all(image[..., :30, :45][hole] == 0)
    assert torch.equal(image[..., :30, :45][~hole], x[~hole])
    assert torch.all(out[hole] == 0) and torch.equal(out[~hole], x[~hole])


def test_keep_mask_convention_when_hole_value_is_0():
    rec = Recorder()
    inp = TorchScriptInpainter(rec, hole_value=0, zero_holes=False)
    x, keep = torch.rand(2, 3, 16, 16), _keep(2, 16, 16)
    inp(x, keep)
    image, mask = rec.calls[0]
    assert torch.equal(mask, keep)
    assert torch.equal(image, x)  # zero_holes=False leaves the holes' pixels alone


def test_resized_mask_is_conservative():
    # A 1-pixel-wide hole must survive a 4x shrink (no object pixel may leak in as context).
    rec = Recorder()
    inp = TorchScriptInpainter(rec, size=8)
    keep = torch.ones(1, 1, 32, 32)
    keep[..., :, 13] = 0
    inp(torch.rand(1, 3, 32, 32), keep)
    _, mask = rec.calls[0]
    assert mask.shape == (1, 1, 8, 8)
    assert torch.all(mask[..., :, 3] == 1)


def test_chunking_matches_one_call():
    x, keep = torch.rand(5, 3, 12, 14), _keep(5, 12, 14)
    flip = Recorder(out=lambda im: 1 - im.flip(-1))
    chunked = TorchScriptInpainter(flip, batch_size=2, pad_multiple=8)(x, keep)
    assert [c[0].shape[0] for c in flip.calls] == [2, 2, 1]
    whole = Recorder(out=lambda im: 1 - im.flip(-1))
    single = TorchScriptInpainter(whole, batch_size=5, pad_multiple=8)(x, keep)
    assert len(whole.calls) == 1
    assert torch.equal(chunked, single)


def test_minus_one_one_range():
    rec = Recorder()  # identity in [-1,1]: zeroed holes come back as 0.5
    inp = TorchScriptInpainter(rec, input_range="-11")
    x, keep = torch.rand(2, 3, 10, 10), _keep(2, 10, 10)
    out = inp(x, keep)
    image, _ = rec.calls[0]
    hole = (keep < 0.5).expand_as(x)
    torch.testing.assert_close(image[~hole], x[~hole] * 2 - 1)
    assert image.min() >= -1 and image.max() <= 1
    torch.testing.assert_close(out[hole], torch.full_like(out[hole], 0.5))
    assert torch.equal(out[~hole], x[~hole])
    black = TorchScriptInpainter(Recorder(out=lambda im: -torch.ones_like(im)), input_range="-11")
    assert torch.all(black(x, keep)[hole] == 0)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="LaMa") as info:
        load_torchscript_inpainter(tmp_path / "big-lama.pt", flavor="lama")
    assert str(tmp_path / "big-lama.pt") in str(info.value)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match="not a torch.jit.save file"):
        load_torchscript_inpainter(corrupt)
    state = tmp_path / "state.pt"
    torch.save(FillConst().state_dict(), state)
    with pytest.raises(RuntimeError, match="could not be loaded as TorchScript"):
        load_torchscript_inpainter(state)
    with pytest.raises(ValueError, match="flavor"):
        load_torchscript_inpainter(state, flavor="deepfill")
    with pytest.raises(ValueError, match="input_range"):
        TorchScriptInpainter(FillConst(), input_range="0255")
    bad = TorchScriptInpainter(Recorder(out=lambda im: im[:, :1]))
    with pytest.raises(RuntimeError, match="expected a tensor of shape"):
        bad(torch.rand(1, 3, 8, 8), torch.zeros(1, 1, 8, 8))


def test_load_is_quiet_and_options_override(tmp_path, recwarn):
    path = _save_script(FillConst(), tmp_path / "fill.pt")
    inp = load_torchscript_inpainter(path, flavor="lama", batch_size=3, pad_multiple=4)
    assert inp.batch_size == 3 and inp.pad_multiple == 4 and inp.name == "lama"
    assert not [w for w in recwarn if "jit" in str(w.message)]
