"""Text as a second modality of the same estimators: the bundled sentence encoder, offline."""

import io
import json
import re
import shutil
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline

import sktransfer
from sktransfer import FineTunedClassifier, PretrainedFeatureExtractor, load_backbone
from sktransfer._modalities import check_texts
from sktransfer._modalities._text import encode
from sktransfer.backbones._text_models import model_folder
from sktransfer.exceptions import WeightsUnavailableError

MODEL = "all-MiniLM-L6-v2"
PINNED = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]


def _topic_texts(n, seed=0):
    """Short sentences about sport or cooking, from varied templates: a real 2-class task."""
    rng = np.random.default_rng(seed)
    sport = [
        "The team won the match {} after extra time.",
        "Our striker scored a {} goal in the second half.",
        "The players trained {} before the cup final.",
        "Fans filled the stadium for the {} derby.",
        "The coach changed tactics at half time, {}.",
    ]
    food = [
        "She baked a {} cake for the party.",
        "The soup needs a {} pinch of salt.",
        "We cooked pasta with a {} tomato sauce.",
        "The chef sliced the onions {} and fried them.",
        "Knead the dough {} and let it rise.",
    ]
    words = ["quickly", "slowly", "again", "late", "early", "twice", "happily", "carefully"]
    X, y = [], []
    for i in range(n):
        topic = i % 2
        template = (sport, food)[topic][rng.integers(5)]
        X.append(template.format(words[rng.integers(len(words))]))
        y.append(("sport", "food")[topic])
    return X, np.asarray(y)


@pytest.fixture(scope="module")
def extractor():
    return PretrainedFeatureExtractor(MODEL, batch_size=4).fit(PINNED)


def test_bundled_encoder_gives_the_documented_similarities(extractor):
    features = extractor.transform(PINNED)
    assert features.shape == (3, 384) and features.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1, atol=1e-5)
    sims = features @ features.T
    # the cosine similarities sentence-transformers documents for this model
    assert sims[0, 1] == pytest.approx(0.6660, abs=5e-4)
    assert sims[0, 2] == pytest.approx(0.1046, abs=5e-4)
    assert sims[1, 2] == pytest.approx(0.1411, abs=5e-4)


def test_embeddings_match_sentence_transformers(extractor):
    sentence_transformers = pytest.importorskip("sentence_transformers")

    texts, _ = _topic_texts(12)
    texts[3] = "A much longer sentence, " * 6 + "so that batches need padding."
    reference = sentence_transformers.SentenceTransformer(
        str(model_folder(MODEL)), device="cpu"
    ).encode(texts, batch_size=4)
    ours = extractor.transform(texts)
    cosine = (ours * reference).sum(1) / np.linalg.norm(ours, axis=1)
    cosine /= np.linalg.norm(reference, axis=1)
    assert cosine.min() >= 0.9999


def test_every_container_and_any_order_give_the_same_rows(extractor):
    texts, _ = _topic_texts(9)
    texts[4] = "short"
    reference = extractor.transform(texts)
    for X in (np.asarray(texts, dtype=object), pd.Series(texts), pd.DataFrame({"t": texts})):
        np.testing.assert_allclose(extractor.transform(X), reference, atol=1e-5)
    order = np.random.default_rng(1).permutation(9)  # batches are sorted by length inside
    np.testing.assert_allclose(
        extractor.transform([texts[i] for i in order]), reference[order], atol=1e-5
    )
    one_by_one = clone(extractor).set_params(batch_size=1).fit(texts).transform(texts)
    np.testing.assert_allclose(one_by_one, reference, atol=1e-5)


@pytest.mark.parametrize(
    "X, error, match",
    [
        (["fine", "", "ok"], ValueError, "Text 1 is empty"),
        (["fine", None], ValueError, "Text 1 is missing"),
        (["fine", float("nan")], ValueError, "Text 1 is missing"),
        (["fine", np.float32("nan")], ValueError, "Text 1 is missing"),
        (["fine", pd.NA], ValueError, "Text 1 is missing"),
        (pd.Series(["fine", pd.NA], dtype="string"), ValueError, "Text 1 is missing"),
        (pd.Series(["fine", "ok", pd.NA], dtype=object), ValueError, "Text 2 is missing"),
        (pd.DataFrame({"t": ["fine", None]}, dtype="string"), ValueError, "Text 1 is missing"),
        (["fine", 3], TypeError, "Text 1 is a int, not a string"),
        ("a single text", TypeError, "wrap a single text in a list"),
        ([], ValueError, "No texts"),
        (pd.DataFrame({"a": ["x"], "b": ["y"]}), ValueError, "exactly one column"),
        (["fine", "\ud800x"], ValueError, r"Text 1 .*lone surrogate '\\ud800' at position 0"),
        ({"first": 0, "second": 1}, TypeError, r"X is a dict: a mapping.*list\(X.values\(\)\)"),
        ({"one text", "another"}, TypeError, "X is a set: a set has no order"),
        ({"a": 0}.keys(), TypeError, "X is a dict_keys"),
    ],
)
def test_bad_texts_are_named(extractor, X, error, match):
    with pytest.raises(error, match=match):
        extractor.transform(X)


