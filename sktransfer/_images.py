"""Image inputs, in one place: validation, decoding and batching for every estimator.

Accepted ``X``:

* file paths: a list, a 1-D array, a :class:`pandas.Series` or a one-column
  :class:`pandas.DataFrame` of ``str`` or :class:`os.PathLike`;
* ``uint8`` arrays of shape ``(n, H, W, 3)``, ``(n, H, W, 1)`` or grayscale ``(n, H, W)``;
  integer arrays with values in [0, 255]; float arrays with values in [0, 1];
* a list of PIL images or of such arrays (sizes may differ).

Files are checked to exist up front (so a typo fails before any work is done) and decoded
lazily, batch by batch, so memory stays bounded however many paths are given.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")


class ImageList:
    """A validated, lazily decoded sequence of images.

    ``self[i]`` returns a PIL RGB image (files, PIL input) or a ``(3, H, W)`` tensor
    (arrays: ``uint8``, or ``float32`` in [0, 1]); the backbone's transform accepts both.
    """

    def __init__(self, items, kind, draft_size=None):
        self.items = items
        self.kind = kind  # "paths", "pil", "array" (one ndarray) or "arrays" (a list)
        self.draft_size = draft_size

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        item = self.items[i]
        if self.kind == "paths":
            return decode_file(item, self.draft_size)
        if self.kind == "pil":
            return item.convert("RGB") if item.mode != "RGB" else item
        return _array_to_tensor(item)

    def take(self, indices):
        """Return the images at ``indices`` as a new ImageList (no decoding)."""
        items = (
            self.items[indices]
            if isinstance(self.items, np.ndarray)
            else [self.items[i] for i in indices]
        )
        return ImageList(items, self.kind, self.draft_size)


def decode_file(path, draft_size=None):
    """Open an image file as RGB, naming the file in any error.

    ``draft_size`` lets the JPEG decoder shrink by a power of two while decoding (never
    below that size), which is several times faster for photos much larger than the
    network's input.
    """
    try:
        with Image.open(path) as img:
            if draft_size and img.format == "JPEG":
                img.draft("RGB", (draft_size, draft_size))
            img = ImageOps.exif_transpose(img)
            return img.convert("RGB")
    except FileNotFoundError:
        raise FileNotFoundError(f"Image file not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"Cannot read image {path}: corrupt or not an image ({exc}).") from exc


def _array_to_tensor(a):
    t = torch.from_numpy(np.ascontiguousarray(a))
    if t.ndim == 2:
        t = t.unsqueeze(-1)
    t = t.permute(2, 0, 1)
    return t.expand(3, -1, -1) if t.shape[0] == 1 else t


def _check_array(a, what):
    """Validate one image array or a stack of them; return it as uint8 or float32."""
    if a.dtype.kind == "c":
        raise ValueError(f"Complex data not supported ({what} has dtype {a.dtype}).")
    if a.dtype == object or a.size == 0:
        raise ValueError(f"{what} is empty or not numeric (dtype {a.dtype}).")
    if a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise ValueError(f"{what} contains NaN or infinity.")
        lo, hi = float(a.min()), float(a.max())
        if lo < 0 or hi > 1:
            raise ValueError(
                f"{what}: float images must have values in [0, 1]; got [{lo:g}, {hi:g}]. "
                "Divide 8-bit pixel values by 255, or pass them as uint8."
            )
        return a.astype(np.float32, copy=False)
    if a.dtype.kind in "iub":
        if a.dtype != np.uint8:
            lo, hi = int(a.min()), int(a.max())
            if lo < 0 or hi > 255:
                raise ValueError(
                    f"{what}: integer images must have values in [0, 255]; got [{lo}, {hi}]."
                )
            a = a.astype(np.uint8)
        return a
    raise ValueError(f"{what} has unsupported dtype {a.dtype}.")


def _check_stack(X):
    shape = X.shape
    if X.ndim == 4 and shape[-1] in (1, 3):
        return X
    if X.ndim == 3:
        return X
    if X.ndim == 4 and shape[1] in (1, 3):
        hint = " It looks channels-first: use X.transpose(0, 2, 3, 1)."
    elif X.ndim == 4:
        hint = f" Images need 1 or 3 channels, not {shape[-1]}."
    elif X.ndim == 2:
        hint = (
            " A 2-D array is tabular data, not images; reshape flattened images to "
            "(n_samples, height, width)."
        )
    else:
        hint = ""
    raise ValueError(
        "Expected images as an array of shape (n_samples, height, width, 3), "
        f"(n_samples, height, width, 1) or (n_samples, height, width); got shape {shape}.{hint}"
    )


def _check_paths(paths):
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise FileNotFoundError(f"Image file not found: {missing[0]}{more}.")
    return np.asarray([os.fspath(p) for p in paths], dtype=object)


def check_images(X, *, draft_size=None):
    """Validate image input ``X`` and return an :class:`ImageList` (nothing is decoded).

    Raises
    ------
    ValueError
        Empty input, wrong shape or channel count, NaN/inf, values out of range, or a
        mix of types.
    FileNotFoundError
        A path that does not exist (named in the message).
    TypeError
        Anything that is not an image container.
    """
    if isinstance(X, ImageList):
        return X
    if hasattr(X, "iloc"):  # pandas
        if getattr(X, "ndim", 1) == 2:
            if X.shape[1] != 1:
                raise ValueError(
                    "A DataFrame of images must have exactly one column of file paths; "
                    f"got {X.shape[1]} columns."
                )
            X = X.iloc[:, 0]
        X = X.to_numpy()
    if isinstance(X, (str, os.PathLike, Image.Image)):
        raise TypeError("X must be a collection of images; wrap a single image in a list.")
    if sp.issparse(X):
        raise TypeError("Sparse input is not supported: pass images, not a sparse matrix.")
    if isinstance(X, np.ndarray) and X.dtype != object and X.dtype.kind not in "US":
        if X.shape[0] == 0:
            raise ValueError("No images: X is empty (0 samples).")
        X = _check_array(X, "X")
        return ImageList(_check_stack(X), "array")
    try:
        items = list(X)
    except TypeError:
        raise TypeError(
            f"X must be file paths, an image array or a list of images; got {type(X).__name__}."
        ) from None
    if not items:
        raise ValueError("No images: X is empty (0 samples).")
    first = items[0]
    if isinstance(first, np.ndarray) and first.ndim == 1 and first.size == 1:
        items = [row[0] for row in items]  # a (n, 1) column of paths
        first = items[0]
    if isinstance(first, (str, os.PathLike)):
        if not all(isinstance(p, (str, os.PathLike)) for p in items):
            raise TypeError("X mixes file paths with other objects.")
        return ImageList(_check_paths(items), "paths", draft_size)
    if isinstance(first, Image.Image):
        if not all(isinstance(p, Image.Image) for p in items):
            raise TypeError("X mixes PIL images with other objects.")
        return ImageList(items, "pil")
    if isinstance(first, np.ndarray):
        checked = []
        for i, a in enumerate(items):
            if not isinstance(a, np.ndarray) or a.ndim not in (2, 3):
                raise ValueError(
                    f"Image {i} must be an array of shape (height, width[, channels]); "
                    f"got {getattr(a, 'shape', type(a).__name__)}."
                )
            if a.ndim == 3 and a.shape[-1] not in (1, 3):
                raise ValueError(f"Image {i} has {a.shape[-1]} channels; expected 1 or 3.")
            checked.append(_check_array(a, f"Image {i}"))
        return ImageList(checked, "arrays")
    raise TypeError(
        "X must hold file paths, PIL images or numpy arrays; "
        f"got elements of type {type(first).__name__}."
    )


def n_images(X):
    """Count the samples of image input ``X`` without decoding or checking files."""
    return X.shape[0] if hasattr(X, "shape") else len(X)


class ImageDataset(torch.utils.data.Dataset):
    """Images (and optional targets) through a transform, for a DataLoader or skorch."""

    def __init__(self, images, transform, y=None):
        self.images = images
        self.transform = transform
        self.y = y

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        x = self.transform(self.images[i])
        if self.y is None:
            return x, torch.zeros((), dtype=torch.long)  # skorch expects (X, y) pairs
        return x, self.y[i]


def iter_batches(images, transform, batch_size, *, num_workers=0, progress=False, desc=None):
    """Yield transformed ``(batch, 3, H, W)`` float tensors, in order.

    With ``num_workers=0`` one background thread decodes the next batch while the caller
    runs the network on the current one (decoding and resizing release the GIL); with
    ``num_workers>0`` a :class:`torch.utils.data.DataLoader` with worker processes does.
    """
    n = len(images)
    starts = range(0, n, batch_size)
    bar = _progress(progress, n, desc)

    def make(start):
        stop = min(start + batch_size, n)
        return torch.stack([transform(images[i]) for i in range(start, stop)])

    try:
        if num_workers > 0:
            loader = torch.utils.data.DataLoader(
                ImageDataset(images, transform), batch_size=batch_size, num_workers=num_workers
            )
            for batch, _ in loader:
                yield batch
                bar.update(len(batch))
            return
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(make, starts[0]) if n else None
            for k in range(len(starts)):
                batch = pending.result()
                if k + 1 < len(starts):
                    pending = pool.submit(make, starts[k + 1])
                yield batch
                bar.update(len(batch))
    finally:
        bar.close()


def _progress(progress, total, desc):
    if not progress:

        class _Silent:
            def update(self, n):
                pass

            def close(self):
                pass

        return _Silent()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img")


def load_image_folder(root, *, extensions=IMG_EXTENSIONS):
    """List the images of a folder with one sub-folder per class.

    The layout torchvision's ``ImageFolder`` and Keras' ``flow_from_directory`` use::

        root/daisy/001.jpg
        root/daisy/002.jpg
        root/rose/001.jpg

    Parameters
    ----------
    root : str or path
        The folder.
    extensions : tuple of str
        File endings (case-insensitive) that count as images; other files are ignored.

    Returns
    -------
    paths : ndarray of str, shape (n_samples,)
        Image paths, sorted by class then file name.
    labels : ndarray of str, shape (n_samples,)
        The sub-folder name of each image.

    Raises
    ------
    FileNotFoundError
        ``root`` does not exist or is not a folder.
    ValueError
        ``root`` has no class sub-folder holding an image.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> from sktransfer import load_image_folder
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for cls in ("cat", "dog"):
    ...     (root / cls).mkdir()
    ...     Image.new("RGB", (8, 8)).save(root / cls / "a.png")
    >>> paths, labels = load_image_folder(root)
    >>> labels.tolist()
    ['cat', 'dog']
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Image folder not found: {root}")
    exts = tuple(e.lower() for e in extensions)
    paths, labels = [], []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(f for f in class_dir.iterdir() if f.is_file() and f.suffix.lower() in exts)
        paths += [str(f) for f in files]
        labels += [class_dir.name] * len(files)
    if not paths:
        raise ValueError(
            f"No images found in {root}: expected one sub-folder per class holding "
            f"image files ({', '.join(exts)})."
        )
    return np.asarray(paths, dtype=object), np.asarray(labels, dtype=object)
