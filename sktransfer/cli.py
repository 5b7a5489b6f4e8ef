"""The ``sktransfer`` command line: features, training and predictions for images or texts.

``sktransfer extract DIR -o features.parquet``
    Features of every image, with file path and label columns.
``sktransfer fit DIR -o model.skt [--fine-tune] [--n-frozen K] [--epochs N] [--backbone NAME]``
    Train a classifier, print its held-out accuracy, save it in the safe format.
``sktransfer fit TABLE -o model.skt --regression``
    Train a regressor on the numbers of a table's label column, print its held-out R².
``sktransfer fit TABLE -o model.skt --label-column A --label-column B`` (0/1 columns)
``sktransfer fit TABLE -o model.skt --label-column tags --label-sep ";"`` (label lists)
    Train a multi-label classifier (several labels per text), print its held-out F1.
``sktransfer predict model.skt DIR_OR_FILES [-o predictions.csv] [--allow-source SPEC]``
    Predicted class and class probabilities of each image (a regressor's number; a
    multi-label model's labels, joined by ``--label-sep``, each also as 0/1 and probability).

Texts come in a ``.csv``, ``.tsv`` or ``.parquet`` table instead of a folder:
``--text-column`` names the column of texts (default ``text``) and ``--label-column`` the
labels (default ``label``); the default backbone is then the bundled ``all-MiniLM-L6-v2``.
A text backbone or model reads only tables (never a folder's file names), an image one
only images.

Exit status: 0 on success; 2 for a problem with the input or the output (a missing folder,
one class only, a corrupt image, a folder that cannot be written, weights not cached), reported
in one line that names it, without a traceback; 130 when interrupted (Ctrl-C); 1 for an
unexpected error, also in one line (``SKTRANSFER_DEBUG=1`` shows its traceback instead). Every
file is written whole or not at all.
"""

import argparse
import contextlib
import math
import os
import re
import shlex
import sys
import tempfile
from pathlib import Path

from ._config import get_config
from .exceptions import SourceNotAllowedError

EPILOG = "Weights are looked up offline first; set SKTRANSFER_OFFLINE=1 to never download."
FEATURE_FORMATS = (".parquet", ".csv", ".npz")
TABLE_FORMATS = (".csv", ".tsv", ".parquet")
DEFAULT_BACKBONES = {"images": "efficientnet_lite0", "texts": "all-MiniLM-L6-v2"}
KINDS = {"image": "images", "text": "texts"}  # a backbone's modality -> the inputs read for it
PREDICTION_FORMATS = (".csv", ".parquet")
DEFAULT_LABEL_SEP = ";"  # what predict joins a multi-label model's labels with
BATCH_SIZE = 32  # --batch-size when not given (--few-shot: the estimator's own)
# The estimator parameters the options set: errors name the option the user typed
FLAGS = {
    "backbone": "--backbone",
    "batch_size": "--batch-size",
    "device": "--device",
    "image_size": "--image-size",
    "layer": "--layer",
    "lr": "--lr",
    "max_epochs": "--epochs",
    "max_length": "--max-length",
    "n_frozen": "--n-frozen",
    "random_state": "--random-state",
    "template": "--template",
    "test_size": "--test-size",
    "weights": "--weights",
}
_CHECKED_PARAMETER = re.compile(r"The '(\w+)' parameter of \w+ must be")
_PARAMETER = re.compile(  # a parameter named in a sentence, not a part of a path or a word
    r"(?<![\w/\\.-])(" + "|".join(name for name in FLAGS if "_" in name) + r")(?![\w/\\-]|\.\w)"
)


def _epochs(value):
    """``--epochs``: ``auto`` or a whole number (the estimator checks its range)."""
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 'auto' or a whole number, got {value!r}"
        ) from None


def _add_backbone_options(parser):
    parser.add_argument(
        "--backbone",
        default=None,
        help="network: 'efficientnet_lite0' (bundled, offline), a torchvision name such as "
        "'resnet18', or 'timm:<name>'; for texts 'all-MiniLM-L6-v2' (bundled) or "
        "'hf:<name>' (default: efficientnet_lite0 for images, all-MiniLM-L6-v2 for texts)",
    )
    parser.add_argument(
        "--weights",
        default="DEFAULT",
        help="'DEFAULT', a torchvision weight tag, or a local .pth/.safetensors checkpoint "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="side of the square crop the network sees (default: the backbone's own)",
    )
    parser.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="texts: tokens per text, longer ones are truncated (default: the model's own)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help=f"inputs per batch (default: {BATCH_SIZE}; --few-shot: the estimator's own)",
    )
    _add_table_options(parser)
    parser.add_argument(
        "--device", default="auto", help="'auto' (GPU if present), 'cpu' or 'cuda'"
    )


def _add_table_options(parser):
    parser.add_argument(
        "--text-column",
        default="text",
        help="texts: the column of a .csv/.tsv/.parquet input holding them; a model file does "
        "not record it, so predict needs it again (default: %(default)s)",
    )
    parser.add_argument(
        "--label-column",
        dest="label_columns",
        action="append",
        default=None,
        metavar="LABEL_COLUMN",
        help="texts: the column holding the labels, numbers with --regression (default: "
        "label); fit: repeat it for several labels per text, each column holding 0 or 1 "
        "for the label it is named after",
    )


def _add_label_sep_option(parser, description):
    parser.add_argument("--label-sep", default=None, metavar="SEP", help=description)