@pytest.fixture
def path_inputs(tmp_path, monkeypatch):
    """An image folder, a table and two plain folders, in the working folder."""
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    for label in ("ants", "bees"):
        (tmp_path / "photos" / label).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (8, 8)).save(tmp_path / "photos" / label / f"{i}.jpg")
    pd.DataFrame({"text": ["good", "bad"]}).to_csv(tmp_path / "reviews.csv", index=False)
    (tmp_path / "cat").mkdir()
    (tmp_path / "dog").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    "texts, match",
    [
        (["photos/ants/0.jpg", "photos/bees/1.jpg"], r"All 2 texts are existing image files.*"
         r"'photos/ants/0.jpg'.*Pass the texts themselves.*image backbone"),
        (pd.Series(["photos/ants/0.jpg"]), "Text 0 is the image file 'photos/ants/0.jpg'"),
        (["photos/ants"], r"is the folder 'photos/ants'.*Pass the texts themselves"),
        (["photos/ants", "photos/bees/"], r"All 2 texts are existing folders"),
        (["reviews.csv"], r"table file 'reviews.csv'.*pd.read_csv\('reviews.csv'\)\['text'\]"),
        (["cat"], "is the folder 'cat'"),  # the only text: evidently a path
    ],
)  # fmt: skip
def test_paths_given_as_texts_are_refused(path_inputs, texts, match):
    with pytest.raises(ValueError, match=match):
        check_texts(texts)


@pytest.mark.parametrize(
    "texts",
    [
        ["cat", "dog"],  # short texts that happen to name folders here
        ["photos/ants/0.jpg", "a real sentence"],
        ["photo.jpg", "missing.csv"],  # no such files
        ["."],
        ["photos/ants/0.jpg\nand more"],
    ],
)
def test_ordinary_texts_that_look_like_paths_are_kept(path_inputs, texts):
    assert list(check_texts(texts)) == texts


def test_an_estimator_refuses_image_paths_as_texts(path_inputs, extractor):
    with pytest.raises(ValueError, match="existing image files"):
        extractor.transform(["photos/ants/0.jpg", "photos/ants/1.jpg"])


def test_progress_bar_counts_texts(capsys):
    extractor = PretrainedFeatureExtractor(MODEL, verbose=1).fit(PINNED)
    with sktransfer.config_context(shared_cache_size=0):  # computed, not read from the store
        extractor.transform(PINNED)
    bar = capsys.readouterr().err
    assert "features: 100%" in bar and "3/3" in bar and "?text/s" in bar  # the unit is texts
    assert "img" not in bar


def test_truncation_is_reported_with_its_count():
    texts = ["word " * 40, "short text", "word " * 50]
    extractor = PretrainedFeatureExtractor(MODEL, max_length=16).fit(texts)
    with pytest.warns(UserWarning, match=r"2 of 3 texts are longer than max_length=16"):
        features = extractor.transform(texts)
    assert features.shape == (3, 384)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        extractor.transform(["short text"])  # nothing truncated: no warning


