"""Decoding: every bit depth by its real range, the same pixels from every container."""

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from sktransfer import PretrainedFeatureExtractor
from sktransfer._modalities import check_images, decode_file
from sktransfer.backbones import load_backbone


def _grey_file(path, data, mode=None):
    """Write a one-channel array to ``path`` with Pillow, in ``mode`` when given."""
    if mode is None:
        image = Image.fromarray(data)
    else:
        dtype = {"I;16": "<u2", "I;16B": ">u2", "I": "<i4", "F": "<f4"}[mode]
        image = Image.frombytes(mode, data.shape[::-1], data.astype(dtype).tobytes())
    image.save(path)
    return path


def _ramp(maximum, dtype, shape=(24, 40), seed=0):
    """Random pixels in [0, maximum] that reach both ends."""
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        data = rng.uniform(0, maximum, shape)
    else:
        data = rng.integers(0, maximum, shape, endpoint=True)
    data.flat[:2] = 0, maximum
    return data.astype(dtype)


@pytest.mark.parametrize(
    "name, data, mode, scale",
    [
        ("8bit.png", _ramp(255, np.uint8), None, 255),
        ("8bit_in_16bit.png", _ramp(255, np.uint16), "I;16", 255),
        ("10bit_in_16bit.tif", _ramp(1023, np.uint16), "I;16", 1023),
        ("12bit_in_16bit.png", _ramp(4095, np.uint16), "I;16", 4095),
        ("12bit_in_16bit_big_endian.tif", _ramp(4095, np.uint16), "I;16B", 4095),
        ("12bit_partly_used.png", _ramp(3000, np.uint16), "I;16", 4095),
        ("14bit_in_16bit.tif", _ramp(16383, np.uint16), "I;16", 16383),
        ("16bit.png", _ramp(65535, np.uint16), "I;16", 65535),
        ("16bit.tif", _ramp(65535, np.uint16), "I;16", 65535),
        ("16bit_in_32bit.tif", _ramp(40000, np.int32), "I", 65535),
        ("float_in_0_1.tif", _ramp(1.0, np.float32), "F", 1),
    ],
)
def test_every_bit_depth_decodes_by_its_real_range(tmp_path, name, data, mode, scale):
    path = _grey_file(tmp_path / name, data, mode)
    with Image.open(path) as opened:
        assert opened.mode == (mode or "L")  # the file really has the depth under test
    for image in (decode_file(path), check_images([path])[0], check_images([Image.open(path)])[0]):
        assert image.shape == (3, *data.shape)
        unit = image.float() / 255 if image.dtype == torch.uint8 else image
        assert image.dtype == (torch.uint8 if mode is None else torch.float32)
        expected = torch.from_numpy(data.astype(np.float64) / scale).expand(3, -1, -1)
        torch.testing.assert_close(unit.double(), expected, rtol=0, atol=1e-6)
        assert 0 < unit.mean() < 1


