"""Several labels per text on the command line: 0/1 columns, or one column of label lists.

``fit`` reads a repeated ``--label-column`` (each column 0 or 1 for the label it is named
after) or one ``--label-column`` with ``--label-sep`` (cells such as ``"sports;food"``), trains
a multi-label :class:`~sktransfer.FineTunedClassifier` and scores it by F1; the model file
keeps the label names, so that ``predict`` writes names, in this process and in a fresh one.
The texts are real sentences on three topics (sport, food, weather), one or two topics per
text, some on none; the sentences of the held-out table are not in the training table.
"""

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, label_ranking_average_precision_score

import sktransfer
from sktransfer.cli import main

ROOT = Path(__file__).resolve().parents[1]
TOPICS = {
    "sports": [
        "The striker scored twice in the second half.",
        "Our team lost the final on penalties.",
        "The coach picked a new goalkeeper for the cup game.",
        "She ran the marathon in under three hours.",
        "The tennis match went to five sets.",
        "The referee showed the defender a red card.",
        "The cyclists raced up the mountain stage.",
        "The swimmer broke the world record in the relay.",
    ],
    "food": [
        "She baked fresh bread this morning.",
        "The soup needed more salt and pepper.",
        "We cooked pasta with garlic and tomatoes.",
        "The bakery sells warm croissants.",
        "He grilled fish with lemon for dinner.",
        "The chef added basil to the sauce.",
        "They ate rice and curry for lunch.",
        "The cake was filled with whipped cream.",
    ],
    "weather": [
        "Heavy rain is expected tomorrow.",
        "It snowed all night in the hills.",
        "The afternoon was hot and sunny.",
        "A storm brought strong winds to the coast.",
        "Fog covered the valley at dawn.",
        "The forecast warns of thunder and hail.",
        "Temperatures dropped below freezing overnight.",
        "A warm breeze came after the clouds cleared.",
    ],
}
NEUTRAL = [
    "The meeting was moved to Monday.",
    "He left his keys at the office.",
    "She is reading a long novel.",
    "The printer is out of paper.",
    "They painted the kitchen door blue.",
]
NAMES = list(TOPICS)  # the order of the 0/1 columns


def _rows(sentences, neutral):
    """Texts of one or two topics (each topic's sentences in turn), and a few of none."""
    rows = []
    for topic in NAMES:
        rows += [(TOPICS[topic][i], [topic]) for i in sentences]
    for a, b in combinations(NAMES, 2):  # the i-th sentences of both topics
        rows += [(f"{TOPICS[a][i]} {TOPICS[b][i]}", [a, b]) for i in sentences]
    return rows + [(text, []) for text in neutral]


def _write(rows, path):
    """A table with the texts, a ``tags`` column of label lists and one 0/1 column per label."""
    table = pd.DataFrame({"text": [text for text, _ in rows]})
    table["tags"] = [";".join(labels) for _, labels in rows]
    for name in NAMES:
        table[name] = [int(name in labels) for _, labels in rows]
    if path.suffix == ".parquet":
        table.to_parquet(path)
    else:
        table.to_csv(path, index=False)
    return path


