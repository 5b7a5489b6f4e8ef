"""Backbone specs: bundled weights, torchvision, timm, checkpoints, modules, offline errors."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from sktransfer import load_backbone
from sktransfer.backbones import Backbone, Preprocessing
from sktransfer.exceptions import WeightsUnavailableError


@pytest.fixture(scope="module")
def default_backbone():
    return load_backbone()


def _imagenet_probs(backbone, photo):
    x = backbone.preprocessing.eval_transform()(Image.fromarray(photo))[None]
    with torch.inference_mode():
        return backbone.head(backbone.net(x)).softmax(-1)[0]


def test_bundled_weights_reproduce_imagenet_predictions(default_backbone, sample_photos):
    china, flower = sample_photos
    p = _imagenet_probs(default_backbone, flower)
    assert p.argmax().item() == 985  # daisy
    assert 0.25 < p[985].item() < 0.5
    top2 = _imagenet_probs(default_backbone, china).topk(2).indices.tolist()
    assert set(top2) == {698, 442}  # palace, bell cote


def test_default_backbone_structure(default_backbone):
    b = default_backbone
    assert b.num_features == 1280
    assert [name for name, _ in b.layer_groups] == [
        "stem",
        *[f"blocks{i}" for i in range(7)],
        "conv_head",
    ]
    pre = b.preprocessing
    assert (pre.crop_size, pre.resize_size, pre.interpolation) == (224, 256, "bicubic")
    assert pre.mean == pre.std == (0.5, 0.5, 0.5)
    params = dict(b.net.named_parameters())
    grouped = [p for _, names in b.layer_groups for p in names]
    assert sorted(grouped) == sorted(params)  # every parameter in exactly one group


def test_load_backbone_returns_independent_copies(default_backbone):
    other = load_backbone()
    with torch.no_grad():
        other.net.stem[0].weight.zero_()
    assert default_backbone.net.stem[0].weight.abs().sum() > 0


@pytest.mark.parametrize(
    "name, groups",
    [
        ("resnet18", ["stem", "layer1", "layer2", "layer3", "layer4"]),
        ("mobilenet_v3_small", None),
        ("densenet121", None),
        ("efficientnet_b0", None),
        ("regnet_y_400mf", ["stem", *[f"trunk_output{i}" for i in range(4)]]),
        ("swin_t", None),
    ],
)
def test_torchvision_backbone_matches_original_model(tmp_path, name, groups):
    """Cutting off the head and staging the trunk must not change the network's output."""
    from torchvision import models

    torch.manual_seed(0)
    original = models.get_model(name, weights=None).eval()
    path = tmp_path / f"{name}.pth"
    torch.save(original.state_dict(), path)
    backbone = load_backbone(name, weights=str(path))
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        expected = original(x)
        feats = backbone.net(x)
        got = backbone.head(feats)
    assert feats.shape == (2, backbone.num_features)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    if groups is not None:
        assert [g for g, _ in backbone.layer_groups] == groups
    assert backbone.n_layer_groups >= 4


@pytest.mark.parametrize("name", ["timm:mobilenetv3_small_050", "timm:vit_tiny_patch16_224"])
def test_timm_backbone_matches_original_model(tmp_path, name):
    import timm

    torch.manual_seed(0)
    original = timm.create_model(name[5:], pretrained=False).eval()
    path = tmp_path / "model.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in original.state_dict().items()}, str(path))
    backbone = load_backbone(name, weights=str(path))
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(backbone.head(backbone.net(x)), original(x))
    assert backbone.n_layer_groups > 3


def test_torchvision_weights_offline_error_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsUnavailableError, match="resnet18-f37072fd.pth") as info:
        load_backbone("resnet18", weights="IMAGENET1K_V1")  # offline mode: no download
    assert str(tmp_path) in str(info.value)
    assert "TORCH_HOME" in str(info.value)
    assert not list(tmp_path.rglob("*.partial"))  # nothing half-written


def test_torchvision_weights_load_from_cache_offline(tmp_path, monkeypatch):
    """A weight file placed where the error said is picked up without any network."""
    from torchvision import models

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    original = models.resnet18(weights=None).eval()
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(original.state_dict(), folder / "resnet18-f37072fd.pth")
    backbone = load_backbone("resnet18", weights="DEFAULT")  # offline, from the cache
    assert backbone.preprocessing.interpolation == "bilinear"
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(backbone.head(backbone.net(x)), original(x))


