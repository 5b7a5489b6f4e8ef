"""The safe format as a container: crafted or damaged files get one clean ValueError.

What a crafted file must not do: expand into memory, spawn processes, allocate huge
images, set attributes it should not, or escape as an exception from zipfile, json or
safetensors. And how ``save`` writes: through symlinks, with the umask, naming the path.
"""

import copy
import hashlib
import io
import json
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sktransfer
from sktransfer import FineTunedClassifier, PretrainedFeatureExtractor
from sktransfer.exceptions import SourceNotAllowedError

META, WEIGHTS = "sktransfer.json", "weights.safetensors"
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes and symlinks")


@pytest.fixture(scope="module")
def pipeline(crops):
    X, y = crops[0][::3], crops[1][::3]
    pipe = make_pipeline(
        PretrainedFeatureExtractor(image_size=32), StandardScaler(), LogisticRegression()
    )
    return pipe.fit(X, y)


@pytest.fixture(scope="module")
def models(crops, pipeline):
    X, y = crops[0][::3], crops[1][::3]
    clf = FineTunedClassifier(image_size=32, max_epochs=1, batch_size=4, random_state=0)
    return {"extractor": pipeline[0], "fine-tuned": clf.fit(X, y)}


@pytest.fixture()
def saved(pipeline, tmp_path):
    path = tmp_path / "pipe.skt"
    sktransfer.save(pipeline, path)
    return path


def _read(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read(META)), archive.read(WEIGHTS)


def _forge(path, edit_meta=None, weights=None):
    """Rewrite ``path`` with the description edited and checksums recomputed, as a forger can."""
    meta, old_weights = _read(path)
    if edit_meta is not None:
        edit_meta(meta)
    weights = old_weights if weights is None else weights
    meta["weights_sha256"] = hashlib.sha256(weights).hexdigest()
    body = {k: v for k, v in meta.items() if k != "metadata_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    meta["metadata_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(META, json.dumps(meta))
        archive.writestr(WEIGHTS, weights)


def _set_param(meta, key, value):
    """Set ``key`` in every parameter set of the description that has it."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("params"), dict) and key in node["params"]:
                node["params"][key] = value
                found.append(node)
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(meta)
    assert found, f"no parameter {key} in the file"


def _assert_clean(info, path):
    """One ValueError naming the file, with no zipfile/json/safetensors exception chained.

    A plain ValueError, or the refusal of a source (a ValueError that says which).
    """
    assert type(info.value) in (ValueError, SourceNotAllowedError)
    assert str(path) in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


# --- memory: a crafted file cannot expand
def test_a_deflate_bomb_is_refused_before_it_is_expanded(saved):
    meta, _ = _read(saved)
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w") as archive:
        archive.writestr(META, json.dumps(meta))
        # 100 MB of zeros in about 100 kB
        archive.writestr(WEIGHTS, bytes(100 * 1024**2), compress_type=zipfile.ZIP_DEFLATED)
    saved.write_bytes(bomb.getvalue())
    assert saved.stat().st_size < 1024**2
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="is compressed") as info:
            sktransfer.load(saved)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    _assert_clean(info, saved)
    assert peak < 8 * 1024**2


def _patch_central_sizes(data, name, size):
    """Return the zip bytes with ``name``'s sizes in the central directory set to ``size``."""
    at = data.index(b"PK\x01\x02")
    while True:
        name_len = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46 : at + 46 + name_len] == name.encode():
            break
        at = data.index(b"PK\x01\x02", at + 4)
    patched = bytearray(data)
    struct.pack_into("<II", patched, at + 20, size, size)  # compressed, uncompressed
    return bytes(patched)


def test_a_member_declaring_more_than_the_file_holds_is_refused(saved):
    saved.write_bytes(_patch_central_sizes(saved.read_bytes(), WEIGHTS, 2**31))
    with pytest.raises(ValueError, match=r"declares 2147483648 bytes; the whole file has") as info:
        sktransfer.load(saved)
    _assert_clean(info, saved)


