"""Modalities: one module each, behind one protocol (:class:`InputPipeline`).

``_images`` and ``_text`` each hold everything about their inputs: validation, decoding or
tokenising, batching, content keys for the activation cache, pooling, and the
description the safe format stores. The core only calls :class:`InputPipeline`'s methods.
"""

from ._base import InputPipeline, is_set
from ._images import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    IMG_EXTENSIONS,
    MAX_IMAGE_SIZE,
    POOLINGS,
    ImageList,
    ImagePipeline,
    check_images,
    decode_file,
    find_image_files,
    iter_batches,
    load_image_folder,
)
from ._text import TextList, TextPipeline, check_texts, pool_tokens

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMG_EXTENSIONS",
    "MAX_IMAGE_SIZE",
    "POOLINGS",
    "ImageList",
    "ImagePipeline",
    "InputPipeline",
    "TextList",
    "TextPipeline",
    "check_images",
    "check_texts",
    "decode_file",
    "find_image_files",
    "is_set",
    "iter_batches",
    "load_image_folder",
    "pool_tokens",
]
