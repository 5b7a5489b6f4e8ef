"""The ``sktransfer`` console script, driven in a subprocess as a user runs it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SCRIPT = shutil.which("sktransfer", path=str(Path(sys.executable).parent)) or shutil.which(
    "sktransfer"
)


def run(*args, cwd=None):
    env = {**os.environ, "SKTRANSFER_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [SCRIPT, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=600
    )


def test_console_script_is_installed():
    assert SCRIPT is not None, "the sktransfer console script is not on PATH"
    result = run("--help")
    assert result.returncode == 0
    assert "extract" in result.stdout and "predict" in result.stdout


def test_extract_writes_features_with_path_and_label(image_folder, tmp_path):
    out = tmp_path / "features.parquet"
    result = run("extract", image_folder, "-o", out, "--image-size", "64")
    assert result.returncode == 0, result.stderr
    table = pd.read_parquet(out)
    assert table.shape == (24, 2 + 1280)
    assert list(table.columns[:3]) == ["path", "label", "f0"]
    assert set(table["label"]) == {"china", "flower"}
    assert "features" in result.stderr  # the progress bar


def test_extract_csv_and_npz(image_folder, tmp_path):
    assert (
        run("extract", image_folder, "-o", tmp_path / "f.csv", "--image-size", "32").returncode
        == 0
    )
    assert pd.read_csv(tmp_path / "f.csv").shape == (24, 1282)
    assert (
        run("extract", image_folder, "-o", tmp_path / "f.npz", "--image-size", "32").returncode
        == 0
    )
    assert np.load(tmp_path / "f.npz", allow_pickle=True)["X"].shape == (24, 1280)


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ("extract", "no/such/folder", "-o", "f.parquet"),
            "Image folder not found: no/such/folder",
        ),
        (("extract", "{folder}", "-o", "f.xlsx"), "Unknown output type '.xlsx'"),
        (("extract", "{folder}", "-o", "f.csv", "--backbone", "resnet1"), "Unknown backbone"),
        (("extract", "{folder}", "-o", "missing_dir/f.csv"), "Output folder does not exist"),
        (("extract", "{folder}", "-o", "f.csv", "--layer", "nope"), "Unknown layer 'nope'"),
    ],
)
def test_user_mistakes_give_one_line_and_no_traceback(image_folder, tmp_path, args, message):
    args = [a.format(folder=image_folder) for a in args]
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0  # one line
    assert not list(tmp_path.glob("f.*"))  # nothing written


def test_corrupt_image_is_named(image_folder, tmp_path):
    folder = tmp_path / "photos"
    shutil.copytree(image_folder, folder)
    (folder / "china" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    result = run("extract", folder, "-o", tmp_path / "f.parquet", "--image-size", "32")
    assert result.returncode == 2
    assert "broken.jpg" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "f.parquet").exists()


def test_fit_then_predict(image_folder, tmp_path):
    model = tmp_path / "model.skt"
    result = run("fit", image_folder, "-o", model, "--image-size", "64", "--epochs", "5")
    assert result.returncode == 0, result.stderr
    accuracy = float(result.stdout.split("held-out accuracy: ")[1].split()[0])
    assert accuracy >= 0.8
    assert model.exists()
    out = tmp_path / "predictions.csv"
    result = run("predict", model, image_folder / "china", image_folder / "flower", "-o", out)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out)
    assert list(table.columns) == ["path", "prediction", "proba_china", "proba_flower"]
    truth = table["path"].str.contains("/china/").map({True: "china", False: "flower"})
    assert (table["prediction"] == truth).mean() >= 0.9


def test_fine_tune_option(image_folder, tmp_path):
    result = run(
        "fit", image_folder, "-o", tmp_path / "m.skt", "--fine-tune", "--n-frozen", "-1",
        "--epochs", "1", "--image-size", "32", "--test-size", "0",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    import sktransfer

    assert sktransfer.load(tmp_path / "m.skt").n_frozen_ == 8


def test_fit_errors(tmp_path, image_folder):
    one_class = tmp_path / "one"
    shutil.copytree(image_folder / "china", one_class / "china")
    result = run("fit", one_class, "-o", tmp_path / "m.skt")
    assert result.returncode == 2 and "has one class ('china')" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "m.skt").exists()
    result = run("fit", image_folder, "-o", tmp_path / "m.skt", "--n-frozen", "12")
    assert result.returncode == 2 and "[-9, 9]" in result.stderr
    result = run("predict", tmp_path / "missing.skt", image_folder)
    assert result.returncode == 2 and "missing.skt" in result.stderr