def test_members_above_the_cap_are_refused(saved, monkeypatch):
    from sktransfer.persistence import _container

    monkeypatch.setattr(_container, "MAX_WEIGHTS_BYTES", 1000)
    with pytest.raises(ValueError, match="above the limit of 1000"):
        sktransfer.load(saved)


def test_deeply_nested_json_is_refused(saved):
    with zipfile.ZipFile(saved, "w") as archive:
        archive.writestr(META, "[" * 100_000 + "]" * 100_000)
        archive.writestr(WEIGHTS, b"")
    with pytest.raises(ValueError, match="not an sktransfer model file") as info:
        sktransfer.load(saved)
    _assert_clean(info, saved)


# --- fuzz: truncations and flipped bytes
def test_truncated_and_flipped_files_give_one_clean_value_error(tmp_path):
    # A pipeline that rebuilds in milliseconds: the few flips zipfile ignores (a date)
    # load, and each is checked to give the same model.
    X, y = np.random.default_rng(0).normal(size=(40, 20)), np.arange(40) % 3
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    expected = pipeline.predict_proba(X)
    saved = tmp_path / "pipe.skt"
    sktransfer.save(pipeline, saved)
    data = saved.read_bytes()
    with zipfile.ZipFile(saved) as archive:  # the description, the weights, the directory
        meta_end, central = archive.getinfo(WEIGHTS).header_offset, archive.start_dir
    rng = np.random.default_rng(0)
    damaged = [data[: int(n)] for n in rng.integers(0, len(data), 150)]
    for region in [(0, meta_end), (meta_end, central), (central, len(data))] * 50:
        at = int(rng.integers(*region))
        flipped = bytearray(data)
        flipped[at] ^= 1 << int(rng.integers(8))
        damaged.append(bytes(flipped))
    target = tmp_path / "damaged.skt"
    n_refused = 0
    for content in damaged:
        target.write_bytes(content)
        try:
            loaded = sktransfer.load(target)
        except ValueError as exc:
            assert type(exc) is ValueError and str(target) in str(exc)
            assert exc.__cause__ is None and exc.__suppress_context__
            n_refused += 1
        else:  # a byte zipfile ignores (a date): the model must be the same
            np.testing.assert_allclose(loaded.predict_proba(X), expected, atol=1e-6)
    assert n_refused > 0.9 * len(damaged)


# --- parameters are checked at load
@pytest.mark.parametrize("kind", ["extractor", "fine-tuned"])
def test_an_invalid_batch_size_fails_at_load(models, kind, tmp_path):
    path = tmp_path / "m.skt"
    sktransfer.save(models[kind], path)
    _forge(path, lambda meta: _set_param(meta, "batch_size", 0))
    with pytest.raises(ValueError, match="'batch_size' parameter") as info:
        sktransfer.load(path)
    _assert_clean(info, path)


def test_an_oversized_image_size_is_refused_before_anything_is_built(models, tmp_path):
    path = tmp_path / "m.skt"
    sktransfer.save(models["extractor"], path)
    _forge(path, lambda meta: _set_param(meta, "image_size", 3000))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="image_size"):
            sktransfer.load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024**2


@pytest.mark.parametrize("kind", ["extractor", "fine-tuned"])
def test_num_workers_is_capped_at_the_cpus_and_batch_size_at_its_limit(models, kind, tmp_path):
    path = tmp_path / "m.skt"
    sktransfer.save(models[kind], path)
    _forge(
        path,
        lambda meta: (_set_param(meta, "num_workers", 24), _set_param(meta, "batch_size", 10**6)),
    )
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        loaded = sktransfer.load(path)
    messages = [str(w.message) for w in record if w.category is UserWarning]
    assert {w.filename for w in record if w.category is UserWarning} == {__file__}
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert loaded.num_workers == min(24, cpus)
    assert loaded.batch_size == 1024
    assert any("saved with num_workers=24" in m for m in messages)
    assert any("saved with batch_size=1000000" in m for m in messages)