class _CountingTokenizer:
    """A tokenizer that counts the characters it is given."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.chars = 0

    def __call__(self, texts, **kwargs):
        self.chars += sum(map(len, texts))
        return self.tokenizer(texts, **kwargs)

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)


def test_a_long_text_is_tokenised_once_from_its_first_words(extractor):
    tokenizer = _CountingTokenizer(extractor.backbone_.preprocessing.tokenizer)
    texts = ["The team won the match after extra time. " * 5000, "short", "Knead it. " * 60]
    with pytest.warns(UserWarning, match="2 of 3 texts are longer than max_length=32"):
        encoded = encode(tokenizer, texts, 32)
    assert tokenizer.chars < 1000  # not the 200 KB of the first text, let alone twice
    assert encoded.n_truncated == 2
    assert encoded.ids == tokenizer.tokenizer(texts, truncation=True, max_length=32)["input_ids"]


# Texts where a cut at the first words could go wrong: runs of spaces, words longer than the
# budget, no spaces at all, a long text of short words.
HARD_TEXTS = [
    "hello world " * 100, "hi", "x" * 3000, "a" + " " * 5000 + " ".join("bcdefghijklmnop"),
    "\u5929" * 3000, "Fine. " * 3 + "word" * 400 + " end", "The team won. " * 3000,
]  # fmt: skip


@pytest.mark.parametrize("python_tokenizer", [False, True], ids=["fast", "python"])
@pytest.mark.parametrize("max_length", [8, 64])
def test_truncation_matches_the_tokenizer_on_whole_texts(extractor, python_tokenizer, max_length):
    from transformers.models.byt5.tokenization_byt5 import ByT5Tokenizer

    tokenizer = extractor.backbone_.preprocessing.tokenizer
    tokenizer = ByT5Tokenizer() if python_tokenizer else tokenizer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the truncation warning, and the tokenizer's own
        encoded = encode(tokenizer, HARD_TEXTS, max_length)
        full = tokenizer(HARD_TEXTS)["input_ids"]
    assert encoded.n_truncated == sum(len(row) > max_length for row in full) >= 3
    expected = tokenizer(HARD_TEXTS, truncation=True, max_length=max_length)["input_ids"]
    assert encoded.ids == expected


def test_intermediate_layer_is_pooled_over_real_tokens():
    texts = ["a cat", "a cat sat on the mat and then slept for a very long time"]
    extractor = PretrainedFeatureExtractor(MODEL, layer="layer1").fit(texts)
    both = extractor.transform(texts)
    alone = extractor.transform(texts[:1])  # no padding when alone
    assert both.shape == (2, 384) == (2, extractor.n_features_out_)
    np.testing.assert_allclose(both[:1], alone, atol=1e-5)  # padding does not leak in
    assert extractor.backbone_.layer_names[:2] == ["embeddings", "embeddings.embeddings"]


def test_feature_transfer_pipeline_beats_chance():
    X, y = _topic_texts(40)
    pipe = make_pipeline(PretrainedFeatureExtractor(MODEL), LogisticRegression(max_iter=1000))
    assert cross_val_score(pipe, X, y, cv=4).mean() >= 0.9


def test_pickle_is_small_and_reloads_the_bundled_weights(extractor):
    buffer = io.BytesIO()
    joblib.dump(extractor, buffer)
    assert buffer.tell() < 20_000  # the 90 MB of weights rebuild from the package
    buffer.seek(0)
    loaded = joblib.load(buffer)
    np.testing.assert_allclose(loaded.transform(PINNED), extractor.transform(PINNED), atol=1e-6)


@pytest.fixture(scope="module")
def topic_split():
    X, y = _topic_texts(48)
    return X[:32], y[:32], X[32:], y[32:]


def test_fine_tuning_keeps_frozen_layers_bit_identical_and_beats_chance(topic_split):
    X, y, X_test, y_test = topic_split
    clf = FineTunedClassifier(MODEL, n_frozen=-2, max_epochs=3, batch_size=8, random_state=0)
    clf.fit(X, y)
    assert clf.n_layer_groups_ == 7 and clf.n_frozen_ == 5 and clf.n_cached_stages_ == 5
    assert clf.score(X_test, y_test) >= 0.8
    pretrained = load_backbone(MODEL).net.state_dict()
    tuned = clf.backbone_.net.state_dict()
    frozen = [k for k in tuned if k.split(".")[0] in ("embeddings", "layer0", "layer3")]
    assert frozen and all(torch.equal(pretrained[k], tuned[k]) for k in frozen)
    assert not torch.equal(pretrained["layer5.layer.output.dense.weight"],
                           tuned["layer5.layer.output.dense.weight"])  # fmt: skip


def test_cached_and_uncached_text_training_give_the_same_losses(topic_split):
    X, y, X_test, _ = topic_split
    params = {"n_frozen": -1, "max_epochs": 2, "batch_size": 8, "random_state": 0}
    cached = FineTunedClassifier(MODEL, **params).fit(X, y)
    uncached = FineTunedClassifier(MODEL, cache_size=0, **params).fit(X, y)
    assert cached.n_cached_stages_ == 6 and uncached.n_cached_stages_ == 0
    np.testing.assert_allclose(
        cached.history_[:, "train_loss"], uncached.history_[:, "train_loss"], rtol=1e-4
    )
    np.testing.assert_allclose(
        cached.predict_proba(X_test), uncached.predict_proba(X_test), atol=1e-4
    )


def test_safe_format_and_transfer_from_a_fitted_text_model(topic_split, tmp_path):
    X, y, X_test, _ = topic_split
    # the new head starts at zero: the first steps move the head, the next ones the layer
    source = FineTunedClassifier(MODEL, n_frozen=-1, max_epochs=3, random_state=0).fit(X, y)
    sktransfer.save(source, tmp_path / "text.skt")
    loaded = sktransfer.load(tmp_path / "text.skt")
    np.testing.assert_allclose(
        loaded.predict_proba(X_test), source.predict_proba(X_test), atol=1e-5
    )
    features = PretrainedFeatureExtractor(backbone=loaded).fit(X).transform(X_test)
    expected = PretrainedFeatureExtractor(backbone=source).fit(X).transform(X_test)
    np.testing.assert_allclose(features, expected, atol=1e-5)
    assert not np.allclose(features, PretrainedFeatureExtractor(MODEL).fit(X).transform(X_test))


def test_uncached_hub_model_fails_offline_naming_the_place():
    with pytest.raises(WeightsUnavailableError, match=r"'someone/unknown-encoder'.*hub cache"):
        load_backbone("hf:someone/unknown-encoder")  # conftest sets offline mode


def test_texts_given_to_an_image_backbone_get_a_hint():
    with pytest.raises(FileNotFoundError, match="use a text backbone such as 'all-MiniLM-L6-v2'"):
        PretrainedFeatureExtractor().fit(PINNED)


def _edited_copy(tmp_path, pooling=None, modules=None):
    """The bundled model's folder, copied (weights linked) with its JSON files replaced."""
    source = model_folder(MODEL)
    folder = tmp_path / "model"
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("model.safetensors"))
    (folder / "model.safetensors").symlink_to(source / "model.safetensors")
    if pooling is not None:
        (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    if modules is not None:
        (folder / "modules.json").write_text(json.dumps(modules))
    return folder


def _modules(*kinds):
    """A modules.json listing the bundled model's modules (or others) in order."""
    paths = {"Transformer": "", "Pooling": "1_Pooling", "Normalize": "2_Normalize"}
    return [
        {"idx": i, "name": str(i), "path": paths.get(kind, f"{i}_{kind}"),
         "type": f"sentence_transformers.models.{kind}"}
        for i, kind in enumerate(kinds)
    ]  # fmt: skip


LEGACY = dict.fromkeys(
    ["pooling_mode_cls_token", "pooling_mode_mean_tokens", "pooling_mode_max_tokens",
     "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens",
     "pooling_mode_lasttoken"], False,
)  # fmt: skip


@pytest.mark.parametrize(
    "pooling, by_hand",
    [
        (
            {**LEGACY, "pooling_mode_mean_sqrt_len_tokens": True},
            lambda h: h.sum(0) / len(h) ** 0.5,
        ),
        ({**LEGACY, "pooling_mode_lasttoken": True}, lambda h: h[-1]),
        ({"embedding_dimension": 384, "pooling_mode": "cls"}, lambda h: h[0]),  # newer format
        ({"embedding_dimension": 384, "pooling_mode": ["max"]}, lambda h: h.amax(0)),
    ],
)
def test_sentence_transformers_pooling_modes_match_a_hand_computation(tmp_path, pooling, by_hand):
    from transformers import AutoModel, AutoTokenizer

    folder = _edited_copy(tmp_path, pooling, modules=_modules("Transformer", "Pooling"))
    texts = ["a cat", "The team won the match after extra time.", "short"]
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    with torch.no_grad():  # one text at a time: no padding at all
        hidden = [model(**tokenizer(t, return_tensors="pt")).last_hidden_state[0] for t in texts]
    expected = torch.stack([by_hand(h) for h in hidden]).numpy()
    features = PretrainedFeatureExtractor(f"hf:{folder}", batch_size=3).fit(texts).transform(texts)
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "pooling, modules, match",
    [
        ({**LEGACY, "pooling_mode_weightedmean_tokens": True}, None,
         "pooling_mode_weightedmean_tokens"),
        ({"pooling_mode": "weightedmean"}, None, "pooling_mode='weightedmean'"),
        ({**LEGACY, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": True}, None,
         "pooling_mode_cls_token, pooling_mode_mean_tokens"),
        (None, _modules("Transformer", "Pooling", "Dense", "Normalize"),
         "sentence_transformers.models.Dense"),
    ],
)  # fmt: skip
def test_unsupported_sentence_transformers_settings_are_refused(tmp_path, pooling, modules, match):
    folder = _edited_copy(tmp_path, pooling, modules)
    with pytest.raises(ValueError, match=rf"{re.escape(str(folder))}.*{match}"):
        load_backbone(f"hf:{folder}")