def build_parser():
    """Build the argument parser (exposed for the docs and the tests)."""
    parser = argparse.ArgumentParser(
        prog="sktransfer",
        description="Transfer learning for a folder of images, one sub-folder per class.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_extract_parser(sub)
    _add_fit_parser(sub)
    _add_predict_parser(sub)
    return parser


def _add_extract_parser(sub):
    extract = sub.add_parser(
        "extract",
        help="write the pretrained features of every image to a table",
        description="Extract pretrained features of every image in DIR (one sub-folder per "
        "class) into a table with 'path' and 'label' columns followed by the features.",
        epilog=EPILOG,
    )
    extract.add_argument(
        "folder",
        metavar="DIR_OR_TABLE",
        help="image folder, one sub-folder per class, or a .csv/.tsv/.parquet table of texts",
    )
    extract.add_argument(
        "-o",
        "--output",
        required=True,
        help="output file: .parquet, .csv or .npz (by its extension)",
    )
    extract.add_argument(
        "--layer", default=None, help="an intermediate layer, e.g. 'blocks3' (default: final)"
    )
    extract.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="images: run on the Dask cluster of this scheduler (e.g. tcp://host:8786); -o "
        "is then a folder of Parquet partitions, each written when done, and the same "
        "command run again resumes an interrupted job (needs sktransfer[dask])",
    )
    _add_backbone_options(extract)


def _add_fit_parser(sub):
    fit = sub.add_parser(
        "fit",
        help="train a classifier on an image folder (or a table of texts) and save it",
        description="Train a classifier on DIR (one sub-folder per class), print its "
        "accuracy on a held-out part, then refit on all images and save the model in the "
        "safe format (weights as safetensors, no pickle). By default only a new head is "
        "trained on frozen pretrained features; --fine-tune also trains the top layers. "
        "A table of texts with --regression trains a regressor on numbers instead.",
        epilog=EPILOG,
    )
    fit.add_argument(
        "folder",
        metavar="DIR_OR_TABLE",
        nargs="?",
        default=None,
        help="image folder, one sub-folder per class, or a .csv/.tsv/.parquet table of texts "
        "(only --zero-shot-labels trains without one)",
    )
    fit.add_argument("-o", "--output", required=True, help="model file to write, e.g. model.skt")
    _add_training_options(fit)
    _add_text_strategy_options(fit)
    fit.add_argument(
        "--test-size",
        type=float,
        default=0.2,
        help="fraction held out to report accuracy, or R² with --regression "
        "(default: 0.2; 0 skips it)",
    )
    fit.add_argument(
        "--regression",
        action="store_true",
        help="texts: the --label-column holds numbers; train a regressor (scored by R²) "
        "instead of a classifier",
    )
    fit.add_argument("--random-state", type=int, default=0, help="seed (default: 0)")
    _add_label_sep_option(
        fit,
        "texts: the --label-column holds lists of labels separated by SEP, such as "
        "'sports;politics' with --label-sep ';' (an empty cell: no label); trains a "
        "multi-label classifier",
    )
    _add_backbone_options(fit)


def _add_training_options(fit):
    """Add what is trained and how: --fine-tune, --n-frozen, --epochs, --lr, --augment."""
    fit.add_argument(
        "--fine-tune",
        action="store_true",
        help="also train the top layer groups of the backbone (see --n-frozen)",
    )
    fit.add_argument(
        "--n-frozen",
        default=None,
        help="layer groups kept frozen, counted from the input; negative counts from the top, "
        "'all' trains the head only, 'auto' chooses among 'all', -1, -2, -3 on a held-out "
        "part (slower) (default: 'all', or -2 with --fine-tune)",
    )
    fit.add_argument(
        "--epochs",
        type=_epochs,
        default="auto",
        help="training epochs, or 'auto': 10, or more for small data (at least 100 "
        "optimiser steps) (default: auto)",
    )
    fit.add_argument(
        "--lr",
        type=float,
        default=None,
        help="learning rate: of the head (default: 1e-3), or of the encoder with --few-shot "
        "(default: 2e-5)",
    )
    fit.add_argument(
        "--augment",
        action="store_true",
        help="random resized crops and flips while training (slower: no feature cache)",
    )


def _add_text_strategy_options(fit):
    """Add the other ways to train on texts: --few-shot and --zero-shot-labels."""
    fit.add_argument(
        "--few-shot",
        action="store_true",
        help="texts: tune the sentence encoder on pairs of labelled texts (same class or "
        "not, as SetFit does), then fit a logistic-regression head on its embeddings; the "
        "best way with a few (8 to a few hundred) labelled texts per class",
    )
    fit.add_argument(
        "--zero-shot-labels",
        default=None,
        metavar="LABELS",
        help="texts: classify by similarity to these class names, separated by commas "
        "(e.g. 'sports,cooking'), with no training; DIR_OR_TABLE may be left out, and a "
        "table's labelled texts join the class names as examples and give a held-out "
        "accuracy",
    )
    fit.add_argument(
        "--template",
        default=None,
        help="with --zero-shot-labels: the sentence each class name is put in, {} standing "
        "for the name (default: 'This text is about {}.')",
    )


def _add_predict_parser(sub):
    predict = sub.add_parser(
        "predict",
        help="predict the class of images with a saved model",
        description="Predict the class of each image with a model saved by 'sktransfer fit'.",
        epilog=EPILOG,
    )
    predict.add_argument("model", help="model file written by 'sktransfer fit'")
    predict.add_argument(
        "inputs",
        nargs="+",
        metavar="DIR_OR_FILES",
        help="image files, or folders searched recursively for images, or one "
        ".csv/.tsv/.parquet table of texts (for a text model)",
    )
    predict.add_argument(
        "-o",
        "--output",
        default=None,
        help="write a .csv or .parquet file, by its extension (default: print to the terminal)",
    )
    predict.add_argument("--batch-size", type=int, default=32, help="inputs per batch")
    predict.add_argument(
        "--allow-source",
        action="append",
        default=None,
        metavar="SPEC",
        help="a model folder or hub repository the model file may name as its backbone, "
        "e.g. 'hf:/models/encoder' or 'hf:org/model' (repeatable; 'any' allows every "
        "source: only for files you trust). Without it a file may name only the bundled "
        "models and torchvision's or timm's model names",
    )
    _add_table_options(predict)
    _add_label_sep_option(
        predict,
        "a multi-label model: the separator that joins the labels predicted for an input in "
        "the 'prediction' column; a model file does not record the one it was trained with "
        f"(default: {DEFAULT_LABEL_SEP!r})",
    )