def test_a_saved_num_workers_within_the_cpus_is_kept(models, tmp_path):
    path = tmp_path / "m.skt"
    sktransfer.save(models["extractor"].set_params(num_workers=1), path)
    models["extractor"].set_params(num_workers=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sktransfer.load(path).num_workers == 1


def test_numpy_scalars_and_devices_are_stored_as_json(crops, tmp_path):
    import torch

    extractor = PretrainedFeatureExtractor(
        image_size=np.int64(32), batch_size=np.int32(4), device=torch.device("cpu")
    ).fit(crops[0][:2])
    sktransfer.save(extractor, tmp_path / "e.skt")
    params = _read(tmp_path / "e.skt")[0]["model"]["params"]
    assert (params["image_size"], params["batch_size"], params["device"]) == (32, 4, "cpu")
    loaded = sktransfer.load(tmp_path / "e.skt")
    np.testing.assert_allclose(loaded.transform(crops[0][:2]), extractor.transform(crops[0][:2]))


# --- what a crafted description may not do
def test_a_pipeline_memory_is_not_stored_and_a_crafted_one_refused(crops, tmp_path):
    X, y = crops[0][::3], crops[1][::3]
    cache = tmp_path / "cache"
    pipe = make_pipeline(StandardScaler(), LogisticRegression(), memory=str(cache))
    pipe.fit(X.reshape(len(X), -1)[:, :20], y)
    path = tmp_path / "p.skt"
    sktransfer.save(pipe, path)
    assert sktransfer.load(path).memory is None  # the cached steps there would be pickles
    _forge(path, lambda meta: _set_param(meta, "memory", str(cache)))
    with pytest.raises(ValueError, match="memory"):
        sktransfer.load(path)


@pytest.mark.parametrize("attr", ["transform", "__class__", "fit"])
def test_a_fitted_attribute_may_not_shadow_a_method(saved, attr):
    def edit(meta):
        scaler = meta["model"]["children"]["1"]
        scaler["state"][attr] = {"value": 1}

    _forge(saved, edit)
    with pytest.raises(ValueError, match=f"fitted attribute '{attr}'"):
        sktransfer.load(saved)


def test_tensors_no_part_uses_are_refused(saved):
    import torch
    from safetensors.torch import load, save

    _, weights = _read(saved)
    extra = save(load(weights) | {"payload": torch.zeros(1000)})
    _forge(saved, weights=extra)
    with pytest.raises(ValueError, match="tensors that no part uses"):
        sktransfer.load(saved)


def test_a_format_1_file_says_to_save_it_again(saved):
    _forge(saved, lambda meta: meta.update(format_version=1, sktransfer_version="0.1.0"))
    with pytest.raises(ValueError, match=r"written by an older sktransfer \(0.1.0\).*save it"):
        sktransfer.load(saved)


@pytest.mark.parametrize(
    "name", ["RandomForestClassifier", "Backbone", "sklearn.ensemble.RandomForestClassifier", "os"]
)
def test_a_class_outside_the_table_is_refused_and_nothing_is_imported(saved, name):
    _forge(saved, lambda meta: meta["model"].update(estimator=name))
    modules = set(sys.modules)
    with pytest.raises(ValueError, match=f"holds an unknown estimator '{name}'") as info:
        sktransfer.load(saved)
    _assert_clean(info, saved)
    assert set(sys.modules) == modules


def test_a_subclass_is_not_saved_as_its_base(crops, tmp_path):
    class MyExtractor(PretrainedFeatureExtractor):
        pass

    extractor = MyExtractor(image_size=32).fit(crops[0][:2])
    with pytest.raises(TypeError, match="got MyExtractor. Use joblib.dump"):
        sktransfer.save(extractor, tmp_path / "m.skt")
    assert list(tmp_path.iterdir()) == []


# --- how save writes
def test_save_into_a_missing_folder_names_the_path_given(pipeline, tmp_path):
    given = str(tmp_path / "no_such_folder" / "m.skt")
    with pytest.raises(FileNotFoundError, match="no_such_folder") as info:
        sktransfer.save(pipeline, given)
    assert info.value.filename == given


def test_save_onto_a_folder_names_it(pipeline, tmp_path):
    with pytest.raises(IsADirectoryError) as info:
        sktransfer.save(pipeline, tmp_path)
    assert info.value.filename == str(tmp_path)
    assert list(tmp_path.iterdir()) == []


@posix_only
def test_saved_files_follow_the_umask(pipeline, tmp_path):
    old = os.umask(0o022)
    try:
        sktransfer.save(pipeline, tmp_path / "m.skt")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.skt").stat().st_mode) == 0o644


@posix_only
def test_save_through_a_symlink_writes_its_target(pipeline, tmp_path):
    (tmp_path / "v1.skt").write_bytes(b"old")
    link = tmp_path / "current.skt"
    link.symlink_to(tmp_path / "v1.skt")
    sktransfer.save(pipeline, link)
    assert link.is_symlink() and os.readlink(link) == str(tmp_path / "v1.skt")
    assert isinstance(sktransfer.load(tmp_path / "v1.skt"), type(pipeline))


def test_a_class_list_that_does_not_match_the_stored_head_is_refused_before_building(
    models, tmp_path
):
    path = tmp_path / "m.skt"
    sktransfer.save(models["fine-tuned"], path)

    def many_classes(meta):
        meta["model"]["state"]["classes"] = [f"c{i}" for i in range(200_000)]

    _forge(path, many_classes)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="200000 outputs") as info:
            sktransfer.load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    _assert_clean(info, path)
    assert peak < 256 * 1024**2  # a 200,000-class head alone would be about 1 GB


