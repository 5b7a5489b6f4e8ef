"""Few-shot and zero-shot texts on the command line: ``fit --few-shot`` and ``--zero-shot-labels``.

``--zero-shot-labels`` trains from class names alone (no table) or adds a table's labelled
texts as examples; ``--few-shot`` tunes the encoder on pairs of labelled texts. Both save a
model that ``predict`` reads like any other; options they do not take are refused by name
before any work. The texts are real sentences on three topics.
"""

import numpy as np
import pandas as pd
import pytest

import sktransfer
from sktransfer.cli import main

TOPICS = {
    "sports": [
        "The striker scored twice in the second half.",
        "Our team lost the final on penalties.",
        "She ran the marathon in under three hours.",
        "The referee showed the defender a red card.",
    ],
    "cooking": [
        "She baked fresh bread this morning.",
        "We cooked pasta with garlic and tomatoes.",
        "Simmer the tomato sauce for twenty minutes.",
        "The chef added basil to the sauce.",
    ],
    "weather": [
        "Heavy rain is expected tomorrow.",
        "It snowed all night in the hills.",
        "A storm brought strong winds to the coast.",
        "Temperatures dropped below freezing overnight.",
    ],
}
TEXTS = [text for texts in TOPICS.values() for text in texts]
LABELS = np.repeat(list(TOPICS), 4)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("texts") / "texts.csv"
    pd.DataFrame({"text": TEXTS, "label": LABELS}).to_csv(path, index=False)
    return path


def predicted(model, table, tmp_path):
    out = tmp_path / "predictions.csv"
    assert main(["predict", str(model), str(table), "-o", str(out)]) == 0
    return pd.read_csv(out)


def test_zero_shot_from_class_names_alone_saves_a_model_predict_reads(table, tmp_path, capsys):
    model = tmp_path / "zero.skt"
    assert main(["fit", "--zero-shot-labels", "sports, cooking,weather", "-o", str(model)]) == 0
    assert "3 classes from their names: sports, cooking, weather" in capsys.readouterr().out
    loaded = sktransfer.load(model)
    assert type(loaded).__name__ == "ZeroShotTextClassifier"
    assert loaded.n_examples_.tolist() == [0, 0, 0]  # no text was seen
    table = predicted(model, table, tmp_path)
    assert (table["prediction"] == LABELS).mean() >= 10 / 12  # chance: 1/3
    np.testing.assert_allclose(table.filter(like="proba_").sum(axis=1), 1, rtol=1e-6)


def test_zero_shot_adds_a_tables_texts_and_scores_them(table, tmp_path, capsys):
    model = tmp_path / "zero.skt"
    args = ["fit", str(table), "--zero-shot-labels", "sports,cooking,weather", "-o", str(model)]
    assert main([*args, "--test-size", "0.25"]) == 0
    out = capsys.readouterr().out
    assert "held-out accuracy:" in out and "(3 texts)" in out
    assert sktransfer.load(model).n_examples_.tolist() == [4, 4, 4]  # every text, once


def test_zero_shot_refuses_a_class_it_does_not_name(table, tmp_path, capsys):
    args = ["fit", str(table), "--zero-shot-labels", "sports,cooking", "-o", str(tmp_path / "m")]
    assert main(args) == 2
    assert "does not name: weather" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_few_shot_tunes_the_encoder_and_predict_reads_it(table, tmp_path, capsys):
    model = tmp_path / "few.skt"
    args = ["fit", str(table), "--few-shot", "--test-size", "0", "--epochs", "1"]
    assert main([*args, "--lr", "3e-5", "-o", str(model)]) == 0
    loaded = sktransfer.load(model)
    assert type(loaded).__name__ == "FewShotTextClassifier"
    assert loaded.lr == 3e-5 and loaded.max_epochs == 1 and loaded.n_pairs_seen_ > 0
    rows = predicted(model, table, tmp_path)
    np.testing.assert_array_equal(rows["prediction"], loaded.predict(TEXTS))
    assert (rows["prediction"] == LABELS).mean() >= 10 / 12


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--few-shot", "--regression"], "--few-shot does not take --regression"),
        (["--few-shot", "--fine-tune"], "--few-shot does not take --fine-tune"),
        (["--few-shot", "--label-sep", ";"], "--few-shot does not take --label-sep"),
        (["--zero-shot-labels", "a,b", "--few-shot"], "does not take --few-shot"),
        (["--zero-shot-labels", "a,b", "--epochs", "3"], "does not take --epochs"),
        (["--zero-shot-labels", "a"], "must name at least two classes"),
        (["--zero-shot-labels", "a,,b"], "none empty"),
        (["--zero-shot-labels", "a,b,a"], "names 'a' twice"),
        (["--template", "About {}."], "--template is the sentence of --zero-shot-labels"),
    ],
)
def test_options_that_do_not_go_together_are_refused_by_name(
    table, tmp_path, capsys, extra, message
):
    assert main(["fit", str(table), *extra, "-o", str(tmp_path / "m.skt")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m.skt").exists()


def test_a_folder_of_images_or_no_input_is_refused(image_folder, tmp_path, capsys):
    assert main(["fit", str(image_folder), "--few-shot", "-o", str(tmp_path / "m.skt")]) == 2
    assert "--few-shot trains on texts" in capsys.readouterr().err
    assert main(["fit", "-o", str(tmp_path / "m.skt")]) == 2
    assert "DIR_OR_TABLE is missing" in capsys.readouterr().err