def _version():
    from . import __version__

    return f"sktransfer {__version__}"


def _batch_size(args):
    """``--batch-size``, or :data:`BATCH_SIZE` when it was not given."""
    return BATCH_SIZE if args.batch_size is None else args.batch_size


def _backbone_params(args, kind):
    """Return the estimator parameters that the backbone options set, for ``kind`` inputs."""
    return {
        "backbone": args.backbone or DEFAULT_BACKBONES[kind],
        "weights": args.weights,
        "image_size": args.image_size,
        "max_length": args.max_length,
        "batch_size": _batch_size(args),
        "device": args.device,
    }


def _n_frozen(value, fine_tune):
    if value is None:
        return -2 if fine_tune else "all"
    if value in ("all", "auto"):
        return value
    try:
        return int(value)
    except ValueError:
        raise ValueError(
            f"--n-frozen must be 'all', 'auto' or an integer; got {value!r}"
        ) from None


def _check_output(output, suffixes=None):
    """Fail before any work on an output that cannot be written, naming it.

    The folder is probed by creating (and removing) a temporary file in it, so that
    permission bits, read-only mounts and the like show up now rather than after the work.
    """
    target = os.path.realpath(output)  # files are written through symbolic links
    if os.path.isdir(target):
        raise IsADirectoryError(f"Output {output} is a folder: give a file name in it")
    suffix = Path(output).suffix.lower()
    if suffixes and suffix not in suffixes:
        raise ValueError(
            f"Unknown output type {suffix or '(no extension)'!r} for {output}: "
            f"use {', '.join(suffixes)}"
        )
    folder = os.path.dirname(target)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise NotADirectoryError(f"Cannot write {output}: {folder} is not a folder")
    _check_writable(folder, output)


def _check_writable(folder, output):
    """Refuse a missing folder, or one this process cannot create a file in, for ``output``."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Output folder does not exist: {folder} (for {output})")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise OSError(exc.errno, f"Cannot write {output}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def _writing(output):
    """Name ``output`` in any error while it is written (a full disk, a lost mount)."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None and os.fspath(exc.filename) == os.fspath(output):
            raise  # already names it
        raise OSError(exc.errno, f"Cannot write {output}: {exc.strerror or exc}") from exc


def _write_table(table, output):
    """Write a table by the output's extension (.csv or .parquet), whole or not at all."""
    from ._core.files import atomic_path

    with _writing(output), atomic_path(output) as tmp:
        if Path(output).suffix.lower() == ".parquet":
            table.to_parquet(tmp, index=False)
        else:
            table.to_csv(tmp, index=False)


def _write_features(paths, labels, features, output, id_name="path"):
    if Path(output).suffix.lower() == ".npz":
        import numpy as np

        from ._core.files import atomic_path

        with _writing(output), atomic_path(output) as tmp:
            # Fixed-width unicode, not object arrays: np.load reads them without pickle.
            ids = {id_name: np.asarray(paths, dtype=str)}
            np.savez_compressed(tmp, **ids, label=np.asarray(labels, dtype=str), X=features)
        return
    import pandas as pd

    table = pd.DataFrame(features, columns=[f"f{i}" for i in range(features.shape[1])])
    table.insert(0, "label", labels)
    table.insert(0, id_name, paths)
    _write_table(table, output)


def _is_table(path):
    """Whether ``path`` names a table of texts (by its extension) rather than images."""
    return Path(path).suffix.lower() in TABLE_FORMATS and not os.path.isdir(path)


def _load_table(path):
    """Read a .csv/.tsv/.parquet table; CSV cells as the strings they are ("NA" included)."""
    import pandas as pd

    suffix = Path(path).suffix.lower()
    try:
        if suffix == ".parquet":
            table = pd.read_parquet(path)
        else:  # "NA", "None", "null" are texts and labels like any other: no NaN guessing
            sep = "\t" if suffix == ".tsv" else ","
            table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise ValueError(f"Cannot read the table {path}: {exc}") from None
    if len(table) == 0:
        raise ValueError(f"{path} has no rows, only a header: there are no texts to read")
    table.columns = [str(c) for c in table.columns]
    return table


def _is_empty(value):
    """Whether a cell is blank or missing (None, NaN, ``pd.NA``)."""
    import numpy as np
    import pandas as pd

    if isinstance(value, str):
        return not value.strip()
    missing = pd.isna(value)
    return np.ndim(missing) == 0 and bool(missing)


def _cells(table, path, column, flag):
    """Return the cells of ``column``; an empty or missing one is an error naming its row."""
    values = table[column].to_numpy(dtype=object)
    for i, value in enumerate(values):
        if _is_empty(value):
            raise ValueError(
                f"Row {i} of {path} (the first row is row 0) has an empty {flag} {column!r} "
                "cell: fill it in or drop the row"
            )
    return values


def _read_table(path, args, need_labels, note=""):
    """Texts (and labels, if the table has them) of a table: ``(texts, labels or None)``.

    Every text must be there; so must every label when ``need_labels``. ``note`` ends the
    message of a missing column.
    """
    table = _load_table(path)
    needed = [(args.text_column, "--text-column", "texts")]
    if need_labels:
        needed += [(column, "--label-column", "labels") for column in args.label_columns]
    for column, flag, what in needed:
        if column not in table.columns:
            raise ValueError(
                f"{path} has no column {column!r} (its columns: {', '.join(table.columns)}); "
                f"name the column of {what} with {flag}{note}"
            )
    texts = _cells(table, path, args.text_column, "--text-column")
    if args.label_column not in table.columns:
        return texts, None
    if not need_labels:  # written next to the features as they are
        return texts, table[args.label_column].fillna("").to_numpy(dtype=object)
    if _is_multi_label(args):  # read by _label_matrix: an empty list cell is no label
        return texts, {
            column: table[column].to_numpy(dtype=object)
            if args.label_sep is not None
            else _cells(table, path, column, "--label-column")
            for column in args.label_columns
        }
    labels = _cells(table, path, args.label_column, "--label-column")
    if len({type(label) for label in labels}) > 1:  # mixed types do not sort
        labels = labels.astype(str)
    return texts, labels