@pytest.mark.parametrize("kind", ["extractor", "fine-tuned"])
def test_an_estimator_memory_is_not_stored_and_a_crafted_one_refused(models, tmp_path, kind):
    model = copy.deepcopy(models[kind]).set_params(memory=str(tmp_path / "cache"))
    path = tmp_path / "m.skt"
    sktransfer.save(model, path)
    assert sktransfer.load(path).memory is None  # a folder of this machine, not the model's
    _forge(path, lambda meta: _set_param(meta, "memory", str(tmp_path / "planted")))
    with pytest.raises(ValueError, match="memory folder is not stored") as info:
        sktransfer.load(path)
    _assert_clean(info, path)


_PEAK_OF_LOAD = """
import resource, sys
import sktransfer
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    sktransfer.load(sys.argv[1])
except ValueError as error:
    print(str(error))
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


@pytest.mark.parametrize("kind", ["extractor", "fine-tuned"])
def test_weights_that_do_not_fit_a_large_network_are_refused_before_it_is_built(
    models, tmp_path, kind
):
    """A file names ViT-L/16 (300M parameters, 1.2 GB) but holds none of its weights."""
    path = tmp_path / "m.skt"
    sktransfer.save(models[kind], path)

    def name_vit(meta):
        state = meta["model"]["state"]
        if kind == "extractor":
            assert state["backbone_"]["stored"] is False  # the bundled weights are named
            state["backbone_"].update(stored=True, spec="vit_l_16")
        else:
            state["spec"] = "vit_l_16"

    _forge(path, name_vit)
    with pytest.raises(ValueError, match="do not fit the 'vit_l_16' architecture") as info:
        sktransfer.load(path)
    _assert_clean(info, path)
    if kind != "extractor":
        return  # the message comes from the check made before building: once is enough below
    # in a fresh process, so that the peak is this load's own
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_OF_LOAD, str(path)],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ | {"SKTRANSFER_OFFLINE": "1"},
    )
    *message, grown_mb = done.stdout.strip().splitlines()
    assert "do not fit" in message[0]
    assert int(grown_mb) < 300


@pytest.mark.parametrize("weights", [None, "/tmp/weights.pth"])
def test_random_or_checkpoint_weights_said_to_be_left_out_are_refused(models, tmp_path, weights):
    """Only named weights are left out of a file: a claim otherwise would build for nothing."""
    path = tmp_path / "m.skt"
    sktransfer.save(models["extractor"], path)

    def claim(meta):
        meta["model"]["state"]["backbone_"].update(spec="vit_l_16", weights=weights)

    _forge(path, claim)
    with pytest.raises(ValueError, match="without storing them") as info:
        sktransfer.load(path)
    _assert_clean(info, path)


# --- what a file may make load read: the bundled models and the catalogues, unless allowed
@pytest.fixture(scope="module")
def text_folder(tmp_path_factory):
    """A model folder of this machine: the bundled text model's, copied (weights linked)."""
    from sktransfer.backbones._text_models import model_folder

    source = model_folder("all-MiniLM-L6-v2")
    folder = tmp_path_factory.mktemp("models") / "encoder"
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("model.safetensors"))
    (folder / "model.safetensors").symlink_to(source / "model.safetensors")
    return folder


