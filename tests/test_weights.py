"""Pretrained weights: read from the local caches, or a quick error naming the exact file."""

import io
import socket
import time
import urllib.request

import pytest
import torch

from sktransfer import load_backbone
from sktransfer.exceptions import WeightsUnavailableError


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """Empty torch and Hugging Face caches, so that no test depends on this machine's."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return {"timm": tmp_path / "hf", "torchvision": tmp_path / "torch" / "hub" / "checkpoints"}


@pytest.fixture
def online(monkeypatch):
    """Offline mode off (conftest turns it on); every test here still stays on this machine."""
    import huggingface_hub.constants

    monkeypatch.delenv("SKTRANSFER_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


@pytest.mark.parametrize(
    "spec, library, names",
    [
        # timm resolves a bare name to its default pretrained tag, and that tag's repository.
        ("timm:resnet18", "timm", ["'timm/resnet18.a1_in1k'", "model.safetensors"]),
        ("resnet18", "torchvision", ["resnet18-f37072fd.pth"]),
    ],
)
def test_offline_missing_weights_fail_at_once_naming_file_and_folder(
    empty_caches, spec, library, names
):
    import timm  # noqa: F401  (imports before the clock starts)
    from huggingface_hub import try_to_load_from_cache  # noqa: F401

    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError) as info:
        load_backbone(spec)  # offline mode (conftest): no download
    assert time.perf_counter() - start < 2
    message = str(info.value)
    for name in [*names, str(empty_caches[library]), "offline mode is on"]:
        assert name in message


def _refused_endpoint():
    """A local address nobody listens on: connections to it are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_unreachable_hub_is_tried_once_not_for_a_minute(empty_caches, online, monkeypatch):
    import huggingface_hub.constants as hf
    import timm  # noqa: F401

    endpoint = _refused_endpoint()
    monkeypatch.setattr(hf, "ENDPOINT", endpoint)
    monkeypatch.setattr(
        hf,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        f"{endpoint}/{{repo_id}}/resolve/{{revision}}/{{filename}}",
    )
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError, match="could not be downloaded") as info:
        load_backbone("timm:resnet18")
    assert time.perf_counter() - start < 5  # hub retries with back-off took ~50 s
    assert "'timm/resnet18.a1_in1k'" in str(info.value)
    assert not list(empty_caches["timm"].rglob("*.safetensors"))


def test_timm_weights_are_read_from_the_hub_cache_offline(empty_caches):
    """A repository copied into the hub cache is used, without any network."""
    import timm
    from safetensors.torch import save_file

    original = timm.create_model("mobilenetv3_small_050", pretrained=False).eval()
    with torch.no_grad():
        for p in original.parameters():
            p.add_(torch.randn_like(p) * 0.01)  # not the random init timm would give
    repo = empty_caches["timm"] / "models--timm--mobilenetv3_small_050.lamb_in1k"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    save_file(original.state_dict(), repo / "snapshots" / commit / "model.safetensors")

    backbone = load_backbone("timm:mobilenetv3_small_050", weights="lamb_in1k")
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(backbone.head(backbone.net(x)), original(x))


def test_unknown_timm_weight_tag_lists_valid_ones():
    with pytest.raises(ValueError, match="Unknown weights 'nope'.*'a1_in1k'"):
        load_backbone("timm:resnet18", weights="nope")


def test_timm_model_without_pretrained_weights_is_refused_not_random():
    with pytest.raises(ValueError, match="no pretrained weights for 'coatnet_0_224"):
        load_backbone("timm:coatnet_0_224")


class _Response(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_torchvision_download_is_one_short_checked_attempt(empty_caches, online, monkeypatch):
    calls = []

    def urlopen(url, timeout=None):
        calls.append(timeout)
        return _Response(b"not the resnet18 weights" * 1000)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    with pytest.raises(WeightsUnavailableError, match="damaged") as info:
        load_backbone("resnet18")
    assert "resnet18-f37072fd.pth" in str(info.value)
    assert len(calls) == 1 and calls[0] is not None and calls[0] <= 30
    assert not list(empty_caches["torchvision"].iterdir())  # no partial, no damaged file


def test_torchvision_download_timeout_names_the_file(empty_caches, online, monkeypatch):
    def urlopen(url, timeout=None):
        raise TimeoutError("timed out")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    with pytest.raises(WeightsUnavailableError, match="TimeoutError") as info:
        load_backbone("resnet18")
    assert str(empty_caches["torchvision"] / "resnet18-f37072fd.pth") in str(info.value)