def _input_kind(args):
    """``"texts"`` or ``"images"``: what the backbone takes, which the input must hold."""
    table = _is_table(args.folder)
    if args.backbone is None:
        return "texts" if table else "images"
    from .backbones import load_backbone

    modality = load_backbone(args.backbone, args.weights).preprocessing.modality
    kind = KINDS.get(modality, "texts" if table else "images")
    if kind == "texts" and not table:
        raise ValueError(
            f"{args.folder} is not a table of texts, and --backbone {args.backbone!r} is a "
            f"text model: give a {'/'.join(TABLE_FORMATS)} table whose --text-column "
            f"(default {args.text_column!r}) holds the texts, or an image backbone such as "
            f"{DEFAULT_BACKBONES['images']!r} for a folder of images"
        )
    if kind == "images" and table:
        raise ValueError(
            f"{args.folder} is a table of texts, and --backbone {args.backbone!r} is an image "
            f"model: use a text backbone such as {DEFAULT_BACKBONES['texts']!r}"
        )
    return kind


def _read_inputs(args, need_labels):
    """Read what the backbone takes, images or texts: ``(X, labels, ids, kind)``."""
    kind = _input_kind(args)
    if kind == "texts":
        texts, labels = _read_table(args.folder, args, need_labels)
        return texts, labels, list(range(len(texts))), kind
    from . import load_image_folder  # torch: after the checks

    paths, labels = load_image_folder(args.folder)
    return paths, labels, paths, kind


def cmd_extract(args):
    """Run ``sktransfer extract``."""
    if args.scheduler is not None:
        return _extract_on_cluster(args)
    _check_output(args.output, FEATURE_FORMATS)
    if len(args.label_columns) > 1:
        raise ValueError(
            f"extract writes one label column next to the features, and --label-column is "
            f"given {len(args.label_columns)} times: give it once"
        )
    X, labels, ids, kind = _read_inputs(args, need_labels=False)
    from . import PretrainedFeatureExtractor

    extractor = PretrainedFeatureExtractor(
        **_backbone_params(args, kind), layer=args.layer, verbose=1
    )
    features = extractor.fit_transform(X)
    if labels is None:
        labels = [""] * len(ids)
    _write_features(
        ids, labels, features, args.output, id_name="path" if kind == "images" else "row"
    )
    print(f"{len(ids)} {kind} x {features.shape[1]} features -> {args.output}")


def _check_output_folder(output):
    """Fail before any work on an output folder that cannot be made or written, naming it."""
    suffix = Path(output).suffix.lower()
    if suffix in (".csv", ".npz"):
        raise ValueError(
            f"With --scheduler, -o names a folder of Parquet partitions; {output} looks like a "
            f"{suffix} file: give a folder name"
        )
    target = os.path.realpath(output)
    if os.path.exists(target) and not os.path.isdir(target):
        raise NotADirectoryError(
            f"Output {output} is a file: with --scheduler, -o names a folder of Parquet partitions"
        )
    _check_writable(target if os.path.isdir(target) else os.path.dirname(target), output)


def _extract_on_cluster(args):
    """Run ``sktransfer extract --scheduler``: Parquet partitions written by a Dask cluster."""
    _check_output_folder(args.output)
    if _is_table(args.folder):
        raise ValueError("--scheduler extracts the images of a folder; extract texts without it")
    from .distributed import INSTALL_HINT, extract_features

    try:
        from distributed import Client
    except ImportError:
        raise ValueError(f"--scheduler needs Dask: {INSTALL_HINT}") from None
    from . import PretrainedFeatureExtractor, load_image_folder

    paths, labels = load_image_folder(args.folder)
    # The workers' working folder is not ours: they get absolute paths (and so does the table).
    paths = [os.path.abspath(p) for p in paths]
    extractor = PretrainedFeatureExtractor(
        args.backbone or DEFAULT_BACKBONES["images"],
        weights=args.weights,
        layer=args.layer,
        image_size=args.image_size,
        batch_size=_batch_size(args),
        device=args.device,
    )
    try:
        client = Client(args.scheduler)
    except (OSError, ValueError, TypeError) as exc:  # TimeoutError is an OSError
        raise OSError(
            f"Cannot reach the Dask scheduler at {args.scheduler}: {_message(exc)}"
        ) from None
    with client:
        summary = extract_features(
            paths, extractor, client=client, output=args.output, labels=labels, progress=True
        )
    redone = f", {summary.n_redone} damaged and redone" if summary.n_redone else ""
    print(
        f"{summary.n_images} images x {summary.n_features} features -> {args.output} "
        f"({summary.n_partitions} Parquet partitions, {summary.n_skipped} already there"
        f"{redone})"
    )


def _check_test_size(test_size):
    if not (test_size == 0 or 0 < test_size < 1):
        raise ValueError(f"--test-size must be 0 (no held-out part) or in (0, 1); got {test_size}")