@pytest.fixture()
def folders_read(monkeypatch):
    """The model folders and hub repositories looked up (none is, when a file is refused)."""
    from sktransfer.backbones import _text_models

    asked, original = [], _text_models.hub_folder

    def spy(repo):
        asked.append(repo)
        return original(repo)

    monkeypatch.setattr(_text_models, "hub_folder", spy)
    return asked


@pytest.mark.parametrize(
    "source",
    ["hf:{folder}", "hf:{folder}/../../{up}", "hf:someone/any-model", "timm:hf-hub:someone/net"],
    ids=["folder", "dotdot", "hub", "timm-hub"],
)
@pytest.mark.parametrize("kind", ["extractor", "fine-tuned"])
def test_a_file_cannot_point_load_at_a_folder_or_repository(
    models, tmp_path, text_folder, folders_read, kind, source
):
    spec = source.format(folder=text_folder, up=text_folder.relative_to(text_folder.parents[1]))
    path = tmp_path / "m.skt"
    sktransfer.save(models[kind], path)

    def point_at(meta):
        model = meta["model"]
        model["params"]["backbone"] = spec
        if kind == "extractor":
            model["state"]["backbone_"]["spec"] = spec
        else:
            model["state"]["spec"] = spec

    _forge(path, point_at)
    hint = rf"allow_sources=\[{re.escape(repr(spec))}\]"
    with pytest.raises(ValueError, match=rf"names the backbone {re.escape(repr(spec))}.*{hint}"):
        sktransfer.load(path)
    assert folders_read == []
    # the backbone parameter alone (what a refit would load) is refused too
    sktransfer.save(models[kind], path)
    _forge(path, lambda meta: meta["model"]["params"].update(backbone=spec))
    with pytest.raises(ValueError, match=hint) as info:
        sktransfer.load(path)
    _assert_clean(info, path)
    assert folders_read == []


def test_a_model_of_a_folder_loads_where_the_caller_allows_its_source(text_folder, tmp_path):
    texts = ["a cat on the mat", "The team won the match.", "short", "rain again today"]
    spec = f"hf:{text_folder}"
    model = PretrainedFeatureExtractor(spec, batch_size=4).fit(texts)
    expected = model.transform(texts)
    path = tmp_path / "text.skt"
    sktransfer.save(model, path)  # saving needs no permission

    with pytest.raises(ValueError, match=rf"{re.escape(str(path))} names the backbone"):
        sktransfer.load(path)
    with pytest.raises(ValueError, match="allow_sources"):
        sktransfer.load(path, allow_sources=[f"hf:{tmp_path}", "hf:someone/any-model"])
    for allowed in (spec, [f"hf:{text_folder}/"], ("all-MiniLM-L6-v2", spec), "any"):
        loaded = sktransfer.load(path, allow_sources=allowed)
        np.testing.assert_allclose(loaded.transform(texts), expected, atol=1e-6)
    for bad in (True, [spec, 3]):
        with pytest.raises(TypeError, match="allow_sources must be 'any'"):
            sktransfer.load(path, allow_sources=bad)