def cli(capsys, *args):
    """Run the command line in-process: (exit status, stdout, stderr)."""
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def error_line(err, command):
    """The one line the command printed about its failure."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith(f"sktransfer {command}: ")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """Training (33 texts, 3 of no topic) and held-out (20, 2) tables of other sentences."""
    folder = tmp_path_factory.mktemp("tables")
    train = _write(_rows(range(5), NEUTRAL[:3]), folder / "train.csv")
    test = _write(_rows(range(5, 8), NEUTRAL[3:]), folder / "test.csv")
    return train, test


FIT = ("--epochs", "60", "--lr", "0.01")


@pytest.fixture(scope="module")
def models(tables, tmp_path_factory):
    """A model from the label lists and one from the 0/1 columns, and what fit printed."""
    train, _ = tables
    folder = tmp_path_factory.mktemp("models")
    options = {
        "lists": ["--label-column", "tags", "--label-sep", ";"],
        "columns": [a for name in NAMES for a in ("--label-column", name)],
    }
    fitted = {}
    for form, labels in options.items():
        model = folder / f"{form}.skt"
        args = ["fit", train, "-o", model, *FIT, "--test-size", "0.25", *labels]
        out = _captured(args)
        fitted[form] = model, out
    return fitted


def _captured(args):
    """Run the command line, returning what it printed (a module fixture has no capsys)."""
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = main([str(a) for a in args])
    assert status == 0, buffer.getvalue()
    return buffer.getvalue()


def _truth(table):
    return pd.read_csv(table)[NAMES].to_numpy()


def _trivial_f1(train, test):
    """F1 (samples) of predicting every label that most training texts have (here: none)."""
    majority = _truth(train).mean(axis=0) > 0.5
    predicted = np.tile(majority, (len(_truth(test)), 1)).astype(int)
    return f1_score(_truth(test), predicted, average="samples", zero_division=1.0)


# --- fit and predict ---------------------------------------------------------------------------
def test_fit_describes_the_labels_and_reports_f1_not_accuracy(models):
    for form, names in (("lists", sorted(NAMES)), ("columns", NAMES)):
        out = models[form][1]
        described = ", ".join(f"{name} (15)" for name in names)
        assert f"33 texts, 3 labels: {described}; 3 texts with no label" in out
        assert "held-out F1 (samples): " in out and "exact match: " in out
        assert "accuracy" not in out
        assert "(9 texts)" in out  # a quarter of 33, rounded up


@pytest.mark.parametrize("form", ["lists", "columns"])
def test_predictions_on_new_sentences_beat_a_trivial_predictor(capsys, models, tables, form):
    train, test = tables
    model = models[form][0]
    output = test.parent / f"{form}-predictions.csv"
    status, _, err = cli(capsys, "predict", model, test, "-o", output)
    assert status == 0, err
    predictions = pd.read_csv(output, keep_default_na=False)
    names = sorted(NAMES) if form == "lists" else NAMES  # the lists' labels are sorted
    assert list(predictions.columns) == [
        "row",
        "prediction",
        *(f"label_{name}" for name in names),
        *(f"proba_{name}" for name in names),
    ]
    predicted = predictions[[f"label_{name}" for name in NAMES]].to_numpy()
    truth = _truth(test)
    f1 = f1_score(truth, predicted, average="samples", zero_division=1.0)
    assert f1 > 0.8 and f1 > _trivial_f1(train, test) + 0.3, (f1, _trivial_f1(train, test))
    proba = predictions[[f"proba_{name}" for name in NAMES]].to_numpy()
    assert (
        label_ranking_average_precision_score(truth[truth.any(axis=1)], proba[truth.any(1)]) > 0.9
    )
    # 'prediction' joins the 0/1 columns' labels with ';', and says nothing for none
    rows = predictions.to_dict("records")
    joined = [";".join(name for name in names if row[f"label_{name}"]) for row in rows]
    assert predictions["prediction"].tolist() == joined
    assert ((proba >= 0.5) == predicted.astype(bool)).all()


def test_the_label_names_survive_the_file_in_a_fresh_process(models, tables, tmp_path):
    model, _ = models["lists"]
    loaded = sktransfer.load(model)
    assert isinstance(loaded, sktransfer.FineTunedClassifier)
    assert loaded.label_names_.tolist() == sorted(NAMES)
    assert loaded.classes_.tolist() == [0, 1, 2]  # the columns of the indicator y
    output = tmp_path / "p.parquet"
    env = os.environ | {"SKTRANSFER_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "sktransfer.cli", "predict", model, tables[1], "-o", output,
         "--label-sep", " | "],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    predictions = pd.read_parquet(output)
    assert [c for c in predictions.columns if c.startswith("proba_")] == [
        f"proba_{name}" for name in sorted(NAMES)
    ]
    first_pair = next(p for p in predictions["prediction"] if " | " in p)
    assert set(first_pair.split(" | ")) <= set(NAMES)


def test_a_parquet_table_with_missing_lists_and_boolean_columns(capsys, tmp_path):
    rows = _rows(range(3), NEUTRAL[:2])
    table = pd.DataFrame({"text": [text for text, _ in rows]})
    table["tags"] = [";".join(labels) or None for _, labels in rows]  # missing: no label
    for name in NAMES:
        table[name] = [name in labels for _, labels in rows]  # booleans
    path = tmp_path / "t.parquet"
    table.to_parquet(path)
    quick = ("--epochs", "1", "--test-size", "0")
    for form, labels in (
        ("lists", ("--label-column", "tags", "--label-sep", ";")),
        ("columns", [a for name in NAMES for a in ("--label-column", name)]),
    ):
        model = tmp_path / f"{form}.skt"
        status, out, err = cli(capsys, "fit", path, "-o", model, *quick, *labels)
        assert status == 0, err
        assert f"{len(rows)} texts, 3 labels: " in out and "2 texts with no label" in out
        assert len(sktransfer.load(model).label_names_) == 3


def test_a_multi_label_model_saved_from_python_is_named_by_its_columns(capsys, tables, tmp_path):
    train, test = tables
    table = pd.read_csv(train)
    clf = sktransfer.FineTunedClassifier("all-MiniLM-L6-v2", max_epochs=1, random_state=0)
    clf.fit(table["text"].to_numpy(), table[NAMES].to_numpy())
    sktransfer.save(clf, tmp_path / "m.skt")
    status, _, err = cli(capsys, "predict", tmp_path / "m.skt", test, "-o", tmp_path / "p.csv")
    assert status == 0, err
    columns = pd.read_csv(tmp_path / "p.csv").columns.tolist()
    assert columns == ["row", "prediction", "label_0", "label_1", "label_2"] + [
        "proba_0",
        "proba_1",
        "proba_2",
    ]


# --- the file: label names one per label, checked both ways --------------------------------
def test_save_refuses_label_names_that_do_not_match_the_labels(models, tmp_path):
    loaded = sktransfer.load(models["columns"][0])
    for names in (["a", "b"], ["a", "a", "b"], ["a", "b", 3]):
        loaded.label_names_ = np.asarray(names, dtype=object)
        with pytest.raises(TypeError, match="label_names_ names the labels of a multi-label"):
            sktransfer.save(loaded, tmp_path / "m.skt")
    assert not (tmp_path / "m.skt").exists()


def _forge_label_names(path, names):
    """Rewrite the file's label names and its checksums, as someone editing it could."""
    with zipfile.ZipFile(path) as archive:
        meta = json.loads(archive.read("sktransfer.json"))
        weights = archive.read("weights.safetensors")
    meta["model"]["state"]["label_names"] = names
    body = {k: v for k, v in meta.items() if k != "metadata_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    meta["metadata_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("sktransfer.json", json.dumps(meta))
        archive.writestr("weights.safetensors", weights)


@pytest.mark.parametrize("names", [["a", "b"], ["a", "a", "b"], ["a", "b", 3], "abc"])
def test_load_refuses_label_names_that_do_not_match_the_labels(models, tmp_path, names):
    path = tmp_path / "m.skt"
    path.write_bytes(models["columns"][0].read_bytes())
    _forge_label_names(path, names)
    with pytest.raises(ValueError, match="label_names are not distinct strings, one per label"):
        sktransfer.load(path)


# --- mistakes: one line that names the option, row or column; exit 2; nothing written ------
COLUMNS = ("--label-column", "sports", "--label-column", "food", "--label-column", "weather")
LISTS = ("--label-column", "tags", "--label-sep", ";")


def _small_table(path, edit=None):
    """Six texts with both forms of labels; ``edit(table)`` spoils it."""
    rows = _rows(range(1), NEUTRAL[:0])
    table = pd.DataFrame({"text": [text for text, _ in rows]})
    table["tags"] = [";".join(labels) for _, labels in rows]
    for name in NAMES:
        table[name] = [str(int(name in labels)) for _, labels in rows]
    if edit is not None:
        edit(table)
    table.to_csv(path, index=False)
    return path


FIT_MISTAKES = [
    (
        ("--label-column", "tags", "--label-column", "sports", "--label-sep", ";"),
        None,
        "--label-sep splits the label lists of one column, and --label-column is given 2 "
        "times ('tags', 'sports'): give one --label-column with --label-sep",
    ),
    (LISTS + ("--regression",), None, "--regression trains on one --label-column of numbers"),
    (COLUMNS + ("--regression",), None, "a repeated --label-column gives several labels"),
    (("--label-column", "tags", "--label-sep", ""), None, "--label-sep is empty"),
    (
        ("--label-column", "food", "--label-column", "food"),
        None,
        "--label-column 'food' is given twice",
    ),
    (
        COLUMNS,
        lambda t: t.__setitem__("food", ["0", "1", "yes", "0", "1", "0"]),
        "Row 2 of {path} (the first row is row 0) has 'yes' in the --label-column 'food', "
        "not 0 or 1",
    ),
    (
        COLUMNS,
        lambda t: t.__setitem__("weather", ["0", "1", "0.5", "0", "1", "0"]),
        "Row 2 of {path} (the first row is row 0) has '0.5' in the --label-column 'weather'",
    ),
    (
        COLUMNS,
        lambda t: t.__setitem__("sports", ["", "1", "0", "0", "1", "0"]),
        "Row 0 of {path} (the first row is row 0) has an empty --label-column 'sports' cell",
    ),
    (
        COLUMNS,
        lambda t: t.__setitem__("weather", ["0"] * 6),
        "The --label-column 'weather' of {path} is 0 in every row: no text has that label",
    ),
    (
        LISTS,
        lambda t: t.__setitem__("tags", ["food", "", "food", "food;", "", "food"]),
        "split by --label-sep ';' holds one label ('food'): several labels per text need at "
        "least two",
    ),
    (COLUMNS + ("--test-size", "0.9"), None, "--test-size 0.9 holds out all 6 texts"),
    (("--label-column", "topics", "--label-sep", ";"), None, "has no column 'topics'"),
]


@pytest.mark.parametrize("options, edit, message", FIT_MISTAKES)
def test_fit_mistakes_name_the_option_row_or_column(capsys, tmp_path, options, edit, message):
    path = _small_table(tmp_path / "t.csv", edit)
    out = tmp_path / "out"
    out.mkdir()
    status, _, err = cli(capsys, "fit", path, "-o", out / "m.skt", *options)
    assert status == 2
    assert message.format(path=path) in error_line(err, "fit")
    assert not os.listdir(out)


@pytest.mark.parametrize("options", [LISTS, COLUMNS])
def test_an_image_folder_stays_single_label(capsys, image_folder, tmp_path, options):
    status, _, err = cli(capsys, "fit", image_folder, "-o", tmp_path / "m.skt", *options)
    assert status == 2
    line = error_line(err, "fit")
    assert f"{image_folder} is a folder of images, whose sub-folders are the classes" in line
    given = "--label-sep" if "--label-sep" in options else "a repeated --label-column"
    assert f"{given} is for a .csv/.tsv/.parquet table of texts" in line
    assert not (tmp_path / "m.skt").exists()


def test_extract_takes_one_label_column(capsys, tmp_path):
    path = _small_table(tmp_path / "t.csv")
    status, _, err = cli(capsys, "extract", path, "-o", tmp_path / "f.csv", *COLUMNS)
    assert status == 2
    assert "extract writes one label column" in error_line(err, "extract")
    assert "given 3 times: give it once" in error_line(err, "extract")
    assert not (tmp_path / "f.csv").exists()


@pytest.mark.parametrize(
    "sep, message",
    [
        ("o", "--label-sep 'o' is in the label 'sports' of {model}, so the joined labels"),
        ("", "--label-sep is empty"),
    ],
)
def test_predict_refuses_a_separator_that_would_not_split_back(
    capsys, models, tables, tmp_path, sep, message
):
    model = models["columns"][0]
    args = ("predict", model, tables[1], "-o", tmp_path / "p.csv", "--label-sep", sep)
    status, _, err = cli(capsys, *args)
    assert status == 2
    assert message.format(model=model) in error_line(err, "predict")
    assert not (tmp_path / "p.csv").exists()


def test_predict_refuses_label_sep_for_a_single_label_model(capsys, tmp_path):
    path = _small_table(tmp_path / "t.csv")
    model = tmp_path / "single.skt"
    fit = ("fit", path, "-o", model, "--label-column", "food", "--epochs", "1")
    status, _, err = cli(capsys, *fit, "--test-size", "0")
    assert status == 0, err
    args = ("predict", model, path, "-o", tmp_path / "p.csv", "--label-sep", ";")
    status, _, err = cli(capsys, *args)
    assert status == 2
    line = error_line(err, "predict")
    assert (
        f"--label-sep joins the labels of a multi-label model, and {model} predicts one " in line
    )
    assert "class per input: drop --label-sep" in line
    assert not (tmp_path / "p.csv").exists()