def _check_classes(args, labels, kind):
    """Return the classes and their counts; refuse one class, or a split without them all.

    ``train_test_split`` needs every class on both sides: said here in the options' words.
    """
    import numpy as np

    classes, counts = np.unique(labels, return_counts=True)
    classes = classes.tolist()  # shown as values, not numpy reprs
    if len(classes) < 2:
        where = "sub-folders of images" if kind == "images" else "labels"
        raise ValueError(
            f"{args.folder} has one class ({classes[0]!r}); a classifier needs at least two "
            f"{where}."
        )
    if args.test_size > 0:
        if counts.min() < 2:
            raise ValueError(
                f"Class {classes[counts.argmin()]!r} has a single example: too few to hold some "
                f"out; add {kind} or pass --test-size 0."
            )
        n_test = math.ceil(args.test_size * len(labels))
        for n, part in ((n_test, "holds out"), (len(labels) - n_test, "leaves for training")):
            if n < len(classes):
                raise ValueError(
                    f"--test-size {args.test_size} {part} {n} of {len(labels)} {kind}, fewer "
                    f"than the {len(classes)} classes: change --test-size, or pass 0 to skip "
                    "the held-out accuracy."
                )
    return classes, counts


def _check_regression_input(args):
    """Refuse --regression for an image folder, whose sub-folders are classes, before any work."""
    if not _is_table(args.folder):
        raise ValueError(
            f"--regression needs a {'/'.join(TABLE_FORMATS)} table of texts whose "
            f"--label-column holds numbers; {args.folder} is a folder of images, whose "
            "sub-folders are classes: drop --regression to train a classifier"
        )


def _targets(args, labels):
    """Return the label cells as floats; a cell that is not a finite number names its row."""
    import numpy as np

    targets = np.empty(len(labels))
    for i, value in enumerate(labels):
        try:
            number = float(value) if not isinstance(value, (bool, np.bool_)) else math.nan
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise ValueError(
                f"Row {i} of {args.folder} (the first row is row 0) has {value!r} in the "
                f"--label-column {args.label_column!r}, not a finite number: with --regression "
                "every target is a number (drop --regression for class labels)"
            )
        targets[i] = number
    return targets


def _check_targets(args, targets, kind):
    """Return the line that describes the targets; refuse too few to learn or to score."""
    if targets.min() == targets.max():
        raise ValueError(
            f"Every --label-column {args.label_column!r} value of {args.folder} is "
            f"{targets[0]:g}: a regressor needs targets that vary"
        )
    if args.test_size > 0:
        n_test = math.ceil(args.test_size * len(targets))
        for n, part in ((n_test, "holds out"), (len(targets) - n_test, "leaves for training")):
            if n < 2:
                raise ValueError(
                    f"--test-size {args.test_size} {part} {n} of {len(targets)} {kind}; R² "
                    "needs at least 2 on each side: change --test-size, or pass 0 to skip the "
                    "held-out R²."
                )
    return (
        f"{len(targets)} {kind}, target {args.label_column!r}: mean {targets.mean():.4g}, "
        f"standard deviation {targets.std():.4g}, from {targets.min():g} to {targets.max():g}"
    )


def _describe_classes(args, labels, kind):
    """Return the line that describes the classes (checked by :func:`_check_classes`)."""
    classes, counts = _check_classes(args, labels, kind)
    return f"{len(labels)} {kind}, {len(classes)} classes: " + ", ".join(
        f"{c} ({n})" for c, n in zip(classes, counts, strict=True)
    )


# --- several labels per text: a repeated --label-column, or one with --label-sep -------------
def _is_multi_label(args):
    """Whether ``fit`` reads several labels per input: 0/1 columns, or lists in one column."""
    return len(args.label_columns) > 1 or getattr(args, "label_sep", None) is not None


def _check_label_options(args):
    """Refuse label options that do not go together, naming them, before any work."""
    if not _is_multi_label(args):
        return
    columns, sep = args.label_columns, args.label_sep
    given = "--label-sep" if sep is not None else "a repeated --label-column"
    if sep == "":
        raise ValueError(
            "--label-sep is empty: give the text between the labels of a cell, such as ';'"
        )
    if sep is not None and len(columns) > 1:
        raise ValueError(
            f"--label-sep splits the label lists of one column, and --label-column is given "
            f"{len(columns)} times ({', '.join(map(repr, columns))}): give one --label-column "
            "with --label-sep, or 0/1 columns (one --label-column each) without it"
        )
    twice = next((column for column in columns if columns.count(column) > 1), None)
    if twice is not None:
        raise ValueError(f"--label-column {twice!r} is given twice: name each column once")
    if args.regression:
        raise ValueError(
            f"--regression trains on one --label-column of numbers, and {given} gives several "
            "labels per text (multi-label classification): drop --regression to train a "
            "multi-label classifier"
        )
    if not _is_table(args.folder):
        raise ValueError(
            f"{args.folder} is a folder of images, whose sub-folders are the classes (one per "
            f"image): {given} is for a {'/'.join(TABLE_FORMATS)} table of texts with several "
            "labels per text"
        )


def _zero_one(args, column, cells):
    """Return a 0/1 column as integers; a cell that is not 0 or 1 names its row and column."""
    import numpy as np

    values = np.empty(len(cells), dtype=np.int64)
    for i, cell in enumerate(cells):
        try:
            number = float(cell)
        except (TypeError, ValueError):
            number = math.nan
        if number not in (0.0, 1.0):
            raise ValueError(
                f"Row {i} of {args.folder} (the first row is row 0) has {cell!r} in the "
                f"--label-column {column!r}, not 0 or 1: a repeated --label-column names 0/1 "
                "columns, one per label (for a column of label lists, give it alone with "
                "--label-sep)"
            )
        values[i] = int(number)
    return values


def _split_lists(args, cells):
    """Return the label lists of a column split by ``--label-sep`` (an empty cell: none)."""
    return [
        []
        if _is_empty(cell)
        else [label.strip() for label in str(cell).split(args.label_sep) if label.strip()]
        for cell in cells
    ]


