"""The ``sktransfer`` command line: features, training and predictions for images or texts.

``sktransfer extract DIR -o features.parquet``
    Features of every image, with file path and label columns.
``sktransfer fit DIR -o model.skt [--fine-tune] [--n-frozen K] [--epochs N] [--backbone NAME]``
    Train a classifier, print its held-out accuracy, save it in the safe format.
``sktransfer predict model.skt DIR_OR_FILES [-o predictions.csv]``
    Predicted class and class probabilities of each image.

Texts come in a ``.csv`` or ``.parquet`` table instead of a folder: ``--text-column`` names
the column of texts (default ``text``) and ``--label-column`` the labels (default
``label``); the default backbone is then the bundled ``all-MiniLM-L6-v2``.

Exit status: 0 on success; 2 for a problem with the input or the output (a missing folder,
one class only, a corrupt image, a folder that cannot be written, weights not cached), reported
in one line that names it, without a traceback; 130 when interrupted (Ctrl-C); 1 for an
unexpected error, also in one line (``SKTRANSFER_DEBUG=1`` shows its traceback instead). Every
file is written whole or not at all.
"""

import argparse
import contextlib
import os
import sys
import tempfile
from pathlib import Path

from ._config import get_config

EPILOG = "Weights are looked up offline first; set SKTRANSFER_OFFLINE=1 to never download."
FEATURE_FORMATS = (".parquet", ".csv", ".npz")
TABLE_FORMATS = (".csv", ".parquet")
DEFAULT_BACKBONES = {"images": "efficientnet_lite0", "texts": "all-MiniLM-L6-v2"}
PREDICTION_FORMATS = (".csv", ".parquet")


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
        "--batch-size", type=int, default=32, help="inputs per batch (default: %(default)s)"
    )
    _add_table_options(parser)
    parser.add_argument(
        "--device", default="auto", help="'auto' (GPU if present), 'cpu' or 'cuda'"
    )


def _add_table_options(parser):
    parser.add_argument(
        "--text-column",
        default="text",
        help="texts: the column of a .csv/.parquet input holding them (default: %(default)s)",
    )
    parser.add_argument(
        "--label-column",
        default="label",
        help="texts: the column holding the labels (default: %(default)s)",
    )


def build_parser():
    """Build the argument parser (exposed for the docs and the tests)."""
    parser = argparse.ArgumentParser(
        prog="sktransfer",
        description="Transfer learning for a folder of images, one sub-folder per class.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
        help="image folder, one sub-folder per class, or a .csv/.parquet table of texts",
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

    fit = sub.add_parser(
        "fit",
        help="train a classifier on an image folder and save it",
        description="Train a classifier on DIR (one sub-folder per class), print its "
        "accuracy on a held-out part, then refit on all images and save the model in the "
        "safe format (weights as safetensors, no pickle). By default only a new head is "
        "trained on frozen pretrained features; --fine-tune also trains the top layers.",
        epilog=EPILOG,
    )
    fit.add_argument(
        "folder",
        metavar="DIR_OR_TABLE",
        help="image folder, one sub-folder per class, or a .csv/.parquet table of texts",
    )
    fit.add_argument("-o", "--output", required=True, help="model file to write, e.g. model.skt")
    fit.add_argument(
        "--fine-tune",
        action="store_true",
        help="also train the top layer groups of the backbone (see --n-frozen)",
    )
    fit.add_argument(
        "--n-frozen",
        default=None,
        help="layer groups kept frozen, counted from the input; negative counts from the top, "
        "'all' trains the head only (default: 'all', or -2 with --fine-tune)",
    )
    fit.add_argument("--epochs", type=int, default=10, help="training epochs (default: 10)")
    fit.add_argument("--lr", type=float, default=1e-3, help="head learning rate (default: 1e-3)")
    fit.add_argument(
        "--augment",
        action="store_true",
        help="random resized crops and flips while training (slower: no feature cache)",
    )
    fit.add_argument(
        "--test-size",
        type=float,
        default=0.2,
        help="fraction held out to report accuracy (default: 0.2; 0 skips it)",
    )
    fit.add_argument("--random-state", type=int, default=0, help="seed (default: 0)")
    _add_backbone_options(fit)

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
        help="image files, or folders searched recursively for images, or one .csv/.parquet "
        "table of texts",
    )
    predict.add_argument(
        "-o",
        "--output",
        default=None,
        help="write a .csv or .parquet file, by its extension (default: print to the terminal)",
    )
    predict.add_argument("--batch-size", type=int, default=32, help="inputs per batch")
    _add_table_options(predict)
    return parser


def _version():
    from . import __version__

    return f"sktransfer {__version__}"


def _backbone_params(args, kind):
    """Return the estimator parameters that the backbone options set, for ``kind`` inputs."""
    return {
        "backbone": args.backbone or DEFAULT_BACKBONES[kind],
        "weights": args.weights,
        "image_size": args.image_size,
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "device": args.device,
    }