def test_timm_weights_offline_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(WeightsUnavailableError, match="hub cache"):
        load_backbone("timm:mobilenetv3_small_050", weights="DEFAULT")  # offline mode


def test_unknown_backbone_suggests_close_names():
    with pytest.raises(ValueError, match="Unknown backbone 'resnet19'.*'resnet18'"):
        load_backbone("resnet19")
    with pytest.raises(ValueError, match="Unknown timm model 'convnext_nanoo'.*convnext_nano"):
        load_backbone("timm:convnext_nanoo")


def test_unknown_weight_tag_lists_valid_ones():
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        load_backbone("resnet18", weights="IMAGENET22K")  # offline: fails before any I/O


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    from torchvision import models

    path = tmp_path / "r18.pth"
    torch.save(models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match="does not match the architecture 'resnet34'"):
        load_backbone("resnet34", weights=str(path))


def test_corrupt_or_missing_checkpoint(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="Could not read checkpoint .*bad.pth"):
        load_backbone("resnet18", weights=str(bad))
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_backbone("resnet18", weights=str(tmp_path / "missing.pth"))


def test_user_sequential_module_is_staged_and_pooled():
    module = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 16, 3))
    backbone = load_backbone(module, preprocessing=Preprocessing(crop_size=32, resize_size=32))
    assert isinstance(backbone, Backbone)
    assert backbone.num_features == 16
    assert [g for g, _ in backbone.layer_groups] == ["0", "2"]
    out = backbone.net(torch.randn(3, 3, 32, 32))
    assert out.shape == (3, 16)


def test_user_module_without_stages():
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(4, 5)

        def forward(self, x):
            return self.fc(self.conv(x).mean((2, 3)))

    backbone = load_backbone(Tiny())
    assert backbone.num_features == 5
    assert [g for g, _ in backbone.layer_groups] == ["conv", "fc"]
    params = dict(backbone.net.named_parameters())
    assert all(name in params for _, names in backbone.layer_groups for name in names)


def test_bad_spec_type():
    with pytest.raises(TypeError, match="backbone must be a model name"):
        load_backbone(42)


def test_preprocessing_image_size_keeps_proportion():
    pre = Preprocessing(crop_size=224, resize_size=256).with_image_size(112)
    assert (pre.crop_size, pre.resize_size) == (112, 128)
    img = Image.fromarray(np.zeros((50, 80, 3), np.uint8))
    assert pre.eval_transform()(img).shape == (3, 112, 112)


def test_fold_batchnorm_keeps_outputs_and_removes_norms(default_backbone):
    from sktransfer.backbones._optimize import fold_batchnorm

    net = default_backbone.net
    folded = fold_batchnorm(net, 64)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())  # original untouched
    x = torch.randn(2, 3, 96, 96)
    with torch.inference_mode():
        torch.testing.assert_close(folded(x), net(x), rtol=1e-4, atol=1e-4)


def test_fold_batchnorm_leaves_a_shared_conv_output_alone():
    from sktransfer.backbones._optimize import fold_batchnorm

    class Shared(nn.Module):  # the conv output feeds the BatchNorm and a skip connection
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.bn = nn.BatchNorm2d(3)
            self.bn.running_mean.fill_(0.5)
            self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())

        def forward(self, x):
            y = self.conv(x)
            return self.pool(self.bn(y) + y)

    net = Shared().eval()
    folded = fold_batchnorm(net, 16)
    assert isinstance(folded.bn, nn.BatchNorm2d)
    x = torch.randn(2, 3, 16, 16)
    with torch.inference_mode():
        torch.testing.assert_close(folded(x), net(x))


@pytest.mark.parametrize(
    "name, crop, china_p",
    [("efficientnet_lite1", 240, (0.45, 0.65)), ("efficientnet_lite2", 260, (0.25, 0.45))],
)
def test_larger_bundled_backbones_reproduce_imagenet_predictions(
    name, crop, china_p, sample_photos
):
    backbone = load_backbone(name)  # offline: the weights ship in a package
    pre = backbone.preprocessing
    assert (pre.crop_size, pre.interpolation, pre.mean) == (crop, "bicubic", (0.5, 0.5, 0.5))
    china, flower = (_imagenet_probs(backbone, photo) for photo in sample_photos)
    assert china.argmax().item() == 698  # palace
    assert china_p[0] < china[698].item() < china_p[1]
    assert flower.argmax().item() == 599  # the flower photo's top-1 class on both
    assert backbone.rebuildable and backbone.num_features == 1280