def _label_matrix(args, labels):
    """Return the 0/1 matrix of the labels (one column each) and their names, checked."""
    import numpy as np
    from sklearn.preprocessing import MultiLabelBinarizer

    if args.label_sep is not None:
        lists = _split_lists(args, labels[args.label_column])
        names = sorted({label for row in lists for label in row})
        if len(names) < 2:
            found = f"one label ({names[0]!r})" if names else "no label"
            raise ValueError(
                f"The --label-column {args.label_column!r} of {args.folder} split by "
                f"--label-sep {args.label_sep!r} holds {found}: several labels per text need "
                "at least two (for one label per text, drop --label-sep)"
            )
        return MultiLabelBinarizer(classes=names).fit_transform(lists), names
    names = list(args.label_columns)
    matrix = np.column_stack([_zero_one(args, name, labels[name]) for name in names])
    for name, count in zip(names, matrix.sum(axis=0), strict=True):
        if count == 0:
            raise ValueError(
                f"The --label-column {name!r} of {args.folder} is 0 in every row: no text has "
                "that label, so there is nothing to learn it from; drop that --label-column"
            )
    return matrix, names


def _describe_labels(matrix, names, kind):
    """Return the line that describes several labels per input: each label's count."""
    line = f"{len(matrix)} {kind}, {len(names)} labels: " + ", ".join(
        f"{name} ({count})" for name, count in zip(names, matrix.sum(axis=0), strict=True)
    )
    n_none = int((matrix.sum(axis=1) == 0).sum())
    return line + (f"; {n_none} {kind} with no label" if n_none else "")


def _check_split(args, n, kind):
    """Refuse a held-out part that leaves no input to train on (random, not stratified)."""
    if args.test_size > 0 and n - math.ceil(args.test_size * n) < 1:
        raise ValueError(
            f"--test-size {args.test_size} holds out all {n} {kind}: lower it, or pass 0 to "
            "skip the held-out score"
        )


def _training_targets(args, labels, kind):
    """Return ``(y, stratify, summary line, label names or None)`` for ``fit``."""
    if args.regression:
        targets = _targets(args, labels)
        return targets, None, _check_targets(args, targets, kind), None
    if _is_multi_label(args):
        matrix, names = _label_matrix(args, labels)
        _check_split(args, len(matrix), kind)
        return matrix, None, _describe_labels(matrix, names, kind), names
    return labels, labels, _describe_classes(args, labels, kind), None


def _held_out_score(model, X, y):
    """Return the held-out score as the line says it: R², accuracy, or multi-label F1."""
    import numpy as np
    from sklearn.base import is_regressor
    from sklearn.metrics import f1_score

    if is_regressor(model):
        return f"R²: {model.score(X, y):.3f}"
    if len(np.shape(y)) == 1:
        return f"accuracy: {model.score(X, y):.3f}"
    predicted = model.predict(X)  # a text with no label, rightly predicted so, scores 1
    f1 = f1_score(y, predicted, average="samples", zero_division=1.0)
    return f"F1 (samples): {f1:.3f}, exact match: {(predicted == y).all(axis=1).mean():.3f}"


# --- few-shot and zero-shot texts ---------------------------------------------------------
def _zero_shot_labels(args):
    """Return the class names of --zero-shot-labels, refusing an empty or repeated one."""
    names = [name.strip() for name in args.zero_shot_labels.split(",")]
    if any(not name for name in names) or len(names) < 2:
        raise ValueError(
            f"--zero-shot-labels {args.zero_shot_labels!r} must name at least two classes, "
            "separated by commas, none empty (e.g. 'sports,cooking')"
        )
    twice = next((name for name in names if names.count(name) > 1), None)
    if twice is not None:
        raise ValueError(f"--zero-shot-labels names {twice!r} twice: name each class once")
    return names


def _check_strategy(args):
    """Refuse options that the chosen way to train does not take, before any work."""
    zero_shot = args.zero_shot_labels is not None
    if args.folder is None and not zero_shot:
        raise ValueError(
            "DIR_OR_TABLE is missing: give an image folder or a table of texts to train on "
            "(only --zero-shot-labels trains without one)"
        )
    if args.template is not None and not zero_shot:
        raise ValueError("--template is the sentence of --zero-shot-labels: give both or neither")
    if not (zero_shot or args.few_shot):
        return
    flag = "--zero-shot-labels" if zero_shot else "--few-shot"
    given = {
        "--few-shot": zero_shot and args.few_shot,
        "--regression": args.regression,
        "--fine-tune": args.fine_tune,
        "--n-frozen": args.n_frozen is not None,
        "--augment": args.augment,
        "--epochs": zero_shot and args.epochs != "auto",
        "--lr": zero_shot and args.lr is not None,
        "--label-sep or a repeated --label-column": _is_multi_label(args),
        "--weights": args.weights != "DEFAULT",
        "--image-size": args.image_size is not None,
    }
    clash = next((name for name, on in given.items() if on), None)
    if clash is not None:
        raise ValueError(f"{flag} does not take {clash}: drop it")
    if args.folder is not None and not _is_table(args.folder):
        raise ValueError(
            f"{flag} trains on texts, and {args.folder} is not a {'/'.join(TABLE_FORMATS)} "
            "table: give a table whose --text-column holds the texts"
        )


def _text_strategy(args):
    """Return the estimator of --few-shot or --zero-shot-labels, or None for the default."""
    from . import FewShotTextClassifier, ZeroShotTextClassifier

    params = {
        "backbone": args.backbone or DEFAULT_BACKBONES["texts"],
        "max_length": args.max_length,
        "device": args.device,
        **({} if args.batch_size is None else {"batch_size": args.batch_size}),
    }
    if args.zero_shot_labels is not None:
        template = {} if args.template is None else {"template": args.template}
        return ZeroShotTextClassifier(_zero_shot_labels(args), **template, **params)
    if args.few_shot:
        epochs = {} if args.epochs == "auto" else {"max_epochs": args.epochs}
        lr = {} if args.lr is None else {"lr": args.lr}
        return FewShotTextClassifier(**params, **epochs, **lr, random_state=args.random_state)
    return None


