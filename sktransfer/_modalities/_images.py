"""Image inputs, in one place: validation, decoding and batching for every estimator.

Accepted ``X``:

* file paths: a list, a 1-D array, a :class:`pandas.Series` or a one-column
  :class:`pandas.DataFrame` of ``str`` or :class:`os.PathLike`;
* ``uint8`` arrays of shape ``(n, H, W, 3)``, ``(n, H, W, 1)`` or grayscale ``(n, H, W)``;
  integer arrays with values in [0, 255]; float arrays with values in [0, 1];
* a list of PIL images or of such arrays (sizes may differ).

Files are checked to exist up front (so a typo fails before any work is done) and decoded
lazily, batch by batch, so memory stays bounded however many paths are given.

Every container becomes the same ``(3, H, W)`` tensor before the backbone's transform, so
the same picture gives the same pixels, and the same features, whether it comes as a path,
a PIL image or an array: files and PIL images are turned upright by their EXIF orientation,
converted to RGB (palette, grey, alpha, CMYK and 1-bit images alike) and handed over as
``uint8`` tensors; resizing then happens once, in torchvision, for all of them. A JPEG is
decoded at a reduced size only when a caller asks for it with ``draft_size``.

High-bit-depth files (16-bit grey PNG or TIFF, PIL modes ``I;16``, ``I;16B``, ``I;16L``
and 32-bit ``I``; 32-bit float TIFF, mode ``F``) keep their precision: they become
``float32`` tensors in [0, 1], by this rule:

* integer images are divided by ``2**bits - 1`` for the smallest standard bit depth
  (8, 10, 12, 14 or 16 bits) that holds the image's largest value, so 12-bit data stored
  in a 16-bit file is divided by 4095 and 16-bit data by 65535;
* float images with values in [0, 1] are kept as they are;
* other images (floats outside [0, 1], negative integers or integers above 65535) are
  scaled to [0, 1] by their own minimum and maximum, with a :class:`UserWarning` naming
  the file; NaN or infinity in a float file is a :class:`ValueError` naming it.

The rule is applied per image: a 16-bit image whose brightest pixel is below 4096 is read
as 12-bit data.

16-bit *colour* files are decoded by Pillow with 8 bits per channel: one that fills its
16 bits keeps its range (with a :class:`UserWarning` that its precision is not kept); one
whose values stay below 2**15 would come out dark, and is a :class:`ValueError` naming the
file and saying how to convert it.
"""

import os
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2 as T
from torchvision.transforms.v2.functional import pil_to_tensor

from .._core.activations import content_digest
from .._core.progress import progress_bar
from ._base import InputPipeline

# torchvision's ImageFolder extensions (which users compare folder listings against)
IMG_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
)

# Crops larger than this are refused: a 2048 px crop already needs ~50 MB per image in
# float32 after the first convolution; a crafted 3000 px setting took 7.7 GB.
MAX_IMAGE_SIZE = 2048

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

POOLINGS = ("avg", "max", "avgmax", "token")

_HIGH_BIT_DEPTH_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})
_BIT_DEPTHS = (8, 10, 12, 14, 16)