def _n_frozen(value, fine_tune):
    if value is None:
        return -2 if fine_tune else "all"
    if value == "all":
        return value
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"--n-frozen must be 'all' or an integer; got {value!r}") from None


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
    return Path(path).suffix.lower() in TABLE_FORMATS and os.path.isfile(path)


def _read_texts(path, text_column, label_column, need_labels):
    """Texts (and labels) from a .csv/.parquet table: ``(texts, labels or None)``."""
    import pandas as pd

    try:
        table = pd.read_parquet(path) if path.lower().endswith(".parquet") else pd.read_csv(path)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise ValueError(f"Cannot read the table {path}: {exc}") from None
    columns = list(map(str, table.columns))
    for column, needed in ((text_column, True), (label_column, need_labels)):
        if needed and column not in columns:
            raise ValueError(
                f"{path} has no column {column!r} (its columns: {', '.join(columns)}); "
                "name the right one with --text-column / --label-column"
            )
    labels = table[label_column].to_numpy() if label_column in columns else None
    return table[text_column].to_numpy(dtype=object), labels


def _read_inputs(args, need_labels):
    """Images of a folder, or texts of a table: ``(X, labels, ids, kind)``."""
    if _is_table(args.folder):
        import numpy as np

        texts, labels = _read_texts(args.folder, args.text_column, args.label_column, need_labels)
        ids = np.arange(len(texts))
        return texts, labels, ids, "texts"
    from . import load_image_folder  # torch: after the checks

    paths, labels = load_image_folder(args.folder)
    return paths, labels, paths, "images"


def cmd_extract(args):
    """Run ``sktransfer extract``."""
    if args.scheduler is not None:
        return _extract_on_cluster(args)
    _check_output(args.output, FEATURE_FORMATS)
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
        batch_size=args.batch_size,
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
    print(
        f"{summary.n_images} images x {summary.n_features} features -> {args.output} "
        f"({summary.n_partitions} Parquet partitions, {summary.n_skipped} already there)"
    )


def cmd_fit(args):
    """Run ``sktransfer fit``."""
    _check_output(args.output)
    import numpy as np
    from sklearn.base import clone
    from sklearn.model_selection import train_test_split

    paths, labels, _, kind = _read_inputs(args, need_labels=True)
    from . import FineTunedClassifier, save

    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        where = "sub-folders of images" if kind == "images" else "labels"
        raise ValueError(
            f"{args.folder} has one class ({classes[0]!r}); a classifier needs at least two "
            f"{where}."
        )
    model = FineTunedClassifier(
        **_backbone_params(args, kind),
        n_frozen=_n_frozen(args.n_frozen, args.fine_tune),
        max_epochs=args.epochs,
        lr=args.lr,
        augment="default" if args.augment else None,
        random_state=args.random_state,
        verbose=0,
    )
    print(
        f"{len(paths)} {kind}, {len(classes)} classes: "
        + ", ".join(f"{c} ({n})" for c, n in zip(classes, counts, strict=True))
    )
    if args.test_size > 0:
        if counts.min() < 2:
            raise ValueError(
                f"Class {classes[counts.argmin()]!r} has a single example: too few to hold some "
                "out; add images or pass --test-size 0."
            )
        train_x, test_x, train_y, test_y = train_test_split(
            paths, labels, test_size=args.test_size, stratify=labels, random_state=0
        )
        held_out = clone(model).fit(train_x, train_y)
        accuracy = held_out.score(test_x, test_y)
        print(f"held-out accuracy: {accuracy:.3f} ({len(test_x)} {kind})")
    model.fit(paths, labels)
    with _writing(args.output):
        save(model, args.output)
    print(f"model trained on all {len(paths)} {kind} saved to {args.output}")


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


def cmd_predict(args):
    """Run ``sktransfer predict``."""
    _check_model_file(args.model)
    if args.output:
        _check_output(args.output, PREDICTION_FORMATS)
    if len(args.inputs) == 1 and _is_table(args.inputs[0]):
        files, _ = _read_texts(args.inputs[0], args.text_column, args.label_column, False)
        id_name, ids = "row", list(range(len(files)))
    else:
        files = _collect_images(args.inputs)
        id_name, ids = "path", files
    import pandas as pd

    from . import load

    model = load(args.model)
    if not hasattr(model, "predict"):
        raise ValueError(
            f"{args.model} holds a feature extractor ({type(model).__name__}), which gives "
            "features, not classes: use 'sktransfer extract' for features, and a model "
            "written by 'sktransfer fit' to predict"
        )
    _set_batch_size(model, args.batch_size)
    if hasattr(model, "predict_proba"):
        proba = model.predict_proba(files)
        table = pd.DataFrame(proba, columns=[f"proba_{c}" for c in model.classes_])
        table.insert(0, "prediction", model.classes_[proba.argmax(axis=1)])
    else:
        last = model.steps[-1][1] if hasattr(model, "steps") else model
        print(
            f"sktransfer predict: note: {type(last).__name__} gives no class probabilities; "
            "writing the predictions only",
            file=sys.stderr,
        )
        table = pd.DataFrame({"prediction": model.predict(files)})
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
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def main(argv=None):
    """Entry point of the ``sktransfer`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
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
