"""The ``sktransfer`` command line: outputs that read back, and one line for every failure.

The commands run in-process through ``sktransfer.cli.main`` (its return value is the exit
status); one test runs the installed console script in a subprocess, as a user does.
"""

import errno
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sktransfer
from sktransfer.cli import main

SCRIPT = shutil.which("sktransfer", path=str(Path(sys.executable).parent)) or shutil.which(
    "sktransfer"
)
ROOT = os.name == "posix" and os.geteuid() == 0  # permission bits do not stop root


def cli(capsys, *args):
    """Run the command line in-process: (exit status, stdout, stderr)."""
    try:
        status = main([str(a) for a in args])
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped the command line")
    out, err = capsys.readouterr()
    return status, out, err


def error_line(err, command):
    """The one line the command printed about its failure (besides any progress bar)."""
    assert "Traceback" not in err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    reports = [line for line in lines if line.startswith(f"sktransfer {command}: ")]
    assert len(reports) == 1, err
    assert all(line.startswith("features") for line in lines if line not in reports), err
    return reports[0]


@pytest.fixture
def out(tmp_path):
    """An empty output folder: after a failure it must still be empty."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def saved_models(image_folder, tmp_path_factory):
    """A classifier, a pipeline ending in LinearSVC and a bare extractor, saved as files."""
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    paths, labels = sktransfer.load_image_folder(image_folder)
    folder = tmp_path_factory.mktemp("models")
    models = {
        "classifier": sktransfer.FineTunedClassifier(image_size=32, max_epochs=2),
        "svc": make_pipeline(
            sktransfer.PretrainedFeatureExtractor(image_size=32), LinearSVC(random_state=0)
        ),
        "extractor": sktransfer.PretrainedFeatureExtractor(image_size=32),
    }
    files = {}
    for name, model in models.items():
        files[name] = folder / f"{name}.skt"
        sktransfer.save(model.fit(paths, labels), files[name])
    return files


def test_console_script_is_installed_and_exits_with_the_status(tmp_path):
    assert SCRIPT is not None, "the sktransfer console script is not on PATH"
    env = {**os.environ, "SKTRANSFER_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}

    def run(*args):
        return subprocess.run([SCRIPT, *map(str, args)], capture_output=True, text=True, env=env)

    result = run("--help")
    assert result.returncode == 0
    assert "extract" in result.stdout and "predict" in result.stdout
    result = run("predict", tmp_path / "missing.skt", tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"sktransfer predict: error: Model file not found: {tmp_path / 'missing.skt'}"
    )


def test_extract_writes_features_with_path_and_label(capsys, image_folder, out):
    status, stdout, err = cli(
        capsys, "extract", image_folder, "-o", out / "f.parquet", "--image-size", 64
    )
    assert status == 0, err
    table = pd.read_parquet(out / "f.parquet")
    assert table.shape == (24, 2 + 1280)
    assert list(table.columns[:3]) == ["path", "label", "f0"]
    assert set(table["label"]) == {"china", "flower"}
    assert "features" in err  # the progress bar
    assert f"24 images x 1280 features -> {out / 'f.parquet'}" in stdout
    assert os.listdir(out) == ["f.parquet"]  # no temporary file left next to it


def test_extract_csv_and_npz_read_back_without_pickle(capsys, image_folder, out):
    for name in ("f.csv", "f.npz"):
        status, _, err = cli(capsys, "extract", image_folder, "-o", out / name, "--image-size", 32)
        assert status == 0, err
    table = pd.read_csv(out / "f.csv")
    assert table.shape == (24, 1282)
    with np.load(out / "f.npz") as arrays:  # allow_pickle=False, numpy's default
        assert arrays["X"].shape == (24, 1280)
        assert arrays["path"].dtype.kind == arrays["label"].dtype.kind == "U"
        assert arrays["path"].tolist() == table["path"].tolist()
        assert arrays["label"].tolist() == table["label"].tolist()
        np.testing.assert_allclose(arrays["X"], table.iloc[:, 2:].to_numpy(), rtol=1e-5)


# Each mistake: the arguments ({folder}: the images, {out}: an empty folder, {file}: a
# plain file, {model}: a saved classifier), and what the one line must say.
MISTAKES = [
    (("extract", "no/such/folder", "-o", "{out}/f.parquet"), "Image folder not found"),
    (
        ("extract", "{folder}", "-o", "{out}/f.xlsx"),
        "Unknown output type '.xlsx' for {out}/f.xlsx",
    ),
    (("extract", "{folder}", "-o", "{out}/f.csv", "--backbone", "resnet1"), "Unknown backbone"),
    (("extract", "{folder}", "-o", "{out}/no/f.csv"), "Output folder does not exist: {out}/no"),
    (("extract", "{folder}", "-o", "{out}/f.csv", "--layer", "nope"), "Unknown layer 'nope'"),
    (("extract", "{folder}", "-o", "{out}"), "Output {out} is a folder"),
    (("extract", "{folder}", "-o", "{file}/f.csv"), "Cannot write {file}/f.csv: {file} is not"),
    (("fit", "{folder}", "-o", "{out}"), "Output {out} is a folder"),
    (("predict", "{out}", "{folder}"), "Model {out} is a folder"),
    (("predict", "{out}/missing.skt", "{folder}"), "Model file not found: {out}/missing.skt"),
    (
        ("predict", "{model}", "{folder}", "-o", "{out}/p.txt"),
        "output type '.txt' for {out}/p.txt",
    ),
    (("predict", "{model}", "{folder}", "-o", "{out}"), "Output {out} is a folder"),
    (("predict", "{model}", "{out}/nothing.jpg"), "No such image file or folder: {out}/nothing"),
    (("predict", "{model}", "{out}"), "No images found in {out}"),
    # Weights not cached, offline (conftest): named at once, as timm would fetch them.
    (("extract", "{folder}", "-o", "{out}/f.csv", "--backbone", "timm:resnet18"), "a1_in1k"),
]


@pytest.mark.parametrize("args, message", MISTAKES)
def test_mistakes_give_one_line_exit_2_and_write_nothing(
    capsys, image_folder, saved_models, out, tmp_path, args, message
):
    (tmp_path / "file").write_text("a file, not a folder")
    values = {"folder": image_folder, "out": out, "file": tmp_path / "file"}
    values["model"] = saved_models["classifier"]
    status, _, err = cli(capsys, *(a.format(**values) for a in args))
    assert status == 2
    assert message.format(**values) in error_line(err, args[0])
    assert not os.listdir(out)


def test_read_only_output_folder_fails_before_any_work(capsys, image_folder, out, monkeypatch):
    def read_only(*args, **kwargs):  # what a read-only mount answers, even to root
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    status, _, err = cli(capsys, "extract", image_folder, "-o", out / "f.csv")
    assert status == 2
    assert error_line(err, "extract") == (
        f"sktransfer extract: error: Cannot write {out / 'f.csv'}: Read-only file system"
    )
    assert "features" not in err  # no image was processed


@pytest.mark.skipif(ROOT or os.name != "posix", reason="permission bits do not stop root")
def test_unwritable_output_folder_and_unreadable_model(capsys, image_folder, saved_models, out):
    model = out / "model.skt"
    shutil.copy(saved_models["classifier"], model)
    model.chmod(0)
    out.chmod(0o555)
    try:
        status, _, err = cli(capsys, "extract", image_folder, "-o", out / "f.csv")
        assert status == 2 and "Permission denied" in error_line(err, "extract")
        status, _, err = cli(capsys, "predict", model, image_folder)
        assert status == 2 and "Cannot read model file" in error_line(err, "predict")
    finally:
        out.chmod(0o755)
    assert os.listdir(out) == ["model.skt"]


def _fail_while_writing(monkeypatch, output, exc):
    """Make the writer of ``output``'s format write some bytes, then raise ``exc``."""
    suffix = Path(output).suffix
    if suffix == ".skt":  # the model file is a zip archive: fail after its first entry
        original = zipfile.ZipFile.writestr

        def writestr(archive, *args, **kwargs):
            original(archive, *args, **kwargs)
            raise exc

        monkeypatch.setattr(zipfile.ZipFile, "writestr", writestr)
        return

    def writer(target, *args, **kwargs):
        with open(target, "wb") as f:
            f.write(b"the first bytes")
        raise exc

    if suffix == ".npz":
        monkeypatch.setattr(np, "savez_compressed", writer)
    else:
        method = "to_parquet" if suffix == ".parquet" else "to_csv"
        monkeypatch.setattr(pd.DataFrame, method, lambda self, target, *a, **k: writer(target))