def _rgb16_png(path, data):
    """Write ``(H, W, 3)`` uint16 pixels as a 16-bit colour PNG (which Pillow cannot write)."""

    def chunk(kind, body):
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    height, width, _ = data.shape
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in data)  # filter 0 per row
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)  # 16 bits, truecolour
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
    Path(path).write_bytes(png + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return str(path)


def test_a_16_bit_colour_file_that_fills_its_range_keeps_it_with_a_warning(tmp_path):
    data = np.stack([_ramp(65535, np.uint16, seed=c) for c in range(3)], axis=-1)
    path = _rgb16_png(tmp_path / "rgb16.png", data)
    with pytest.warns(UserWarning, match="16-bit colour image files are decoded with 8 bits per"):
        tensor = decode_file(path)
    assert tensor.dtype == torch.uint8
    np.testing.assert_array_equal(tensor.permute(1, 2, 0).numpy(), data >> 8)  # the high byte


@pytest.mark.parametrize("bits", [10, 12])
def test_a_16_bit_colour_file_with_fewer_bits_is_refused_not_darkened(tmp_path, bits):
    data = np.stack([_ramp(2**bits - 1, np.uint16, seed=c) for c in range(3)], axis=-1)
    path = _rgb16_png(tmp_path / "rgb.png", data)
    with pytest.raises(ValueError, match=r"rgb.png is a 16-bit colour image.*float array"):
        decode_file(path)
    with pytest.raises(ValueError, match="rgb.png"):
        PretrainedFeatureExtractor(image_size=32).fit_transform([path])
    with pytest.raises(ValueError, match="16-bit colour image whose values stay below"):
        check_images([Image.open(path)])[0]  # the same file opened by the caller


def test_float_file_outside_0_1_is_min_max_scaled_with_a_warning(tmp_path):
    data = _ramp(7.0, np.float32) - 2  # [-2, 5]
    path = _grey_file(tmp_path / "depth.tif", data, "F")
    with pytest.warns(UserWarning, match=r"depth\.tif.*\[-2, 5\].*minimum and maximum"):
        image = check_images([path])[0]
    expected = torch.from_numpy((data.astype(np.float64) + 2) / 7).expand(3, -1, -1)
    torch.testing.assert_close(image.double(), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_in_a_float_file_names_the_file(tmp_path, bad):
    data = _ramp(1.0, np.float32)
    data[3, 4] = bad
    path = _grey_file(tmp_path / "holes.tif", data, "F")
    with pytest.raises(ValueError, match=r"holes\.tif.*NaN or infinity"):
        check_images([path])[0]


@pytest.mark.parametrize("mode", ["P", "L", "LA", "RGBA", "CMYK", "1", "I;16"])
def test_every_pil_mode_decodes_to_three_channels(tmp_path, sample_photos, mode):
    photo = Image.fromarray(sample_photos[0][:48, :64])
    source = photo.convert("I;16") if mode == "I;16" else photo.convert(mode)
    path = tmp_path / ("image.tif" if mode in ("CMYK", "I;16") else "image.png")
    source.save(path)
    with Image.open(path) as opened:
        assert opened.mode == mode
        expected = (
            torch.from_numpy(np.asarray(opened, dtype=np.float32) / 255).expand(3, -1, -1)
            if mode == "I;16"
            else torch.from_numpy(np.array(opened.convert("RGB"))).permute(2, 0, 1)
        )
    image = check_images([path])[0]
    torch.testing.assert_close(image, expected, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def rotated_jpeg(tmp_path_factory, sample_photos):
    """A 200x150 photo stored on its side with EXIF orientation 6, and its upright pixels."""
    path = tmp_path_factory.mktemp("exif") / "rotated.jpg"
    upright = Image.fromarray(sample_photos[1][100:300, 200:350])  # 200 high, 150 wide
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    upright.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif, quality=90)
    with Image.open(path) as stored:
        assert stored.size == (200, 150)  # stored on its side
        pixels = np.asarray(ImageOps.exif_transpose(stored).convert("RGB"))
    assert pixels.shape == (200, 150, 3)
    return str(path), pixels


def _containers(path, pixels):
    loaded = Image.open(path)
    loaded.load()
    return {
        "path": [path],
        "Image.open": [Image.open(path)],
        "loaded PIL": [loaded],
        "PIL from an array": [Image.fromarray(pixels)],  # not a file: no decoder tiles
        "array list": [pixels],
        "array stack": pixels[None],
    }


def _relative(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


def test_every_container_gives_the_same_pixels(rotated_jpeg):
    transform = load_backbone().preprocessing.eval_transform()
    tensors = {
        kind: transform(check_images(X)[0]) for kind, X in _containers(*rotated_jpeg).items()
    }
    reference = tensors.pop("array stack")
    for kind, tensor in tensors.items():
        assert tensor.shape == reference.shape, kind
        assert _relative(tensor, reference) <= 1e-4, kind


def test_every_container_gives_the_same_features(rotated_jpeg):
    containers = _containers(*rotated_jpeg)
    extractor = PretrainedFeatureExtractor(image_size=64).fit(containers["path"])
    reference = extractor.transform(containers.pop("array stack"))
    for kind, X in containers.items():
        assert _relative(extractor.transform(X), reference) <= 1e-4, kind


def test_float_and_16_bit_copies_differ_from_the_8_bit_file_only_by_its_rounding(
    tmp_path, rotated_jpeg
):
    """8-bit images are resized in uint8, as PIL-based pipelines do (three times faster to
    decode than in float32), which rounds each resized pixel to 1/255; float arrays and
    16-bit files keep their precision. The same picture then gives features about 2%
    apart (norm), nearly parallel; the 16-bit file and the float array agree exactly.
    """
    grey = np.asarray(Image.fromarray(rotated_jpeg[1]).convert("L"))
    Image.fromarray(grey).save(tmp_path / "8bit.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "16bit.png")  # 255 -> 65535
    extractor = PretrainedFeatureExtractor(image_size=64).fit([str(tmp_path / "8bit.png")])
    eight, sixteen = extractor.transform([str(tmp_path / "8bit.png"), str(tmp_path / "16bit.png")])
    floats = extractor.transform([np.repeat(grey[..., None], 3, -1).astype(np.float32) / 255])[0]
    assert _relative(sixteen, floats) <= 1e-4
    assert _relative(sixteen, eight) <= 0.05
    assert sixteen @ eight / np.linalg.norm(sixteen) / np.linalg.norm(eight) > 0.998


def test_draft_decoding_only_when_asked(rotated_jpeg):
    path, pixels = rotated_jpeg
    assert check_images([path])[0].shape == (3, 200, 150)
    drafted = check_images([path], draft_size=60)[0]
    assert drafted.shape == (3, 100, 75)  # the JPEG decoder shrank by 2, upright still


@pytest.mark.parametrize("side", [36, 64])  # over the limit: Pillow warns (36) or refuses (64)
@pytest.mark.parametrize("action", ["ignore", "error"])  # whatever the user's warning filter
def test_decompression_bomb_is_named_with_the_limit_to_raise(tmp_path, monkeypatch, side, action):
    path = tmp_path / "huge.png"
    Image.new("RGB", (side, side)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    images = check_images([path])
    message = rf"huge\.png has {side * side} pixels, more than PIL\.Image\.MAX_IMAGE_PIXELS"
    with warnings.catch_warnings():
        warnings.simplefilter(action, Image.DecompressionBombWarning)
        with pytest.raises(ValueError, match=message):
            images[0]
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", side * side)
    assert images[0].shape == (3, side, side)  # at the limit it decodes