def _check_zero_shot_classes(args, labels):
    """Refuse labelled texts whose classes --zero-shot-labels does not name."""
    names = set(_zero_shot_labels(args))
    unknown = sorted({str(label) for label in labels} - names)
    if unknown:
        raise ValueError(
            f"the --label-column {args.label_column!r} of {args.folder} holds classes that "
            f"--zero-shot-labels does not name: {', '.join(unknown)}; name every class"
        )


def _fit_zero_shot_alone(args, model):
    """Fit and save a zero-shot model from the class names alone (no table)."""
    from . import save

    print(f"{len(model.labels)} classes from their names: {', '.join(model.labels)}")
    model.fit()
    with _writing(args.output):
        save(model, args.output)
    print(f"zero-shot model saved to {args.output}")


def _model_for_fit(args, kind):
    """Return the estimator that ``fit`` trains: few-/zero-shot, regressor or classifier."""
    from . import FineTunedClassifier, FineTunedRegressor

    model = _text_strategy(args)
    if model is not None:
        return model
    lr = {} if args.lr is None else {"lr": args.lr}
    return (FineTunedRegressor if args.regression else FineTunedClassifier)(
        **_backbone_params(args, kind),
        n_frozen=_n_frozen(args.n_frozen, args.fine_tune),
        max_epochs=args.epochs,
        **lr,
        augment="default" if args.augment else None,
        random_state=args.random_state,
        verbose=0,
    )


def cmd_fit(args):
    """Run ``sktransfer fit``."""
    _check_output(args.output)
    _check_strategy(args)
    if args.folder is None:
        return _fit_zero_shot_alone(args, _text_strategy(args))
    _check_test_size(args.test_size)
    _check_label_options(args)
    if args.regression:
        _check_regression_input(args)
    import numpy as np
    from sklearn.base import clone
    from sklearn.model_selection import train_test_split

    X, labels, _, kind = _read_inputs(args, need_labels=True)
    from . import save

    y, stratify, summary, names = _training_targets(args, labels, kind)
    if args.zero_shot_labels is not None:  # the names are text: so must the labels be
        _check_zero_shot_classes(args, labels)
        y = stratify = np.array([str(label) for label in labels], dtype=object)
    model = _model_for_fit(args, kind)
    print(summary)
    if args.test_size > 0:
        train_x, test_x, train_y, test_y = train_test_split(
            X, y, test_size=args.test_size, stratify=stratify, random_state=0
        )
        score = _held_out_score(clone(model).fit(train_x, train_y), test_x, test_y)
        print(f"held-out {score} ({len(test_x)} {kind})")
    model.fit(X, y)
    if names is not None:  # the file keeps them: predict writes names, not column numbers
        model.label_names_ = np.asarray(names, dtype=object)
    with _writing(args.output):
        save(model, args.output)
    print(f"model trained on all {len(X)} {kind} saved to {args.output}")


def _check_model_file(path):
    if os.path.isdir(path):
        raise IsADirectoryError(
            f"Model {path} is a folder: give the model file written by 'sktransfer fit'"
        )
    if not os.path.exists(path):
        raise FileNotFoundError(f"Model file not found: {path}")
    if not os.path.isfile(path):  # a pipe or a device: reading it could wait forever
        raise OSError(f"Model {path} is not a regular file")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise OSError(exc.errno, f"Cannot read model file {path}: {exc.strerror or exc}") from None


def _collect_images(inputs):
    from ._modalities import IMG_EXTENSIONS, find_image_files

    files = []
    for item in inputs:
        if os.path.isdir(item):
            found = find_image_files(item)
            if not found:
                raise ValueError(
                    f"No images found in {item} (searched with its sub-folders for "
                    f"{', '.join(IMG_EXTENSIONS)})"
                )
            files += found
        elif os.path.isfile(item):
            files.append(item)
        else:
            raise FileNotFoundError(f"No such image file or folder: {item}")
    return files


def _set_batch_size(model, batch_size):
    """Set the batch size of the model, or of each step of a pipeline that has one."""
    names = [k for k in model.get_params() if k == "batch_size" or k.endswith("__batch_size")]
    model.set_params(**dict.fromkeys(names, batch_size))


def _modality(model):
    """Return the modality of a fitted model's backbone (``"image"``, ``"text"``), or None."""
    for step in [step for _, step in model.steps] if hasattr(model, "steps") else [model]:
        step = getattr(step, "embedder_", step)  # the few-shot and zero-shot classifiers
        backbone = getattr(step, "backbone_", None)
        if backbone is not None:
            return backbone.preprocessing.modality
    return None


def _predict_inputs(args, model):
    """Read what ``model`` takes from the inputs: ``(X, id column name, ids)``."""
    table = len(args.inputs) == 1 and _is_table(args.inputs[0])
    kind = KINDS.get(_modality(model), "texts" if table else "images")
    if kind == "texts":
        if not table:
            raise ValueError(
                f"{args.model} is a text model: give one {'/'.join(TABLE_FORMATS)} table whose "
                f"--text-column ({args.text_column!r}) holds the texts, not "
                f"{' '.join(args.inputs)}"
            )
        note = " (a model file does not record the column it was trained on)"
        texts, _ = _read_table(args.inputs[0], args, need_labels=False, note=note)
        return texts, "row", list(range(len(texts)))
    if table:
        raise ValueError(
            f"{args.model} is an image model: give image files or folders, not the table "
            f"{args.inputs[0]}"
        )
    files = _collect_images(args.inputs)
    return files, "path", files


def _final_step(model):
    """Return the estimator that predicts: the model, or a pipeline's last step."""
    return model.steps[-1][1] if hasattr(model, "steps") else model


