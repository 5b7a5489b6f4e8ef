"""Image inputs: every accepted container, and a clear error for each bad one."""

import os

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from PIL import Image

from sktransfer import load_image_folder
from sktransfer._modalities import check_images, find_image_files, iter_batches


def test_load_image_folder(image_folder):
    (image_folder / "china" / "notes.txt").write_text("not an image")
    paths, labels = load_image_folder(image_folder)
    assert len(paths) == len(labels) == 24
    assert sorted(set(labels)) == ["china", "flower"]
    assert all(p.endswith(".jpg") for p in paths)
    assert list(paths) == sorted(paths)


def _touch_images(root, names):
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4), (len(name), 0, 0)).save(root / name)


def test_load_image_folder_lists_what_torchvision_image_folder_lists(tmp_path):
    from torchvision.datasets import ImageFolder

    _touch_images(
        tmp_path,
        [
            "cat/b.png",
            "cat/A.JPG",
            "cat/indoor/c.jpg",
            "cat/indoor/deep/d.png",
            "cat/in-door/e.png",  # sorts between "cat/indoor" and "cat/indoor/deep"
            "dog/2020/a.png",  # every image of "dog" is nested
            "dog/2021/a.png",
            "emu/a.jpeg",
            "emu/anim.gif",  # not an ImageFolder extension
        ],
    )
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    reference = ImageFolder(tmp_path)
    paths, labels = load_image_folder(tmp_path)
    classes, indices = np.unique(labels, return_inverse=True)
    assert list(classes) == reference.classes == ["cat", "dog", "emu"]
    assert list(zip(paths, indices, strict=True)) == reference.samples
    assert len(paths) == 8
    assert find_image_files(tmp_path / "cat") == [p for p, c in reference.samples if c == 0]


def test_load_image_folder_skips_hidden_folders_and_files(tmp_path):
    _touch_images(tmp_path, ["cat/a.png", "cat/sub/b.png", "dog/a.png"])
    _touch_images(tmp_path, [".ipynb_checkpoints/a.png", "cat/.ipynb_checkpoints/a.png"])
    _touch_images(tmp_path, ["dog/.hidden.png", "dog/sub/.x/a.png"])
    for junk in ("cat/._a.png", "dog/sub/._b.jpg", "cat/.DS_Store", "__MACOSX/cat/._a.png"):
        (tmp_path / junk).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / junk).write_bytes(b"\x00\x05\x16\x07 AppleDouble, not an image")
    paths, labels = load_image_folder(tmp_path)
    relative = [os.path.relpath(p, tmp_path).replace(os.sep, "/") for p in paths]
    assert relative == ["cat/a.png", "cat/sub/b.png", "dog/a.png"]
    assert labels.tolist() == ["cat", "cat", "dog"]
    images = check_images(paths)
    assert all(images[i].shape == (3, 4, 4) for i in range(len(images)))  # all decode


def test_find_image_files_follows_links_but_not_loops(tmp_path):
    _touch_images(tmp_path, ["photos/a.png", "elsewhere/b.png"])
    try:
        os.symlink(tmp_path / "elsewhere", tmp_path / "photos" / "linked")
        os.symlink(tmp_path / "photos", tmp_path / "photos" / "loop")
    except (OSError, NotImplementedError):
        pytest.skip("symbolic links not available")
    found = find_image_files(tmp_path / "photos")
    relative = [os.path.relpath(p, tmp_path / "photos") for p in found]
    assert relative == ["a.png", os.path.join("linked", "b.png")]  # "loop" is "photos" again


def test_load_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="Image folder not found: .*nowhere"):
        load_image_folder(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="Image folder not found: .*nowhere"):
        find_image_files(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="No images found in .*no class sub-folder"):
        load_image_folder(tmp_path)
    _touch_images(tmp_path, ["a.png", "b.jpg"])
    with pytest.raises(ValueError, match=r"2 images but no class sub-folder.*<class>/<image>"):
        load_image_folder(tmp_path)
    _touch_images(tmp_path, ["cat/a.png"])
    (tmp_path / "dog" / "sub").mkdir(parents=True)
    (tmp_path / "dog" / "sub" / "notes.txt").write_text("no image here")
    with pytest.raises(ValueError, match=r"No images found in class folder .*dog;"):
        load_image_folder(tmp_path)


