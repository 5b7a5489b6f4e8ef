"""Model folders: what a text model's folder must hold, and what a damaged one gives.

Every test copies the bundled model's folder into ``tmp_path`` (the weights linked, never
written through), damages the copy the way a user or a failed copy would, and loads it as
``"hf:/path"``: a folder is used only when it is whole, and an error names the file.
"""

import json
import os
import pickle
import re
import shutil
import time
import zipfile

import numpy as np
import pytest

import sktransfer
from sktransfer import FineTunedClassifier, PretrainedFeatureExtractor, load_backbone
from sktransfer.backbones import build_backbone
from sktransfer.backbones._text_models import model_folder

pytest.importorskip("transformers")

MODEL = "all-MiniLM-L6-v2"
LOVE_HATE = ["I love this film", "I hate this film"]


def _copy(tmp_path, name="model"):
    """A copy of the bundled model's folder; its weights file is a link to the original."""
    source = model_folder(MODEL)
    folder = tmp_path / name
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("model.safetensors"))
    (folder / "model.safetensors").symlink_to(source / "model.safetensors")
    return folder


def _edit_json(path, edit):
    value = json.loads(path.read_text())
    path.write_text(json.dumps(edit(value) or value))


def _swap_tokens(folder, a, b):
    """Give the tokens ``a`` and ``b`` each other's ids in the folder's tokenizer."""

    def swap(tokenizer):
        vocab = tokenizer["model"]["vocab"]
        vocab[a], vocab[b] = vocab[b], vocab[a]

    _edit_json(folder / "tokenizer.json", swap)


def _refused(folder, match, error=ValueError):
    with pytest.raises(error, match=match) as info:
        load_backbone(f"hf:{folder}")
    return str(info.value)