def _label_names(model, X):
    """Return a multi-label model's label names, or None for any other model.

    A model trained by ``fit`` carries its names (``label_names_``); one saved from Python
    without them is known by its 2-D predictions (on one input) and named by its columns.
    """
    import numpy as np
    from sklearn.base import is_classifier

    last = _final_step(model)
    names = getattr(last, "label_names_", None)
    if names is not None:
        return [str(name) for name in names]
    if is_classifier(model) and "threshold" in last.get_params() and len(X):
        if np.ndim(model.predict(X[:1])) == 2:
            return [str(label) for label in model.classes_]
    return None


def _multi_label_predictions(args, model, X, names):
    """Return a multi-label model's predictions: the labels joined, 0/1 and probabilities.

    ``prediction`` joins the predicted labels with ``--label-sep``; ``label_<name>`` is
    1 where a label is predicted (its probability reaches the model's threshold), and
    ``proba_<name>`` is that probability.
    """
    import pandas as pd

    sep = DEFAULT_LABEL_SEP if args.label_sep is None else args.label_sep
    if not sep:
        raise ValueError(
            "--label-sep is empty: give the text that joins the predicted labels, such as ';'"
        )
    clash = next((name for name in names if sep in name), None)
    if clash is not None:
        raise ValueError(
            f"--label-sep {sep!r} is in the label {clash!r} of {args.model}, so the joined "
            "labels would not split back: pass another --label-sep"
        )
    proba = model.predict_proba(X)
    predicted = proba >= _final_step(model).threshold
    table = pd.DataFrame(
        {
            "prediction": [
                sep.join(name for name, on in zip(names, row, strict=True) if on)
                for row in predicted
            ]
        }
    )
    for j, name in enumerate(names):
        table[f"label_{name}"] = predicted[:, j].astype(int)
    for j, name in enumerate(names):
        table[f"proba_{name}"] = proba[:, j]
    return table


def _predictions(args, model, X):
    """Return a table of predictions: a class and its probabilities, or a regressor's numbers.

    A regressor with several targets writes ``prediction_0``, ``prediction_1``, ...; a
    multi-label model its labels (:func:`_multi_label_predictions`).
    """
    import numpy as np
    import pandas as pd
    from sklearn.base import is_regressor

    names = None if is_regressor(model) else _label_names(model, X)
    if args.label_sep is not None and names is None:
        raise ValueError(
            f"--label-sep joins the labels of a multi-label model, and {args.model} predicts "
            "one " + ("number" if is_regressor(model) else "class") + " per input: drop "
            "--label-sep"
        )
    if names is not None:
        return _multi_label_predictions(args, model, X, names)
    if is_regressor(model):
        y = np.asarray(model.predict(X), dtype=float)
        if y.ndim == 1 or y.shape[1] == 1:
            return pd.DataFrame({"prediction": y.reshape(len(y))})
        return pd.DataFrame(y, columns=[f"prediction_{i}" for i in range(y.shape[1])])
    if hasattr(model, "predict_proba"):
        proba = model.predict_proba(X)
        table = pd.DataFrame(proba, columns=[f"proba_{c}" for c in model.classes_])
        table.insert(0, "prediction", model.classes_[proba.argmax(axis=1)])
        return table
    print(
        f"sktransfer predict: note: {type(_final_step(model)).__name__} gives no class "
        "probabilities; writing the predictions only",
        file=sys.stderr,
    )
    return pd.DataFrame({"prediction": model.predict(X)})


def cmd_predict(args):
    """Run ``sktransfer predict``."""
    _check_model_file(args.model)
    if args.output:
        _check_output(args.output, PREDICTION_FORMATS)
    from . import load

    try:
        model = load(args.model, allow_sources=args.allow_source)
    except SourceNotAllowedError as exc:  # the library names its argument: the flag instead
        raise ValueError(
            f"{exc.path} names the backbone {exc.source!r}, a model folder or hub repository, "
            "which a model file may name only where you allow it (by itself only the bundled "
            "models and torchvision's or timm's model names). If you trust this file and that "
            f"source: add --allow-source {shlex.quote(exc.source)} (or --allow-source any)"
        ) from None
    if not hasattr(model, "predict"):
        raise ValueError(
            f"{args.model} holds a feature extractor ({type(model).__name__}), which gives "
            "features, not classes: use 'sktransfer extract' for features, and a model "
            "written by 'sktransfer fit' to predict"
        )
    files, id_name, ids = _predict_inputs(args, model)
    _set_batch_size(model, args.batch_size)
    table = _predictions(args, model, files)
    table.insert(0, id_name, ids)
    if args.output:
        _write_table(table, args.output)
        print(f"{len(table)} predictions -> {args.output}")
    else:
        print(table.to_string(index=False))


def _message(exc):
    """One line for the terminal: the message, without '[Errno n]' or line breaks."""
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    elif isinstance(exc, OSError):
        text = str(exc) or type(exc).__name__
    else:  # the estimators' words for their parameters: the options' names instead
        text = _CHECKED_PARAMETER.sub(
            lambda m: f"{FLAGS[m[1]]} must be" if m[1] in FLAGS else m[0], str(exc)
        )
        text = _PARAMETER.sub(lambda m: FLAGS[m[1]], text) or type(exc).__name__
    return " ".join(text.split())


def main(argv=None):
    """Entry point of the ``sktransfer`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.label_columns = args.label_columns or ["label"]
    args.label_column = args.label_columns[0]
    commands = {"extract": cmd_extract, "fit": cmd_fit, "predict": cmd_predict}
    debug = get_config()["debug"]
    prefix = f"sktransfer {args.command}"
    try:
        commands[args.command](args)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prefix}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError) as exc:  # OSError: files, permissions, weights
        if debug:
            raise
        print(f"{prefix}: error: {_message(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:
        if debug:
            raise
        print(
            f"{prefix}: unexpected error: {type(exc).__name__}: {_message(exc)} "
            "(SKTRANSFER_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