class ImageList:
    """A validated, lazily decoded sequence of images.

    ``self[i]`` returns a ``(3, H, W)`` tensor whatever the input was: ``uint8`` for
    8-bit images, ``float32`` in [0, 1] for float arrays and high-bit-depth files.
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
            deep = _deep_colour(item)  # seen only before a lazily opened file is loaded
            try:
                upright = ImageOps.exif_transpose(item)  # loads a lazily opened file
            except (OSError, SyntaxError, ValueError) as exc:
                raise _unreadable(_pil_name(item, i), exc) from exc
            return _pil_to_tensor(upright, _pil_name(item, i), deep)
        return _array_to_tensor(item)

    def take(self, indices):
        """Return the images at ``indices`` as a new ImageList (no decoding)."""
        items = (
            self.items[indices]
            if isinstance(self.items, np.ndarray)
            else [self.items[i] for i in indices]
        )
        return ImageList(items, self.kind, self.draft_size)

    def content_keys(self):
        """Return one key per image that changes when its content does (for caching).

        A file's real path, device, inode, size, modification and change times (rewriting
        the file changes its key) and the draft size it is decoded at; an array's bytes,
        shape and dtype; a PIL image's mode, size, EXIF orientation, palette and pixels.
        """
        return [self._key(self.items[i]) for i in range(len(self.items))]

    def _key(self, item):
        if self.kind == "paths":
            path = os.fspath(item)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                raise FileNotFoundError(f"Image file not found: {path}") from None
            return content_digest(
                "path", os.path.realpath(path), st.st_dev, st.st_ino, st.st_size,
                st.st_mtime_ns, st.st_ctime_ns, self.draft_size,
            )  # fmt: skip
        if self.kind == "pil":
            orientation = item.getexif().get(0x0112)  # ImageOps.exif_transpose turns by it
            palette = item.getpalette() if item.mode in ("P", "PA") else None
            return content_digest(
                "pil", item.mode, item.size, orientation, palette, item.tobytes()
            )
        array = np.ascontiguousarray(item)
        return content_digest("array", array.dtype.str, array.shape, memoryview(array).cast("B"))


def decode_file(path, draft_size=None):
    """Decode an image file to an upright ``(3, H, W)`` tensor, naming the file in any error.

    8-bit images (any PIL mode: RGB, grey, palette, alpha, CMYK, 1-bit) are converted to
    RGB and returned as ``uint8``. High-bit-depth images (PIL modes ``I;16``, ``I;16B``,
    ``I;16L``, ``I`` and ``F``) are returned as ``float32`` in [0, 1]: integers divided
    by ``2**bits - 1`` for the smallest of 8, 10, 12, 14 or 16 bits that holds the
    largest value (12-bit data in a 16-bit file by 4095), floats in [0, 1] kept, anything
    else min-max scaled per image with a :class:`UserWarning`.

    ``draft_size`` lets the JPEG decoder shrink by a power of two while decoding (never
    below that size): for photos much larger than the network's input that is faster
    (2 to 3 times for a 3000x2000 JPEG at 224 px), at the price of different pixels
    (features a few percent apart). Without it every file is decoded exactly.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The file is corrupt or not an image, has more pixels than
        ``PIL.Image.MAX_IMAGE_PIXELS``, or holds NaN or infinity.
    """
    try:
        img = Image.open(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"Image file not found: {path}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow refused the file (or warned, under a filter that turns warnings into errors)
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise _too_many_pixels(int(found[1]) if found else None, path) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise _unreadable(path, exc) from exc
    with img:
        n_pixels = img.size[0] * img.size[1]
        if Image.MAX_IMAGE_PIXELS is not None and n_pixels > Image.MAX_IMAGE_PIXELS:
            raise _too_many_pixels(n_pixels, path)  # Pillow only warned: refuse all the same
        try:
            if draft_size and img.format == "JPEG":
                img.draft("RGB", (draft_size, draft_size))
            deep_colour = _deep_colour(img)
            img.load()
            ImageOps.exif_transpose(img, in_place=True)
        except (OSError, SyntaxError, ValueError) as exc:
            raise _unreadable(path, exc) from exc
        return _pil_to_tensor(img, path, deep_colour)


def _unreadable(path, exc):
    return ValueError(f"Cannot read image {path}: corrupt or not an image ({exc}).")


def _too_many_pixels(n_pixels, path):
    count = "more pixels" if n_pixels is None else f"{n_pixels} pixels, more"
    return ValueError(
        f"Image {path} has {count} than PIL.Image.MAX_IMAGE_PIXELS "
        f"({Image.MAX_IMAGE_PIXELS}) allows: Pillow refuses such files as possible "
        "decompression bombs. If you trust the file, raise the limit before decoding, e.g. "
        f"`PIL.Image.MAX_IMAGE_PIXELS = {n_pixels or 'n_pixels'}` (None removes it)."
    )


def _pil_name(image, i):
    filename = getattr(image, "filename", None)
    return filename or f"PIL image {i}"


def _pil_to_tensor(image, name, deep_colour=False):
    """Turn an upright PIL image into a ``(3, H, W)`` tensor (float32 for high bit depth)."""
    if image.mode in _HIGH_BIT_DEPTH_MODES:
        return _scale_to_unit(np.asarray(image), name)
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    if deep_colour:
        _check_reduced_colour(rgb, name, "grey-and-alpha" if image.mode == "LA" else "colour")
    return pil_to_tensor(rgb)


def _deep_colour(image):
    """Whether a not yet loaded image holds 16 bits per colour channel (Pillow keeps 8)."""
    return image.mode in ("RGB", "RGBA", "LA") and any(
        ";16" in str(tile.args)
        for tile in getattr(image, "tile", ())  # files only
    )


def _check_reduced_colour(rgb, path, kind):
    """Pillow reads 16-bit colour files at 8 bits per channel (the high byte of each value).

    Data that fills the 16 bits keeps its range, with 8-bit precision; data that uses fewer
    bits (12-bit camera or microscope colour stored in 16) would come out nearly black.
    """
    top = int(np.asarray(rgb).max())
    if top < 128:  # every value below 2**15: the file does not use its top bit
        raise ValueError(
            f"{path} is a 16-bit {kind} image whose values stay below {(top + 1) * 256} of "
            "65535: Pillow, which decodes it, keeps only the high 8 bits of each colour value, "
            "which would leave it nearly black. Convert it to 8 bits per channel by its real "
            "range (for 12-bit data: value * 255 / 4095), or pass the pixels as a float array "
            "in [0, 1]."
        )
    warnings.warn(
        # one text for every file, so that a folder of them warns once
        f"16-bit {kind} image files are decoded with 8 bits per channel (their range is kept, "
        "not their precision). Pass the pixels as a float array in [0, 1] to keep all 16 bits.",
        UserWarning,
        stacklevel=3,
    )


def _scale_to_unit(pixels, name):
    """Scale one channel of high-bit-depth pixels to float32 ``(3, H, W)`` in [0, 1]."""
    if pixels.dtype.kind == "f" and not np.isfinite(pixels).all():
        raise ValueError(f"Cannot read image {name}: it contains NaN or infinity.")
    lo, hi = pixels.min(), pixels.max()
    if pixels.dtype.kind == "f" and 0 <= lo and hi <= 1:
        unit = pixels.astype(np.float32)
    elif pixels.dtype.kind in "iu" and 0 <= lo and hi < 2 ** _BIT_DEPTHS[-1]:
        bits = next(b for b in _BIT_DEPTHS if hi < 2**b)
        unit = pixels.astype(np.float32) / np.float32(2**bits - 1)
    else:
        warnings.warn(
            f"Image {name} has pixel values in [{lo:g}, {hi:g}], which no standard bit "
            "depth (8 to 16 bits, or floats in [0, 1]) covers; it is scaled to [0, 1] by "
            "its own minimum and maximum.",
            UserWarning,
            stacklevel=2,
        )
        span = np.float64(hi) - np.float64(lo)
        unit = ((pixels.astype(np.float64) - lo) / (span or 1)).astype(np.float32)
    return torch.from_numpy(unit).expand(3, -1, -1)


def _array_to_tensor(a):
    a = np.ascontiguousarray(a) if a.flags.writeable else np.array(a)  # torch wants writable
    t = torch.from_numpy(a)
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
                    f"{what}: integer images must have values in [0, 255]; got [{lo}, {hi}]. "
                    "For 10- to 16-bit data pass floats in [0, 1] (divide by 2**bits - 1)."
                )
            a = a.astype(np.uint8)
        return a
    raise ValueError(f"{what} has unsupported dtype {a.dtype}.")


def _check_stack(X):
    shape = X.shape
    if X.ndim == 4 and shape[-1] in (1, 3):
        return X
    if X.ndim == 3 and shape[-1] not in (3, 4):
        return X
    if X.ndim == 3:
        one = "X[None]" if shape[-1] == 3 else "X[None, ..., :3] (dropping alpha)"
        raise ValueError(
            f"X has shape {shape}: that looks like one colour image, not {shape[0]} grey "
            f"images of {shape[1]}x{shape[2]} pixels. For one image pass {one}; for several "
            "pass a list of arrays; if these really are grey images "
            f"{shape[-1]} pixels wide, pass X[..., None]."
        )
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
        hint = ""
        if all(isinstance(p, str) and not p.lower().endswith(IMG_EXTENSIONS) for p in missing):
            hint = (
                " If these are texts, not file paths, use a text backbone such as "
                "'all-MiniLM-L6-v2'."
            )
        raise FileNotFoundError(f"Image file not found: {missing[0]}{more}.{hint}")
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
    return _check_list(items, draft_size)


def _check_list(items, draft_size):
    """Validate a list of paths, PIL images or arrays (one kind)."""
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
    bar = progress_bar(progress, n, desc)

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


def _is_hidden(name):
    """Hidden files and folders (``.ipynb_checkpoints``, macOS ``._*`` and ``__MACOSX``)."""
    return name.startswith(".") or name == "__MACOSX"


def find_image_files(folder, *, extensions=IMG_EXTENSIONS):
    """List the image files under a folder and all its sub-folders.

    The rules of torchvision's ``ImageFolder`` within one class, and of every command of
    ``sktransfer``: sub-folders are searched too (symbolic links followed, loops cut);
    hidden folders (any name starting with ``.``, e.g. ``.ipynb_checkpoints``, and
    ``__MACOSX``) are not searched; hidden files (including macOS ``._*`` AppleDouble
    files) and files with other extensions are skipped.

    Parameters
    ----------
    folder : str or path
        The folder.
    extensions : tuple of str
        File endings (case-insensitive) that count as images.

    Returns
    -------
    paths : list of str
        The image paths, sorted by folder then file name, as ``ImageFolder`` orders them.

    Raises
    ------
    FileNotFoundError
        ``folder`` does not exist or is not a folder.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> from sktransfer import find_image_files
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "2024" / ".ipynb_checkpoints").mkdir(parents=True)
    >>> for name in ("b.png", "2024/a.png", "2024/.ipynb_checkpoints/a.png", "._b.png"):
    ...     Image.new("RGB", (8, 8)).save(root / name)
    >>> [pathlib.Path(p).relative_to(root).as_posix() for p in find_image_files(root)]
    ['b.png', '2024/a.png']
    """
    folder = os.path.expanduser(os.fspath(folder))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Image folder not found: {folder}")
    exts = tuple(e.lower() for e in extensions)
    found, above = [], {folder: frozenset()}  # the real paths of each folder's ancestors
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in above[dirpath]:  # a link back to a folder above: a loop
            dirnames.clear()
            continue
        dirnames[:] = [d for d in dirnames if not _is_hidden(d)]
        above.update({os.path.join(dirpath, d): above[dirpath] | {real} for d in dirnames})
        names = [f for f in filenames if not _is_hidden(f) and f.lower().endswith(exts)]
        found.append((dirpath, sorted(names)))
    return [os.path.join(dirpath, name) for dirpath, names in sorted(found) for name in names]


def load_image_folder(root, *, extensions=IMG_EXTENSIONS):
    """List the images of a folder with one sub-folder per class.

    The layout torchvision's ``ImageFolder`` and Keras' ``flow_from_directory`` use::

        root/daisy/001.jpg
        root/daisy/002.jpg
        root/daisy/2024/003.jpg    (nested folders belong to their class)
        root/rose/001.jpg

    The same samples in the same order as ``ImageFolder``, except that hidden folders
    and files are skipped (see :func:`find_image_files`, which lists each class folder).
    Files lying directly in ``root`` belong to no class and are ignored.

    Parameters
    ----------
    root : str or path
        The folder.
    extensions : tuple of str
        File endings (case-insensitive) that count as images; other files are ignored.

    Returns
    -------
    paths : ndarray of str, shape (n_samples,)
        Image paths, sorted by class then path.
    labels : ndarray of str, shape (n_samples,)
        The class sub-folder of each image.

    Raises
    ------
    FileNotFoundError
        ``root`` does not exist or is not a folder.
    ValueError
        ``root`` has no class sub-folder, or a class sub-folder holds no image.

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
    root = os.path.expanduser(os.fspath(root))
    if not os.path.isdir(root):
        raise FileNotFoundError(f"Image folder not found: {root}")
    exts = tuple(e.lower() for e in extensions)
    layout = (
        f"expected one sub-folder per class holding its images, {os.path.join(root, '')}"
        f"<class>/<image> (as torchvision's ImageFolder), with image files "
        f"({', '.join(exts)})"
    )
    with os.scandir(root) as entries:
        classes = sorted(e.name for e in entries if e.is_dir() and not _is_hidden(e.name))
    if not classes:
        loose = find_image_files(root, extensions=exts)
        what = f"{len(loose)} images but no class sub-folder" if loose else "no class sub-folder"
        raise ValueError(f"No images found in {root}: it has {what}; {layout}.")
    paths, labels = [], []
    for name in classes:
        files = find_image_files(os.path.join(root, name), extensions=exts)
        if not files:
            raise ValueError(
                f"No images found in class folder {os.path.join(root, name)}; {layout}. "
                "Remove the folder or add its images."
            )
        paths += files
        labels += [name] * len(files)
    return np.asarray(paths, dtype=object), np.asarray(labels, dtype=object)