@pytest.mark.parametrize(
    "wrap", [list, np.asarray, pd.Series, lambda p: pd.DataFrame({"path": p})]
)
def test_path_containers(image_folder, wrap):
    paths, _ = load_image_folder(image_folder)
    images = check_images(wrap(list(paths)))
    assert images.kind == "paths" and len(images) == 24
    assert images[0].shape == (3, 96, 96) and images[0].dtype == torch.uint8


def test_arrays_grayscale_float_and_pil(crops):
    X, _ = crops
    assert check_images(X)[0].shape == (3, 96, 96)
    gray = X[..., 0]
    assert check_images(gray)[0].shape == (3, 96, 96)
    assert check_images(gray[..., None])[0].shape == (3, 96, 96)
    as_float = check_images(X / 255.0)[0]
    assert as_float.dtype == torch.float32 and as_float.max() <= 1
    mixed = [Image.fromarray(X[0]), Image.fromarray(X[1][:50]).convert("L")]
    images = check_images(mixed)
    assert [images[0].shape, images[1].shape] == [(3, 96, 96), (3, 50, 96)]
    assert torch.equal(images[1][0], images[1][2])  # grey: three equal channels
    arrays = check_images([X[0], X[1][:40, :60]])
    assert arrays[1].shape == (3, 40, 60)


@pytest.mark.parametrize(
    "X, error, match",
    [
        (np.zeros((0, 8, 8, 3), np.uint8), ValueError, "X is empty"),
        ([], ValueError, "X is empty"),
        (np.zeros((4, 10)), ValueError, "tabular data, not images"),
        (np.zeros((2, 3, 8, 8), np.uint8), ValueError, "channels-first"),
        (np.zeros((2, 8, 8, 4), np.uint8), ValueError, "1 or 3 channels, not 4"),
        (np.zeros((32, 48, 3), np.uint8), ValueError, r"one colour image.*X\[None\]"),
        (np.zeros((32, 48, 4), np.uint8), ValueError, r"one colour image.*X\[None, \.\.\., :3\]"),
        (np.full((2, 8, 8, 3), np.nan), ValueError, "NaN or infinity"),
        (np.full((2, 8, 8, 3), 2.0), ValueError, r"values in \[0, 1\]"),
        (np.full((2, 8, 8), 300, np.int64), ValueError, r"values in \[0, 255\]"),
        (pd.DataFrame({"a": ["x"], "b": ["y"]}), ValueError, "exactly one column"),
        ("photo.jpg", TypeError, "wrap a single image in a list"),
        (["a.jpg", np.zeros((8, 8))], TypeError, "mixes file paths with other objects"),
        ([np.zeros((8, 8, 5))], ValueError, "5 channels"),
        (sp.csr_matrix(np.eye(3)), TypeError, "Sparse input is not supported"),
        (42, TypeError, "got int"),
    ],
)
def test_bad_inputs_get_clear_errors(X, error, match):
    with pytest.raises(error, match=match):
        check_images(X)


def test_missing_file_is_named_before_any_work(image_folder):
    paths, _ = load_image_folder(image_folder)
    with pytest.raises(FileNotFoundError, match=r"missing\.jpg \(and 1 more\)"):
        check_images([*paths, "missing.jpg", "other.png"])


def test_corrupt_image_is_named_when_decoded(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    images = check_images([str(bad)])
    with pytest.raises(ValueError, match="Cannot read image .*broken.jpg"):
        images[0]
    cut = tmp_path / "cut.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)).save(cut)
    cut.write_bytes(cut.read_bytes()[:2000])  # the header opens, the pixels are missing
    for images in (check_images([cut]), check_images([Image.open(cut)])):
        with pytest.raises(ValueError, match="Cannot read image .*cut.jpg"):
            images[0]


@pytest.mark.parametrize("num_workers", [0, 1])
def test_batches_come_in_order_with_bounded_size(crops, num_workers):
    X, _ = crops
    images = check_images(X[:10])
    batches = list(
        iter_batches(images, lambda t: t.float(), batch_size=4, num_workers=num_workers)
    )
    assert [len(b) for b in batches] == [4, 4, 2]
    torch.testing.assert_close(
        torch.cat(batches), torch.from_numpy(X[:10]).permute(0, 3, 1, 2).float()
    )
