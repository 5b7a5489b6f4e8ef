"""Shared fixtures: seeded RNGs, offline mode, small sets of real photos."""

import os

# Tests never touch the network: a missing weight file must fail at once, clearly.
os.environ["SKTRANSFER_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
# Under pytest-xdist each worker gets its share of the cores (set before numpy and torch
# start their thread pools, and inherited by the processes tests start): workers that
# each ran a thread per core would fight over the cores.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    _THREADS = str(max(1, (os.cpu_count() or 1) // _WORKERS))
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_name, _THREADS)

import numpy as np  # noqa: E402 - after the thread settings
import pytest  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    import torch

    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    skip_slow = pytest.mark.skip(reason="slow: pass --runslow")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(skip_slow)


@pytest.fixture(autouse=True)
def _seed():
    import torch

    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def sample_photos():
    """scikit-learn's two real photos (china.jpg, flower.jpg) as uint8 arrays."""
    from sklearn.datasets import load_sample_images

    return load_sample_images().images


def photo_crops(photos, n_per_class, size=96, seed=0):
    """Random square crops of each photo: a small real two-class image task."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for label, photo in enumerate(photos):
        h, w = photo.shape[:2]
        for _ in range(n_per_class):
            side = int(rng.integers(size, min(h, w) // 2))
            top, left = rng.integers(0, h - side), rng.integers(0, w - side)
            crop = photo[top : top + side, left : left + side]
            from PIL import Image

            X.append(np.asarray(Image.fromarray(crop).resize((size, size))))
            y.append(["china", "flower"][label])
    return np.stack(X), np.asarray(y)


@pytest.fixture(scope="session")
def crops(sample_photos):
    """24 crops (12 per class) of 96x96 pixels, uint8, with string labels."""
    return photo_crops(sample_photos, 12)


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory, crops):
    """A folder with one sub-folder per class of JPEG files, as users have them."""
    from PIL import Image

    root = tmp_path_factory.mktemp("photos")
    X, y = crops
    for i, (img, label) in enumerate(zip(X, y, strict=True)):
        (root / label).mkdir(exist_ok=True)
        Image.fromarray(img).save(root / label / f"{i:03d}.jpg", quality=90)
    return root