COMMANDS = [
    ("extract", "{folder}", "-o", "{out}/f.csv", "--image-size", "32"),
    ("extract", "{folder}", "-o", "{out}/f.parquet", "--image-size", "32"),
    ("extract", "{folder}", "-o", "{out}/f.npz", "--image-size", "32"),
    ("predict", "{model}", "{folder}", "-o", "{out}/p.csv"),
    ("predict", "{model}", "{folder}", "-o", "{out}/p.parquet"),
    ("fit", "{folder}", "-o", "{out}/m.skt", "--image-size", "32", "--epochs", "1",
     "--test-size", "0"),
]  # fmt: skip


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0] + Path(a[a.index("-o") + 1]).suffix)
def test_disk_full_while_writing_leaves_no_partial_file(
    capsys, image_folder, saved_models, out, monkeypatch, args
):
    args = [a.format(folder=image_folder, out=out, model=saved_models["classifier"]) for a in args]
    output = args[args.index("-o") + 1]
    _fail_while_writing(monkeypatch, output, OSError(errno.ENOSPC, "No space left on device"))
    status, _, err = cli(capsys, *args)
    assert status == 2
    assert error_line(err, args[0]) == (
        f"sktransfer {args[0]}: error: Cannot write {output}: No space left on device"
    )
    assert not os.listdir(out)