# --- a folder is checked before use ---------------------------------------------------
def test_a_folder_without_tokenizer_files_is_refused_naming_them(tmp_path):
    folder = _copy(tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (folder / name).unlink()
    # without the files, transformers builds a 5-token vocabulary: every word is [UNK]
    _refused(
        folder, rf"{re.escape(str(folder))}.*tokenizer\.json.*tokenizer_config\.json", OSError
    )


def test_a_tokenizer_that_does_not_fit_the_embedding_table_is_refused(tmp_path):
    folder = _copy(tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (folder / name).unlink()
    (folder / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")  # 5 tokens
    _refused(folder, rf"{re.escape(str(folder))}.* 5 tokens.*30522")


def _archive_bytes(name):
    import importlib.util

    package = importlib.util.find_spec("all_minilm_l6_v2").submodule_search_locations[0]
    with zipfile.ZipFile(os.path.join(package, "model.zip")) as zf:
        return zf.read(name)


@pytest.mark.parametrize("damage", ["deleted", "same size", "extra file"])
def test_the_bundled_folder_is_checked_against_its_archive(tmp_path, damage):
    with sktransfer.config_context(models_folder=tmp_path / "home"):
        folder = model_folder(MODEL)
        tokenizer = folder / "tokenizer.json"
        if damage == "deleted":
            tokenizer.unlink()
        elif damage == "same size":  # an edit that keeps the size: only the CRC tells
            data = tokenizer.read_bytes()
            tokenizer.write_bytes(data.replace(b'"love"', b'"lovE"'))
            assert tokenizer.stat().st_size == len(data)
        else:
            (folder / "vocab.txt").write_text("[PAD]\n[UNK]\n")
        again = model_folder(MODEL)
    assert again == folder  # unpacked again in its place
    assert tokenizer.read_bytes() == _archive_bytes("tokenizer.json")
    assert not (folder / "vocab.txt").exists()


# --- the tokenizer is part of a text model's identity --------------------------------
def test_the_tokenizer_digest_names_the_pipeline(tmp_path):
    first, second = _copy(tmp_path, "first"), _copy(tmp_path, "second")
    _swap_tokens(second, "love", "hate")
    a = build_backbone(f"hf:{first}", "DEFAULT").preprocessing
    b = build_backbone(f"hf:{second}", "DEFAULT").preprocessing
    assert a.tokenizer_digest != b.tokenizer_digest
    assert a.tokenizer_digest in repr(a) and b.tokenizer_digest in repr(b)
    assert a.describe()["tokenizer_digest"] == a.tokenizer_digest


def test_features_cached_under_another_tokenizer_are_not_served(tmp_path):
    folder = _copy(tmp_path)

    def features():  # a fresh build, as in a new process
        backbone = build_backbone(f"hf:{folder}", "DEFAULT")
        extractor = PretrainedFeatureExtractor(backbone, memory=str(tmp_path / "cache"))
        return extractor.fit(LOVE_HATE).transform(LOVE_HATE)

    before = features()
    _swap_tokens(folder, "love", "hate")
    after = features()
    assert not np.allclose(before[0], before[1], atol=1e-3)
    np.testing.assert_allclose(after, before[::-1], atol=1e-5)  # computed, not served


def test_a_tokenizer_changed_within_a_process_is_never_ignored(tmp_path):
    folder = _copy(tmp_path)
    with sktransfer.config_context(shared_cache_size=0):
        before = PretrainedFeatureExtractor(f"hf:{folder}").fit(LOVE_HATE).transform(LOVE_HATE)
        _swap_tokens(folder, "love", "hate")
        extractor = PretrainedFeatureExtractor(f"hf:{folder}").fit(LOVE_HATE)
        try:  # the process keeps the backbone it built: refused, or built again
            after = extractor.transform(LOVE_HATE)
        except ValueError as exc:
            assert re.search(rf"tokenizer files in {re.escape(str(folder))} differ", str(exc))
        else:
            np.testing.assert_allclose(after, before[::-1], atol=1e-5)


def test_another_pooling_mode_gets_another_cache_namespace(tmp_path):
    folder = _copy(tmp_path)

    def features():
        backbone = build_backbone(f"hf:{folder}", "DEFAULT")
        extractor = PretrainedFeatureExtractor(backbone, memory=str(tmp_path / "cache"))
        return extractor.fit(LOVE_HATE).transform(LOVE_HATE)

    mean = features()
    _edit_json(folder / "1_Pooling" / "config.json", lambda _: {"pooling_mode": "cls"})
    cls = features()
    with sktransfer.config_context(shared_cache_size=0):  # computed, with no cache at all
        backbone = build_backbone(f"hf:{folder}", "DEFAULT")
        expected = PretrainedFeatureExtractor(backbone).fit(LOVE_HATE).transform(LOVE_HATE)
    assert not np.allclose(mean, cls, atol=1e-3)
    np.testing.assert_allclose(cls, expected, atol=1e-5)


@pytest.fixture
def fine_tuned(tmp_path):
    folder = _copy(tmp_path)
    texts, y = LOVE_HATE * 4, [1, 0] * 4
    clf = FineTunedClassifier(f"hf:{folder}", n_frozen="all", max_epochs=1, random_state=0)
    return folder, clf.fit(texts, y)


def test_a_safe_file_saved_with_another_tokenizer_is_refused(fine_tuned, tmp_path):
    folder, clf = fine_tuned
    sktransfer.save(clf, tmp_path / "model.skt")
    np.testing.assert_allclose(
        sktransfer.load(tmp_path / "model.skt", allow_sources="any").predict_proba(LOVE_HATE),
        clf.predict_proba(LOVE_HATE),
        atol=1e-6,
    )
    _swap_tokens(folder, "love", "hate")
    with pytest.raises(ValueError, match=r"tokenizer.*differ"):
        sktransfer.load(tmp_path / "model.skt", allow_sources="any")


def test_a_pickle_loaded_after_its_tokenizer_changed_refuses_to_predict(fine_tuned):
    folder, clf = fine_tuned
    blob = pickle.dumps(clf)
    _swap_tokens(folder, "love", "hate")
    loaded = pickle.loads(blob)
    with pytest.raises(ValueError, match=rf"tokenizer.*{re.escape(str(folder))}.*differ"):
        loaded.predict_proba(["I love this book", "I hate this book"])  # new texts: tokenised


def test_a_description_without_a_tokenizer_digest_restores(tmp_path):
    pipeline = load_backbone(MODEL).preprocessing
    old = {"spec": MODEL, "max_length": 64, "model_max_length": 512}  # files of before
    assert pipeline.restore(old).max_length == 64
    assert pipeline.restore(old).tokenizer_digest == pipeline.tokenizer_digest
    with pytest.raises(ValueError, match="tokenizer"):
        pipeline.restore({**old, "tokenizer_digest": "0" * 64})


# --- every path stays inside the folder ----------------------------------------------
def _modules(folder, pooling_path):
    def edit(modules):
        modules[1]["path"] = pooling_path

    _edit_json(folder / "modules.json", edit)


def test_a_module_path_outside_the_folder_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "config.json").write_text(json.dumps({"pooling_mode": "cls"}))
    folder = _copy(tmp_path / "deep" / "er")
    for path in ("../../../outside", str(outside)):
        _modules(folder, path)
        _refused(folder, rf"modules\.json.*{re.escape(repr(path))}.*outside the model folder")


def test_a_missing_pooling_folder_is_an_error_not_mean_pooling(tmp_path):
    folder = _copy(tmp_path)
    shutil.rmtree(folder / "1_Pooling")
    _refused(folder, rf"{re.escape(str(folder / '1_Pooling'))}.*does not exist", OSError)


# --- a malformed file is named -------------------------------------------------------
def _truncate(path):
    data = path.resolve().read_bytes()
    path.unlink()  # the link: the original is never written
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    "file, damage, match",
    [
        ("modules.json", lambda p: p.write_text("[{not json"), "not valid JSON"),
        ("modules.json", lambda p: _edit_json(p, lambda m: {"0": m[0]}), "a JSON list"),
        ("1_Pooling/config.json", lambda p: p.write_text("{"), "not valid JSON"),
        ("sentence_bert_config.json", lambda p: _edit_json(p, lambda c: {"max_seq_length": "abc"}),
         "max_seq_length.*'abc'"),
        ("config.json", lambda p: p.write_text("{,}"), "not valid JSON"),
        ("tokenizer.json", lambda p: p.write_text('{"version": "1.0", '), "not valid JSON"),
        ("tokenizer_config.json", lambda p: p.write_text("[]"), "a JSON object"),
        ("model.safetensors", _truncate, "cannot be read.*SafetensorError"),
        ("config.json", lambda p: _edit_json(p, lambda c: {**c, "num_hidden_layers": 12}),
         r"96 weights .* missing \(first: 'encoder\.layer\.10\."),
        ("config.json", lambda p: _edit_json(p, lambda c: {**c, "num_hidden_layers": 3}),
         r"48 weights .* unexpected \(first: 'encoder\.layer\.3\."),
    ],
)  # fmt: skip
def test_a_malformed_file_is_named(tmp_path, file, damage, match):
    folder = _copy(tmp_path)
    damage(folder / file)
    message = _refused(folder, match)
    assert str(folder / file) in message


# --- where models live --------------------------------------------------------------
def test_a_missing_local_folder_is_named_not_looked_up_on_the_hub(tmp_path):
    missing = tmp_path / "missing" / "dir"
    with pytest.raises(FileNotFoundError, match=rf"{re.escape(str(missing))} does not exist"):
        load_backbone(f"hf:{missing}")


def test_an_unusable_models_folder_says_how_to_move_it(tmp_path):
    home = tmp_path / "a file"
    home.write_text("not a folder")
    with sktransfer.config_context(models_folder=home), pytest.raises(OSError) as info:
        model_folder(MODEL)
    message = str(info.value)
    assert str(home) in message and "set_config(models_folder=" in message
    assert "SKTRANSFER_HOME" in message


def test_folders_of_replaced_versions_are_removed(tmp_path):
    models = tmp_path / "home" / "models"
    old, recent = models / f"{MODEL}-1-2", models / f"{MODEL}-3-4"
    crashed, other = models / f".{MODEL}-x1y2", models / "other-model-1-2"
    for path in (old, recent, crashed, other):
        path.mkdir(parents=True)
        (path / "config.json").write_text("{}")
    hours_ago = time.time() - 3 * 3600
    for path in (old, crashed, other):
        os.utime(path, (hours_ago, hours_ago))
    with sktransfer.config_context(models_folder=tmp_path / "home"):
        folder = model_folder(MODEL)
    assert sorted(p.name for p in models.iterdir()) == sorted(
        [folder.name, recent.name, other.name]  # another process may be using `recent`
    )