# --- the input pipeline ---------------------------------------------------------------------
@dataclass(frozen=True)
class ImagePipeline(InputPipeline):
    """How a backbone expects its images: resize, centre-crop, scale, normalise.

    The image modality's :class:`~sktransfer._modalities.InputPipeline`: it checks image
    input (:func:`check_images`), decodes and transforms it batch by batch, pools feature
    maps and token sequences, and takes the ``image_size``, ``augment`` and
    ``num_workers`` parameters of the estimators.

    Parameters
    ----------
    crop_size : int
        Side of the square the network sees.
    resize_size : int
        The shorter image side is resized to this before the centre crop.
    interpolation : str
        ``"bilinear"``, ``"bicubic"`` or ``"nearest"``.
    mean, std : tuple of float
        Per-channel normalisation applied to pixels scaled to [0, 1].
    """

    crop_size: int = 224
    resize_size: int = 256
    interpolation: str = "bilinear"
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD

    modality = "image"
    options = ("image_size", "augment", "num_workers")

    def __post_init__(self):
        for name in ("crop_size", "resize_size"):
            value = getattr(self, name)
            if not isinstance(value, Integral) or not 1 <= value <= 2 * MAX_IMAGE_SIZE:
                raise ValueError(
                    f"ImagePipeline.{name} must be an integer in [1, {2 * MAX_IMAGE_SIZE}]; "
                    f"got {value!r}."
                )
        if self.crop_size > MAX_IMAGE_SIZE:
            raise ValueError(
                f"ImagePipeline.crop_size={self.crop_size} is above the limit of "
                f"{MAX_IMAGE_SIZE} pixels."
            )
        if self.interpolation not in ("bilinear", "bicubic", "nearest"):
            raise ValueError(
                "ImagePipeline.interpolation must be 'bilinear', 'bicubic' or 'nearest'; "
                f"got {self.interpolation!r}."
            )
        for name in ("mean", "std"):
            value = tuple(getattr(self, name))
            if len(value) != 3 or not all(isinstance(v, Real) for v in value):
                raise ValueError(f"ImagePipeline.{name} must be 3 numbers; got {value!r}.")
            object.__setattr__(self, name, value)

    def __repr__(self):  # the name cache keys were made with (the class was Preprocessing)
        fields = ", ".join(f"{k}={v!r}" for k, v in asdict(self).items())
        return f"Preprocessing({fields})"

    # --- the safe format
    def describe(self):
        """Return the settings as JSON: ``dataclasses.asdict``."""
        return asdict(self)

    @classmethod
    def from_json(cls, values):
        """Rebuild from :meth:`describe`'s output read back from JSON (validated)."""
        fields = {"crop_size", "resize_size", "interpolation", "mean", "std"}
        if not isinstance(values, dict) or set(values) != fields:
            raise ValueError(f"ImagePipeline needs exactly the fields {sorted(fields)}.")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def restore(self, description):
        """Return the pipeline :meth:`describe` described (validated)."""
        return self.from_json(description)

    # --- estimator options
    def _configure(self, image_size=None, augment=None, num_workers=None):
        """``image_size`` crops to that side, resizing in the same proportion."""
        if image_size is None or image_size == self.crop_size:
            return self
        ratio = self.resize_size / self.crop_size
        return replace(self, crop_size=int(image_size), resize_size=round(image_size * ratio))

    def with_image_size(self, image_size):
        """Return a copy that crops to ``image_size`` (see :meth:`with_options`)."""
        return self.with_options(image_size=image_size)

    # --- inputs
    def check(self, X):
        """Validate raw input ``X`` (nothing is decoded): see :func:`check_images`."""
        return check_images(X)

    def example_input(self, n=1, random=False):
        """Return a batch of ``n`` blank (or random) inputs, as the network receives them."""
        shape = (n, 3, self.crop_size, self.crop_size)
        return torch.randn(shape) if random else torch.zeros(shape)

    def batches(
        self, inputs, batch_size, *, augment=None, num_workers=0, progress=False, desc=None,
        one_shape=False,
    ):  # fmt: skip
        """Yield the network's input batches for checked ``inputs``, in order.

        ``augment`` is as in :meth:`train_transform` (None: the deterministic transform).
        Image batches always have one shape (``one_shape`` is for text).
        """
        return iter_batches(
            inputs,
            self.train_transform(augment),
            batch_size,
            num_workers=num_workers,
            progress=progress,
            desc=desc,
        )

    def dataset(self, inputs, targets=None, *, augment=None):
        """Return a :class:`torch.utils.data.Dataset` of ``(input, target)`` pairs for training."""
        return ImageDataset(inputs, self.train_transform(augment), targets)

    def pool(self, output, pooling):
        """Pool a layer's output: see :func:`pool_feature_map`."""
        return pool_feature_map(output, pooling)

    def to_original(self, heatmap, size):
        """Map a heat map over the network's input back onto the original image.

        Undoes the centre crop and the resize of :meth:`eval_transform`: ``heatmap``
        (any ``(h, w)`` grid over the cropped input, such as a feature map's) is stretched
        over the crop, the crop is placed where it was cut from the resized image (0
        outside it), and the whole is resized to the original ``size`` ``(height, width)``.
        Returns a float32 tensor of that size.
        """
        height, width = (int(v) for v in size)
        if height <= width:  # torchvision's Resize(int) sets the shorter side
            resized = (self.resize_size, int(self.resize_size * width / height))
        else:
            resized = (int(self.resize_size * height / width), self.resize_size)
        crop = self.crop_size
        grid = torch.as_tensor(heatmap, dtype=torch.float32)[None, None]
        grid = nn.functional.interpolate(grid, size=(crop, crop), mode="bilinear")[0, 0]
        canvas = torch.zeros(resized)
        top, left = (int(round((side - crop) / 2.0)) for side in resized)
        rows = slice(max(top, 0), min(top + crop, resized[0]))
        cols = slice(max(left, 0), min(left + crop, resized[1]))
        canvas[rows, cols] = grid[
            rows.start - top : rows.stop - top, cols.start - left : cols.stop - left
        ]
        return nn.functional.interpolate(
            canvas[None, None], size=(height, width), mode="bilinear"
        )[0, 0]

    # --- transforms
    def _finish(self):
        # uint8 images are resized in uint8 (as PIL-based pipelines do, and three times
        # faster to decode than in float32); float images (float arrays, 16-bit files) in
        # float32, keeping their precision
        return [
            T.ToImage(),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(mean=list(self.mean), std=list(self.std)),
        ]

    def eval_transform(self):
        """Deterministic transform: PIL image or ``(C, H, W)`` tensor -> float tensor."""
        mode = InterpolationMode(self.interpolation)
        return T.Compose(
            [
                T.Resize(self.resize_size, interpolation=mode, antialias=True),
                T.CenterCrop(self.crop_size),
                *self._finish(),
            ]
        )

    def train_transform(self, augment="default"):
        """Transform for training.

        ``augment=None`` or ``False`` gives :meth:`eval_transform`; ``"default"`` (or
        ``True``) a random resized crop and a horizontal flip; a callable is applied to
        the decoded image first and is followed by the usual resize, crop and normalisation.
        """
        if augment is None or augment is False:
            return self.eval_transform()
        mode = InterpolationMode(self.interpolation)
        if augment is True or augment == "default":
            return T.Compose(
                [
                    T.RandomResizedCrop(self.crop_size, scale=(0.5, 1.0), interpolation=mode),
                    T.RandomHorizontalFlip(),
                    *self._finish(),
                ]
            )
        if callable(augment):
            return T.Compose([augment, self.eval_transform()])
        raise ValueError(
            f"augment must be None, False, True, 'default' or a callable transform; "
            f"got {augment!r}"
        )


def pool_feature_map(out, pooling):
    """Pool a layer's output to ``(n_samples, n_features)``.

    Feature maps ``(n, C, H, W)`` are pooled over space, token sequences ``(n, L, C)``
    over tokens (``"token"`` takes the first, class token); ``pooling=None`` flattens.
    """
    if isinstance(out, (tuple, list)):
        out = out[0]
    if out.ndim == 2 or pooling is None:
        return out.flatten(1)
    dims = (2, 3) if out.ndim == 4 else (1,)
    if pooling == "avg":
        return out.mean(dims)
    if pooling == "max":
        return out.amax(dims)
    if pooling == "avgmax":
        return torch.cat([out.mean(dims), out.amax(dims)], dim=1)
    if out.ndim != 3:
        raise ValueError(
            f"pooling='token' needs a token sequence (n, L, C); got {tuple(out.shape)}."
        )
    return out[:, 0]