@pytest.mark.parametrize(
    "args", COMMANDS[::2], ids=lambda a: a[0] + Path(a[a.index("-o") + 1]).suffix
)
def test_ctrl_c_while_writing_says_interrupted_and_leaves_nothing(
    capsys, image_folder, saved_models, out, monkeypatch, args
):
    args = [a.format(folder=image_folder, out=out, model=saved_models["classifier"]) for a in args]
    _fail_while_writing(monkeypatch, args[args.index("-o") + 1], KeyboardInterrupt())
    status, _, err = cli(capsys, *args)
    assert status == 130
    assert error_line(err, args[0]) == f"sktransfer {args[0]}: interrupted"
    assert not os.listdir(out)


def test_ctrl_c_during_the_work(capsys, image_folder, out, monkeypatch):
    def interrupted(self, X, y=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(sktransfer.PretrainedFeatureExtractor, "fit_transform", interrupted)
    status, _, err = cli(capsys, "extract", image_folder, "-o", out / "f.csv")
    assert status == 130
    assert error_line(err, "extract") == "sktransfer extract: interrupted"
    assert not os.listdir(out)


def test_decompression_bomb_is_named_in_one_line(capsys, image_folder, out, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # the 96x96 photos now exceed it
    status, _, err = cli(capsys, "extract", image_folder, "-o", out / "f.csv")
    assert status == 2
    line = error_line(err, "extract")
    assert str(image_folder / "china") in line and ".jpg" in line
    assert not os.listdir(out)


def test_corrupt_image_is_named(capsys, image_folder, tmp_path, out):
    folder = tmp_path / "photos"
    shutil.copytree(image_folder, folder)
    (folder / "china" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    status, _, err = cli(capsys, "extract", folder, "-o", out / "f.parquet", "--image-size", 32)
    assert status == 2
    assert "broken.jpg" in error_line(err, "extract")
    assert not os.listdir(out)


def test_any_os_error_is_one_line_and_debug_shows_the_traceback(
    capsys, image_folder, out, monkeypatch
):
    def unreadable(folder):
        raise PermissionError(errno.EACCES, "Permission denied", str(folder))

    monkeypatch.setattr(sktransfer, "load_image_folder", unreadable)
    status, _, err = cli(capsys, "extract", image_folder, "-o", out / "f.csv")
    assert status == 2
    assert error_line(err, "extract") == (
        f"sktransfer extract: error: Permission denied: {image_folder}"
    )
    monkeypatch.setenv("SKTRANSFER_DEBUG", "1")
    with pytest.raises(PermissionError):
        main(["extract", str(image_folder), "-o", str(out / "f.csv")])


def test_unexpected_error_is_one_line_with_status_1(capsys, image_folder, out, monkeypatch):
    def broken(self, X, y=None):
        raise RuntimeError("something\nwent wrong")

    monkeypatch.setattr(sktransfer.PretrainedFeatureExtractor, "fit_transform", broken)
    status, _, err = cli(capsys, "extract", image_folder, "-o", out / "f.csv")
    assert status == 1
    line = error_line(err, "extract")
    assert "RuntimeError: something went wrong" in line and "SKTRANSFER_DEBUG=1" in line


def test_fit_then_predict_csv_and_parquet(capsys, image_folder, tmp_path):
    model = tmp_path / "model.skt"
    status, stdout, err = cli(
        capsys, "fit", image_folder, "-o", model, "--image-size", 64, "--epochs", 5
    )
    assert status == 0, err
    accuracy = float(stdout.split("held-out accuracy: ")[1].split()[0])
    assert accuracy >= 0.8
    inputs = [image_folder / "china", image_folder / "flower"]
    for name in ("p.csv", "p.parquet"):
        status, _, err = cli(capsys, "predict", model, *inputs, "-o", tmp_path / name)
        assert status == 0, err
    table = pd.read_csv(tmp_path / "p.csv")
    assert list(table.columns) == ["path", "prediction", "proba_china", "proba_flower"]
    truth = table["path"].str.contains("/china/").map({True: "china", False: "flower"})
    assert (table["prediction"] == truth).mean() >= 0.9
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "p.parquet"), table, rtol=1e-5)


def test_predict_with_a_feature_extractor_says_to_use_extract(
    capsys, image_folder, saved_models, out
):
    status, _, err = cli(capsys, "predict", saved_models["extractor"], image_folder)
    assert status == 2
    line = error_line(err, "predict")
    assert "holds a feature extractor" in line and "sktransfer extract" in line


def test_predict_without_probabilities_writes_predictions_only(
    capsys, image_folder, saved_models, out
):
    status, _, err = cli(capsys, "predict", saved_models["svc"], image_folder, "-o", out / "p.csv")
    assert status == 0, err
    assert "LinearSVC gives no class probabilities" in err
    table = pd.read_csv(out / "p.csv")
    assert list(table.columns) == ["path", "prediction"]
    truth = table["path"].str.contains("/china/").map({True: "china", False: "flower"})
    assert (table["prediction"] == truth).mean() >= 0.9  # its own training images


def test_predict_skips_hidden_files_as_extract_does(capsys, image_folder, saved_models, tmp_path):
    folder = tmp_path / "photos"
    shutil.copytree(image_folder, folder)
    (folder / "china" / "._000.jpg").write_bytes(b"macOS metadata, not an image")
    (folder / ".ipynb_checkpoints").mkdir()
    shutil.copy(folder / "china" / "000.jpg", folder / ".ipynb_checkpoints" / "000.jpg")
    status, stdout, err = cli(capsys, "predict", saved_models["classifier"], folder)
    assert status == 0, err
    assert len(stdout.strip().splitlines()) == 1 + 24  # header and the 24 photos


def test_fine_tune_option(capsys, image_folder, tmp_path):
    status, _, err = cli(
        capsys, "fit", image_folder, "-o", tmp_path / "m.skt", "--fine-tune", "--n-frozen", "-1",
        "--epochs", "1", "--image-size", "32", "--test-size", "0",
    )  # fmt: skip
    assert status == 0, err
    assert sktransfer.load(tmp_path / "m.skt").n_frozen_ == 8


def test_fit_errors(capsys, tmp_path, image_folder):
    one_class = tmp_path / "one"
    shutil.copytree(image_folder / "china", one_class / "china")
    status, _, err = cli(capsys, "fit", one_class, "-o", tmp_path / "m.skt")
    assert status == 2 and "has one class ('china')" in error_line(err, "fit")
    status, _, err = cli(capsys, "fit", image_folder, "-o", tmp_path / "m.skt", "--n-frozen", 12)
    assert status == 2 and "[-9, 9]" in error_line(err, "fit")
    assert not (tmp_path / "m.skt").exists()


def _text_table(path, n=24):
    import pandas as pd

    topics = {
        "sport": ["The team won the match.", "A late goal decided the final.", "Fans sang."],
        "food": ["She baked bread.", "The soup needs salt.", "We cooked pasta tonight."],
    }
    rows = [(topics[k][i % 3] + f" ({i})", k) for i in range(n) for k in topics][:n]
    pd.DataFrame(rows, columns=["sentence", "topic"]).to_csv(path, index=False)
    return path


def test_texts_from_a_table_extract_fit_and_predict(tmp_path, capsys):
    import pandas as pd

    table = _text_table(tmp_path / "texts.csv")
    columns = ["--text-column", "sentence", "--label-column", "topic"]
    features = tmp_path / "features.parquet"
    assert main(["extract", str(table), "-o", str(features), *columns]) == 0
    read = pd.read_parquet(features)
    assert list(read.columns[:3]) == ["row", "label", "f0"] and read.shape == (24, 2 + 384)
    model = tmp_path / "model.skt"
    code = main(["fit", str(table), "-o", str(model), "--epochs", "3", "--lr", "0.01", *columns])
    assert code == 0 and "24 texts, 2 classes" in capsys.readouterr().out
    out = tmp_path / "predictions.csv"
    assert main(["predict", str(model), str(table), "-o", str(out), *columns]) == 0
    predictions = pd.read_csv(out)
    assert list(predictions.columns) == ["row", "prediction", "proba_food", "proba_sport"]
    truth = pd.read_csv(table)["topic"]
    assert (predictions["prediction"] == truth).mean() >= 0.9


def test_a_missing_text_column_names_the_columns(tmp_path, capsys):
    table = _text_table(tmp_path / "texts.csv")
    assert main(["extract", str(table), "-o", str(tmp_path / "f.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "has no column 'text' (its columns: sentence, topic)" in err
    assert not list(tmp_path.glob("f.csv*"))


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    """A text classifier written by 'sktransfer fit' from a table, and that table."""
    folder = tmp_path_factory.mktemp("text")
    table = _text_table(folder / "texts.csv")
    model = folder / "model.skt"
    columns = ["--text-column", "sentence", "--label-column", "topic"]
    args = ["fit", table, "-o", model, "--epochs", "3", "--lr", "0.01", "--test-size", "0"]
    assert main([str(a) for a in [*args, *columns]]) == 0
    return model, table


@pytest.mark.parametrize("command", ["extract", "fit"])
def test_a_text_backbone_refuses_a_folder_of_images(capsys, image_folder, out, command):
    output = out / ("f.csv" if command == "extract" else "m.skt")
    args = (command, image_folder, "-o", output, "--backbone", "all-MiniLM-L6-v2")
    status, _, err = cli(capsys, *args)
    assert status == 2
    line = error_line(err, command)
    assert f"{image_folder} is not a table of texts" in line
    assert "'all-MiniLM-L6-v2' is a text model" in line and "--text-column" in line
    assert not os.listdir(out)


def test_a_text_model_predicts_a_tables_texts_and_refuses_images(
    capsys, text_model, image_folder, out
):
    model, table = text_model
    for inputs in ([image_folder / "china"], [image_folder / "china" / "000.jpg"]):
        status, _, err = cli(capsys, "predict", model, *inputs, "-o", out / "p.csv")
        assert status == 2
        line = error_line(err, "predict")
        assert f"{model} is a text model" in line and "--text-column" in line
        assert str(inputs[0]) in line
    tsv = out / "reviews.tsv"
    pd.read_csv(table).to_csv(tsv, sep="\t", index=False)
    status, _, err = cli(capsys, "predict", model, tsv, "-o", out / "p.csv")
    assert status == 2  # the model does not know the column: it must be named
    line = error_line(err, "predict")
    assert "has no column 'text' (its columns: sentence, topic)" in line
    assert "--text-column" in line and "does not record" in line
    status, _, err = cli(
        capsys, "predict", model, tsv, "--text-column", "sentence", "-o", out / "p.csv"
    )
    assert status == 0, err
    predictions = pd.read_csv(out / "p.csv")
    assert predictions["row"].tolist() == list(range(24))
    assert (predictions["prediction"] == pd.read_csv(table)["topic"]).mean() >= 0.9


def test_an_image_model_refuses_a_table(capsys, saved_models, tmp_path):
    table = _text_table(tmp_path / "texts.csv")
    status, _, err = cli(capsys, "predict", saved_models["classifier"], table)
    assert status == 2
    assert f"{saved_models['classifier']} is an image model" in error_line(err, "predict")


def test_a_header_only_table_is_named(capsys, text_model, tmp_path):
    table = tmp_path / "empty.csv"
    table.write_text("text,label\n")
    for args in (
        ("extract", table, "-o", tmp_path / "f.csv"),
        ("fit", table, "-o", tmp_path / "m.skt"),
        ("predict", text_model[0], table),
    ):
        status, _, err = cli(capsys, *args)
        assert status == 2
        assert f"{table} has no rows, only a header" in error_line(err, args[0])
    assert os.listdir(tmp_path) == ["empty.csv"]


def test_none_na_and_null_are_texts_and_labels_like_any_other(capsys, tmp_path):
    words = ["None", "NA", "null", "nan", "N/A", "NULL"]
    rows = [(w, "NA" if i % 2 else "pos") for i, w in enumerate(words * 2)]
    table = tmp_path / "words.csv"
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(table, index=False)
    status, _, err = cli(capsys, "extract", table, "-o", tmp_path / "f.csv")
    assert status == 0, err
    assert len(pd.read_csv(tmp_path / "f.csv")) == 12
    args = ("fit", table, "-o", tmp_path / "m.skt", "--epochs", "1", "--test-size", "0")
    status, _, err = cli(capsys, *args)
    assert status == 0, err
    assert sktransfer.load(tmp_path / "m.skt").classes_.tolist() == ["NA", "pos"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize("column, flag", [("label", "--label-column"), ("text", "--text-column")])
def test_an_empty_cell_names_its_row_and_flag(capsys, tmp_path, suffix, column, flag):
    table = pd.DataFrame({"text": [f"text {i}" for i in range(6)], "label": ["a", "b"] * 3})
    table.loc[3, column] = None if suffix == ".parquet" else ""
    path = tmp_path / f"t{suffix}"
    table.to_parquet(path) if suffix == ".parquet" else table.to_csv(path, index=False)
    status, _, err = cli(capsys, "fit", path, "-o", tmp_path / "m.skt")
    assert status == 2
    expected = f"Row 3 of {path} (the first row is row 0) has an empty {flag} '{column}' cell"
    assert expected in error_line(err, "fit")
    assert not (tmp_path / "m.skt").exists()


@pytest.mark.parametrize(
    "options, message",
    [
        (("--max-length", "1"), "--max-length must be an int in the range [2, inf)"),
        (("--epochs", "0"), "--epochs must be an int in the range [1, inf)"),
        (("--test-size", "1.5"), "--test-size must be 0 (no held-out part) or in (0, 1); got 1.5"),
        (
            ("--test-size", "0.1"),
            "--test-size 0.1 holds out 1 of 6 texts, fewer than the 2 classes",
        ),
        (("--n-frozen", "50"), "--n-frozen must be 'all' or an integer in [-7, 7]"),
        (("--n-frozen", "some"), "--n-frozen must be 'all', 'auto' or an integer; got 'some'"),
    ],
)
def test_messages_name_the_flags(capsys, tmp_path, options, message):
    table = pd.DataFrame({"text": [f"text {i}" for i in range(6)], "label": ["a", "b"] * 3})
    table.to_csv(tmp_path / "t.csv", index=False)
    status, _, err = cli(capsys, "fit", tmp_path / "t.csv", "-o", tmp_path / "m.skt", *options)
    assert status == 2
    line = error_line(err, "fit")
    assert message in line
    assert not any(name in line for name in ("max_length", "max_epochs", "test_size", "n_frozen"))


def test_labels_are_shown_as_values_not_numpy_reprs(capsys, tmp_path):
    table = tmp_path / "t.parquet"
    pd.DataFrame({"text": ["a b", "c d", "e f"], "label": [0.0, 0.0, 0.0]}).to_parquet(table)
    status, _, err = cli(capsys, "fit", table, "-o", tmp_path / "m.skt")
    assert status == 2
    line = error_line(err, "fit")
    assert "has one class (0.0)" in line and "np." not in line


# --- a model whose backbone is a model folder: read only where --allow-source allows it
@pytest.fixture(scope="module")
def folder_model(tmp_path_factory):
    """A text classifier on an ``hf:`` copy of the bundled text model, saved; and its table."""
    from sktransfer.backbones._text_models import model_folder

    root = tmp_path_factory.mktemp("folder_model")
    folder = root / "encoder"
    source = model_folder("all-MiniLM-L6-v2")
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("model.safetensors"))
    (folder / "model.safetensors").symlink_to(source / "model.safetensors")
    table = _text_table(root / "texts.csv")
    texts = pd.read_csv(table)
    spec = f"hf:{folder}"
    model = sktransfer.FineTunedClassifier(spec, max_epochs=3, lr=0.01, random_state=0)
    model.fit(texts["sentence"].tolist(), texts["topic"].tolist())
    sktransfer.save(model, root / "model.skt")
    return root / "model.skt", table, spec


def test_predict_reads_a_model_folder_only_where_allow_source_allows_it(capsys, folder_model, out):
    from sktransfer.exceptions import SourceNotAllowedError

    model, table, spec = folder_model
    with pytest.raises(SourceNotAllowedError) as info:  # the library's words are kept
        sktransfer.load(model)
    assert isinstance(info.value, ValueError)
    assert info.value.source == spec and info.value.path == str(model)
    assert f"allow_sources=[{spec!r}]" in str(info.value)

    args = ("predict", model, table, "--text-column", "sentence", "-o", out / "p.csv")
    status, _, err = cli(capsys, *args)
    assert status == 2
    line = error_line(err, "predict")
    assert f"{model} names the backbone {spec!r}" in line
    assert f"--allow-source {spec}" in line and "allow_sources" not in line
    assert not os.listdir(out)
    status, _, err = cli(capsys, *args, "--allow-source", "hf:someone/other")
    assert status == 2 and f"--allow-source {spec}" in error_line(err, "predict")
    for allowed in ([spec], ["hf:someone/other", spec], ["any"]):
        flags = [a for s in allowed for a in ("--allow-source", s)]
        status, _, err = cli(capsys, *args, *flags)
        assert status == 0, err
        predictions = pd.read_csv(out / "p.csv")
        assert (predictions["prediction"] == pd.read_csv(table)["topic"]).mean() >= 0.9


# --- regression: numbers in the label column
def _number_table(path, n=24):
    """Texts whose target grows with the number of times they say 'good'."""
    rows = [(" ".join(["good"] * (i % 4) + ["film", f"({i})"]), float(i % 4)) for i in range(n)]
    pd.DataFrame(rows, columns=["review", "stars"]).to_csv(path, index=False)
    return path


def test_fit_regression_reports_r2_and_predict_writes_floats(capsys, tmp_path):
    table = _number_table(tmp_path / "reviews.csv")
    columns = ["--text-column", "review", "--label-column", "stars"]
    model = tmp_path / "model.skt"
    args = ("fit", table, "-o", model, "--regression", "--epochs", "20", "--lr", "0.01")
    status, out, err = cli(capsys, *args, "--test-size", "0.25", *columns)
    assert status == 0, err
    assert "held-out R²: " in out and "accuracy" not in out
    r2 = float(out.split("held-out R²: ")[1].split()[0])
    assert r2 > 0.5, out
    loaded = sktransfer.load(model)
    assert isinstance(loaded, sktransfer.FineTunedRegressor) and loaded.n_outputs_ == 1

    for output in (tmp_path / "p.csv", tmp_path / "p.parquet"):
        status, _, err = cli(capsys, "predict", model, table, "-o", output, *columns)
        assert status == 0, err
        read = pd.read_csv(output) if output.suffix == ".csv" else pd.read_parquet(output)
        assert list(read.columns) == ["row", "prediction"]
        assert read["prediction"].dtype == np.float64
        truth = pd.read_csv(table)["stars"].to_numpy()
        assert np.corrcoef(read["prediction"], truth)[0, 1] > 0.8
    status, out, err = cli(capsys, "predict", model, table, *columns)
    assert status == 0 and "probabilities" not in err, err
    assert out.splitlines()[0].split() == ["row", "prediction"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_non_numeric_regression_target_names_its_row_and_flag(capsys, tmp_path, suffix):
    table = pd.DataFrame({"text": [f"text {i}" for i in range(6)], "label": ["1.5"] * 6})
    table.loc[4, "label"] = "four"
    path = tmp_path / f"t{suffix}"
    table.to_parquet(path) if suffix == ".parquet" else table.to_csv(path, index=False)
    status, _, err = cli(capsys, "fit", path, "-o", tmp_path / "m.skt", "--regression")
    assert status == 2
    line = error_line(err, "fit")
    assert f"Row 4 of {path} (the first row is row 0)" in line
    assert "'four'" in line and "--label-column 'label'" in line and "--regression" in line
    assert not (tmp_path / "m.skt").exists()


def test_regression_on_an_image_folder_is_refused(capsys, image_folder, out):
    status, _, err = cli(capsys, "fit", image_folder, "-o", out / "m.skt", "--regression")
    assert status == 2
    line = error_line(err, "fit")
    assert "--regression" in line and f"{image_folder}" in line and "table" in line
    assert not os.listdir(out)


# --- extract --scheduler: its own summary line
@pytest.mark.parametrize("n_redone", [0, 2])
def test_extract_on_a_scheduler_says_what_was_redone(
    capsys, image_folder, tmp_path, monkeypatch, n_redone
):
    pytest.importorskip("distributed")
    import distributed

    import sktransfer.distributed as dist
    from sktransfer.distributed._driver import ExtractionSummary

    class FakeClient:
        def __init__(self, address):
            self.address = address

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def fake_extract(paths, extractor, *, client, output, labels, progress):
        return ExtractionSummary(
            output=str(output), n_images=len(paths), n_features=7, n_partitions=3,
            n_skipped=1, errors=pd.DataFrame(columns=["path", "error"]), n_redone=n_redone,
        )  # fmt: skip

    monkeypatch.setattr(distributed, "Client", FakeClient)
    monkeypatch.setattr(dist, "extract_features", fake_extract)
    output = tmp_path / "features"
    status, out, err = cli(capsys, "extract", image_folder, "-o", output, "--scheduler", "x:1")
    assert status == 0, err
    n = len(sktransfer.load_image_folder(image_folder)[0])
    expected = f"{n} images x 7 features -> {output} (3 Parquet partitions, 1 already there"
    assert expected in out
    assert ("2 damaged and redone" in out) == (n_redone == 2)
