"""The ``sktransfer`` command line: features, training and predictions for image folders.

``sktransfer extract DIR -o features.parquet``
    Features of every image, with file path and label columns.
``sktransfer fit DIR -o model.skt [--fine-tune] [--n-frozen K] [--epochs N] [--backbone NAME]``
    Train a classifier, print its held-out accuracy, save it in the safe format.
``sktransfer predict model.skt DIR_OR_FILES [-o predictions.csv]``
    Predicted class and class probabilities of each image.

User mistakes (a missing folder, one class only, a corrupt image) print one line and exit
with status 2, without a traceback.
"""

import argparse
import os
import sys
from pathlib import Path

EPILOG = "Weights are looked up offline first; set SKTRANSFER_OFFLINE=1 to never download."


def _add_backbone_options(parser):
    parser.add_argument(
        "--backbone",
        default="efficientnet_lite0",
        help="network: 'efficientnet_lite0' (bundled, offline), a torchvision name such as "
        "'resnet18', or 'timm:<name>' (default: %(default)s)",
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
        "--batch-size", type=int, default=32, help="images per batch (default: %(default)s)"
    )
    parser.add_argument(
        "--device", default="auto", help="'auto' (GPU if present), 'cpu' or 'cuda'"
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
    extract.add_argument("folder", metavar="DIR", help="image folder, one sub-folder per class")
    extract.add_argument(
        "-o",
        "--output",
        required=True,
        help="output file: .parquet, .csv or .npz (by its extension)",
    )
    extract.add_argument(
        "--layer", default=None, help="an intermediate layer, e.g. 'blocks3' (default: final)"
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
    fit.add_argument("folder", metavar="DIR", help="image folder, one sub-folder per class")
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
        help="image files, or folders searched recursively for images",
    )
    predict.add_argument(
        "-o", "--output", default=None, help="write a .csv (default: print to the terminal)"
    )
    predict.add_argument("--batch-size", type=int, default=32, help="images per batch")
    return parser


def _version():
    from . import __version__

    return f"sktransfer {__version__}"


def _n_frozen(value, fine_tune):
    if value is None:
        return -2 if fine_tune else "all"
    if value == "all":
        return value
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"--n-frozen must be 'all' or an integer; got {value!r}") from None


def _features_table(paths, labels, features):
    import pandas as pd

    table = pd.DataFrame(features, columns=[f"f{i}" for i in range(features.shape[1])])
    table.insert(0, "label", labels)
    table.insert(0, "path", paths)
    return table


def _write_table(table, output):
    """Write by extension, to a temporary name first: a failure leaves no partial file."""
    suffix = Path(output).suffix.lower()
    if suffix not in (".parquet", ".csv", ".npz"):
        raise ValueError(f"Unknown output type {suffix!r}: use .parquet, .csv or .npz")
    tmp = f"{output}.partial{suffix}"
    try:
        if suffix == ".parquet":
            table.to_parquet(tmp, index=False)
        elif suffix == ".csv":
            table.to_csv(tmp, index=False)
        else:
            import numpy as np

            features = table.drop(columns=["path", "label"]).to_numpy()
            np.savez_compressed(tmp, path=table["path"], label=table["label"], X=features)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _check_output(output, suffixes=None):
    """Fail before any work on an output that cannot be written."""
    suffix = Path(output).suffix.lower()
    if suffixes and suffix not in suffixes:
        raise ValueError(f"Unknown output type {suffix!r}: use {', '.join(suffixes)}")
    folder = Path(output).resolve().parent
    if not folder.is_dir():
        raise FileNotFoundError(f"Output folder does not exist: {folder}")


def cmd_extract(args):
    """Run ``sktransfer extract``."""
    from . import PretrainedFeatureExtractor, load_image_folder

    _check_output(args.output, (".parquet", ".csv", ".npz"))
    paths, labels = load_image_folder(args.folder)
    extractor = PretrainedFeatureExtractor(
        args.backbone,
        weights=args.weights,
        layer=args.layer,
        image_size=args.image_size,
        batch_size=args.batch_size,
        device=args.device,
        progress=True,
    )
    features = extractor.fit_transform(paths)
    table = _features_table(paths, labels, features)
    _write_table(table, args.output)
    print(f"{len(table)} images x {features.shape[1]} features -> {args.output}")


def cmd_fit(args):
    """Run ``sktransfer fit``."""
    import numpy as np
    from sklearn.base import clone
    from sklearn.model_selection import train_test_split

    from . import FineTunedClassifier, load_image_folder, save

    _check_output(args.output)
    paths, labels = load_image_folder(args.folder)
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        raise ValueError(
            f"{args.folder} has one class ({classes[0]!r}); a classifier needs at least two "
            "sub-folders of images."
        )
    model = FineTunedClassifier(
        args.backbone,
        weights=args.weights,
        n_frozen=_n_frozen(args.n_frozen, args.fine_tune),
        max_epochs=args.epochs,
        lr=args.lr,
        augment="default" if args.augment else None,
        image_size=args.image_size,
        batch_size=args.batch_size,
        device=args.device,
        random_state=args.random_state,
        verbose=0,
    )
    print(
        f"{len(paths)} images, {len(classes)} classes: "
        + ", ".join(f"{c} ({n})" for c, n in zip(classes, counts, strict=True))
    )
    if args.test_size > 0:
        if counts.min() < 2:
            raise ValueError(
                f"Class {classes[counts.argmin()]!r} has a single image: too few to hold some "
                "out; add images or pass --test-size 0."
            )
        train_x, test_x, train_y, test_y = train_test_split(
            paths, labels, test_size=args.test_size, stratify=labels, random_state=0
        )
        held_out = clone(model).fit(train_x, train_y)
        accuracy = held_out.score(test_x, test_y)
        print(f"held-out accuracy: {accuracy:.3f} ({len(test_x)} images)")
    model.fit(paths, labels)
    save(model, args.output)
    print(f"model trained on all {len(paths)} images saved to {args.output}")


def _collect_images(inputs):
    from ._images import IMG_EXTENSIONS

    files = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS
            )
            if not found:
                raise ValueError(f"No images found in {path}")
            files += [str(p) for p in found]
        elif path.is_file():
            files.append(str(path))
        else:
            raise FileNotFoundError(f"No such file or folder: {path}")
    return files


def cmd_predict(args):
    """Run ``sktransfer predict``."""
    import pandas as pd

    from . import load

    files = _collect_images(args.inputs)
    if args.output:
        _check_output(args.output)
    model = load(args.model)
    if hasattr(model, "set_params") and "batch_size" in model.get_params():
        model.set_params(batch_size=args.batch_size)
    proba = model.predict_proba(files)
    table = pd.DataFrame(proba, columns=[f"proba_{c}" for c in model.classes_])
    table.insert(0, "prediction", model.classes_[proba.argmax(axis=1)])
    table.insert(0, "path", files)
    if args.output:
        tmp = f"{args.output}.partial"
        table.to_csv(tmp, index=False)
        os.replace(tmp, args.output)
        print(f"{len(table)} predictions -> {args.output}")
    else:
        print(table.to_string(index=False))


def main(argv=None):
    """Entry point of the ``sktransfer`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    commands = {"extract": cmd_extract, "fit": cmd_fit, "predict": cmd_predict}
    from .exceptions import WeightsUnavailableError

    try:
        commands[args.command](args)
    except (ValueError, TypeError, FileNotFoundError, WeightsUnavailableError) as exc:
        if os.environ.get("SKTRANSFER_DEBUG"):
            raise
        print(f"sktransfer {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
