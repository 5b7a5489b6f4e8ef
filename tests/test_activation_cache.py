"""The activation cache: rows computed once per input and computation, shared and exact.

The estimators are reached as ``sktransfer.<name>`` (loaded on first use): the processes
that the concurrency test spawns import this module, and should start fast.
"""

import multiprocessing
import os
import threading

import numpy as np
import pytest
import torch
from PIL import Image

import sktransfer
from sktransfer._core.activations import (
    cache_info,
    cached_rows,
    clear_cache,
    input_keys,
    make_namespace,
    module_digest,
    prefix_rows,
    shared_store_bytes,
)
from sktransfer._modalities import ImageList, TextList, check_images, check_texts

MB = 2**20


@pytest.fixture(autouse=True)
def _empty_store():
    clear_cache()
    yield
    clear_cache()


class Counting:
    """A computation of rows from keys that records which positions it was asked for."""

    def __init__(self, keys, width=4):
        self.keys, self.width, self.asked = keys, width, []

    def row(self, key):
        seed = int(key[:12], 16)
        return torch.randn(self.width, generator=torch.Generator().manual_seed(seed))

    def __call__(self, indices):
        self.asked += indices.tolist()
        return torch.stack([self.row(self.keys[i]) for i in indices])

    def expected(self, keys):
        return torch.stack([self.row(key) for key in keys])


def bits(tensor):
    """The tensor's exact bit pattern (equal floats with other bits, e.g. -0.0, differ)."""
    return tensor.contiguous().view(torch.int32)


def image_keys(X):
    return input_keys(check_images(X))


def text_keys(n, prefix="text"):
    return input_keys(check_texts([f"{prefix} {i}" for i in range(n)]))


def key_of(item, kind):
    """The content key of one input, as its modality's checked container gives it."""
    inputs = TextList([item]) if kind == "texts" else ImageList([item], kind)
    return inputs.content_keys()[0]


# --- keys ------------------------------------------------------------------------------------
def test_equal_arrays_give_equal_keys_and_any_difference_a_new_key():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    key = key_of(a, "arrays")
    assert key_of(a.copy(), "arrays") == key
    assert key_of(np.asfortranarray(a), "arrays") == key  # same pixels, other memory
    one_pixel = a.copy()
    one_pixel[3, 4, 1] ^= 1
    assert key_of(one_pixel, "arrays") != key
    assert key_of(a.reshape(16, 48), "arrays") != key  # same bytes, another shape
    assert key_of((a / 255).astype(np.float32), "arrays") != key  # another dtype
    # rows of one stacked array are keyed like the same images given one by one
    stack = np.stack([a, one_pixel])
    assert image_keys(stack) == image_keys([a, one_pixel])


def test_equal_pil_images_give_equal_keys_and_orientation_or_palette_matter():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    key = key_of(image, "pil")
    assert key_of(Image.fromarray(pixels.copy()), "pil") == key
    assert key_of(image.convert("L"), "pil") != key
    turned = Image.fromarray(pixels)
    turned.getexif()[0x0112] = 6  # decoded upright, i.e. rotated: other pixels
    assert key_of(turned, "pil") != key
    indices = Image.fromarray(pixels[..., 0] % 4).convert("P")
    repainted = indices.copy()
    repainted.putpalette([255 - v for v in indices.getpalette()])
    assert key_of(repainted, "pil") != key_of(indices, "pil")


def test_text_keys_follow_the_text_exactly():
    keys = input_keys(check_texts(["a cat", "a cat", "a  cat", "A cat", "un chat é", "un chat é"]))
    assert keys[0] == keys[1] and keys[4] == keys[5]
    assert len(set(keys)) == 4
    # a text and a file path with the same characters are different inputs
    assert key_of("a cat", "texts") != key_of(__file__, "paths")
    with pytest.raises(TypeError, match="not a string"):
        check_texts(["a cat", 3])


def _save(path, pixels):
    Image.fromarray(pixels).save(path)


def test_a_rewritten_file_gets_a_new_key_and_its_row_is_computed_again(tmp_path):
    rng = np.random.default_rng(0)
    paths = [str(tmp_path / f"{i}.png") for i in range(4)]
    for path in paths:
        _save(path, rng.integers(0, 256, (20, 20, 3), dtype=np.uint8))
    ns = make_namespace("files")
    keys = image_keys(paths)
    compute = Counting(keys)
    cached_rows(ns, keys, compute)

    _save(paths[1], rng.integers(0, 256, (24, 24, 3), dtype=np.uint8))  # new size
    same_size = tmp_path / "3.png"
    stat = os.stat(same_size)
    data = same_size.read_bytes()
    same_size.write_bytes(data[:-1] + bytes([data[-1]]))  # same bytes, rewritten
    os.utime(same_size, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))

    new_keys = image_keys(paths)
    assert new_keys[0] == keys[0] and new_keys[2] == keys[2]
    assert new_keys[1] != keys[1] and new_keys[3] != keys[3]
    compute.keys, compute.asked = new_keys, []
    cached_rows(ns, new_keys, compute)
    assert compute.asked == [1, 3]


def test_a_file_deleted_after_checking_is_named():
    with pytest.raises(FileNotFoundError, match="no_such_image.png"):
        key_of("no_such_image.png", "paths")


# --- the store -------------------------------------------------------------------------------
def test_only_missing_rows_are_computed_and_each_key_once():
    keys = text_keys(10)
    ns = make_namespace("reuse")
    compute = Counting(keys)
    first = cached_rows(ns, keys[:6], compute)
    assert compute.asked == [0, 1, 2, 3, 4, 5]
    wanted = [keys[i] for i in (8, 2, 9, 2, 5, 8)]  # folds overlap; repeats come once
    compute.keys, compute.asked = wanted, []
    rows = cached_rows(ns, wanted, compute)
    assert compute.asked == [0, 2]  # the first places of the two new keys
    assert torch.equal(bits(rows), bits(compute.expected(wanted)))
    assert torch.equal(bits(rows[1]), bits(first[2]))
    compute.asked = []
    cached_rows(ns, wanted, compute)
    assert compute.asked == []


def test_another_namespace_computes_again():
    backbone = sktransfer.load_backbone(
        torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten())
    )
    keys = text_keys(3)
    compute = Counting(keys)
    before = make_namespace(backbone.weights_digest(), "layer=None")
    cached_rows(before, keys, compute)
    with torch.no_grad():
        next(backbone.net.parameters())[0, 0, 0, 0] += 1e-3  # new weights, same shapes
    after = make_namespace(backbone.weights_digest(), "layer=None")
    assert after != before
    compute.asked = []
    cached_rows(after, keys, compute)
    assert compute.asked == [0, 1, 2]
    compute.asked = []
    cached_rows(make_namespace(backbone.weights_digest(), "layer='blocks3'"), keys, compute)
    assert compute.asked == [0, 1, 2]


def test_a_stage_digest_follows_its_weights_and_buffers():
    def stage():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))

    a, b = stage(), stage()
    assert module_digest(a) == module_digest(b)
    assert module_digest(a) == module_digest(a.to(memory_format=torch.channels_last))
    b[1].running_mean[0] += 1e-6  # a buffer, not a parameter
    assert module_digest(a) != module_digest(b)
    b = stage()
    with torch.no_grad():
        b[0].weight[0, 0, 0, 0] = -b[0].weight[0, 0, 0, 0]
    assert module_digest(a) != module_digest(b)


def test_cached_rows_are_bit_identical_to_an_uncached_extractor(sample_photos, tmp_path):
    X = np.stack(
        [
            photo[i * 40 : i * 40 + 48, i * 50 : i * 50 + 48]
            for photo in sample_photos
            for i in range(4)
        ]
    )
    extractor = sktransfer.PretrainedFeatureExtractor(image_size=32, batch_size=4).fit(X)
    plain = extractor.transform(X)
    keys = image_keys(X)
    ns = make_namespace(extractor.backbone_.weights_digest(), "final features")

    def compute(indices):
        return torch.from_numpy(extractor.transform(X[indices]))

    def fail(indices):
        raise AssertionError(f"computed {indices} again")

    first = cached_rows(ns, keys, compute, memory=tmp_path).numpy()
    assert first.dtype == np.float32 and first.tobytes() == plain.tobytes()
    again = cached_rows(ns, keys[2:7], fail).numpy()
    assert again.tobytes() == plain[2:7].tobytes()
    clear_cache()  # another process: only the folder has them
    from_disk = cached_rows(ns, keys, fail, shared=False, memory=tmp_path).numpy()
    assert from_disk.tobytes() == plain.tobytes()


def computed(ns, wanted, store_bytes):
    """Call cached_rows with the store bounded by ``store_bytes``; return what it computed."""
    compute = Counting(wanted)
    with sktransfer.config_context(shared_cache_size=store_bytes / MB):
        cached_rows(ns, wanted, compute)
    return compute.asked


def test_the_store_is_bounded_and_evicts_the_least_recently_used_rows():
    keys = text_keys(6)
    ns = make_namespace("lru")  # rows of 4 float32: 16 bytes each
    assert computed(ns, keys[:3], store_bytes=48) == [0, 1, 2]
    assert computed(ns, keys[:1], store_bytes=48) == []  # keys[0] used again: keys[1] oldest
    assert computed(ns, keys[3:4], store_bytes=48) == [0]
    assert cache_info() == {"rows": 3, "nbytes": 48, "namespaces": 1}
    assert computed(ns, keys[:4], store_bytes=48) == [1]
    assert computed(ns, keys[4:5], store_bytes=20) == [0]  # a smaller bound applies at once
    assert cache_info()["nbytes"] == 16
    computed(ns, keys[5:], store_bytes=8)  # a row over the bound is not stored
    assert cache_info()["nbytes"] == 0


def test_the_bound_is_the_setting_read_at_every_call():
    assert shared_store_bytes() == sktransfer.get_config()["shared_cache_size"] * MB
    keys = text_keys(4)
    ns = make_namespace("setting")
    assert computed(ns, keys, store_bytes=64) == [0, 1, 2, 3]
    with sktransfer.config_context(shared_cache_size=32 / MB):
        assert shared_store_bytes() == 32
        cached_rows(ns, keys[3:], Counting(keys[3:]))  # trims the store to its new bound
    assert cache_info() == {"rows": 2, "nbytes": 32, "namespaces": 1}
    assert computed(ns, keys[2:], store_bytes=64) == []  # the two most recently used stay
    assert computed(ns, keys[:2], store_bytes=64) == [0, 1]


def test_without_the_store_or_memory_every_call_computes_everything():
    keys = text_keys(3)
    compute = Counting(keys)
    cached_rows(make_namespace("off"), keys, compute, shared=False)
    with sktransfer.config_context(shared_cache_size=0):  # off for every caller
        assert shared_store_bytes() == 0
        cached_rows(make_namespace("off"), keys, compute)
    cached_rows(make_namespace("off"), keys, compute, shared=False)
    assert compute.asked == [0, 1, 2] * 3
    assert cache_info()["rows"] == 0


def test_a_negative_store_size_is_refused_and_changes_nothing():
    keys = text_keys(2)
    assert computed(make_namespace("kept"), keys, store_bytes=MB) == [0, 1]
    with pytest.raises(ValueError, match="shared_cache_size must be a number of MiB >= 0"):
        sktransfer.set_config(shared_cache_size=-1)
    assert sktransfer.get_config()["shared_cache_size"] == 1024
    assert computed(make_namespace("kept"), keys, store_bytes=MB) == []


def test_threads_share_one_consistent_store():
    keys = text_keys(40)
    ns = make_namespace("threads")
    reference = Counting(keys).expected(keys)
    errors = []

    def work(offset):
        try:
            for step in range(30):
                start = (offset * 7 + step * 3) % 30
                wanted = keys[start : start + 10]
                rows = cached_rows(ns, wanted, Counting(wanted))
                assert torch.equal(bits(rows), bits(reference[start : start + 10]))
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    with sktransfer.config_context(shared_cache_size=16 * 25 / MB):  # threads started in it
        for thread in threads:  # see its bound
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors
    info = cache_info()
    assert info["nbytes"] == 16 * info["rows"] <= 16 * 25


def test_rows_of_one_namespace_keep_one_layout():
    keys = text_keys(3)
    ns = make_namespace("layout")
    cached_rows(ns, keys[:2], Counting(keys, width=4))
    with pytest.raises(ValueError, match="namespace must name everything"):
        cached_rows(ns, keys, Counting(keys, width=5))
    with pytest.raises(ValueError, match="2 rows"):
        cached_rows(make_namespace("short"), keys[:2], lambda i: torch.zeros(1, 4))


def test_rows_with_several_parts_keep_their_dtypes(tmp_path):
    keys = text_keys(5)

    def compute(indices):
        hidden = torch.randn(len(indices), 3, 2)
        mask = torch.tensor([[1, 1, i % 2] for i in indices], dtype=torch.int64)
        return {"mask": mask, "hidden": hidden}

    ns = make_namespace("text stage")
    first = cached_rows(ns, keys[:3], compute, shared=False, memory=tmp_path)
    rows = cached_rows(ns, keys, compute, memory=tmp_path)
    assert rows["mask"].dtype == torch.int64 and rows["hidden"].dtype == torch.float32
    assert torch.equal(bits(rows["hidden"][:3]), bits(first["hidden"]))
    assert torch.equal(rows["mask"][:3], first["mask"])


# --- the memory folder -----------------------------------------------------------------------
def _files(folder):
    return sorted(os.path.join(root, name) for root, _, names in os.walk(folder) for name in names)


def test_an_unreadable_file_is_computed_again_and_rewritten(tmp_path):
    keys = text_keys(4)
    ns = make_namespace("corrupt")
    compute = Counting(keys)
    expected = cached_rows(ns, keys, compute, shared=False, memory=tmp_path)
    files = _files(tmp_path)
    assert len(files) == 4 and all(f.endswith(".safetensors") for f in files)
    with open(files[0], "r+b") as f:
        f.truncate(20)
    with open(files[1], "wb") as f:
        f.write(b"not safetensors")
    compute.asked = []
    rows = cached_rows(ns, keys, compute, shared=False, memory=tmp_path)
    assert len(compute.asked) == 2
    assert torch.equal(bits(rows), bits(expected))
    compute.asked = []
    cached_rows(ns, keys, compute, shared=False, memory=tmp_path)
    assert compute.asked == []


def test_memory_takes_a_folder_or_a_joblib_memory_and_names_a_bad_one(tmp_path):
    import joblib

    keys = text_keys(2)
    compute = Counting(keys)
    ns = make_namespace("joblib")
    cached_rows(ns, keys, compute, shared=False, memory=joblib.Memory(tmp_path, verbose=0))
    cached_rows(ns, keys, compute, shared=False, memory=str(tmp_path))
    assert compute.asked == [0, 1]
    cached_rows(ns, keys, compute, shared=False, memory=joblib.Memory(None))  # no folder
    assert compute.asked == [0, 1, 0, 1]
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    with pytest.raises(NotADirectoryError, match="a_file"):
        cached_rows(ns, keys, compute, shared=False, memory=a_file)
    with pytest.raises(TypeError, match="memory must be"):
        cached_rows(ns, keys, compute, shared=False, memory=3)


def test_rows_kept_in_memory_reach_a_folder_given_later(tmp_path):
    keys = text_keys(3)
    ns = make_namespace("later")
    compute = Counting(keys)
    cached_rows(ns, keys, compute)
    cached_rows(ns, keys, compute, memory=tmp_path)
    clear_cache()
    cached_rows(ns, keys, compute, shared=False, memory=tmp_path)
    assert compute.asked == [0, 1, 2]


N_CONCURRENT = 150


def _write_rows(folder, barrier):
    keys = text_keys(N_CONCURRENT)
    barrier.wait()
    ns = make_namespace("concurrent")
    cached_rows(ns, keys, Counting(keys, width=512), shared=False, memory=folder)


def test_two_processes_writing_the_same_rows_leave_readable_identical_files(tmp_path):
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    workers = [
        context.Process(target=_write_rows, args=(str(tmp_path), barrier)) for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    assert [worker.exitcode for worker in workers] == [0, 0]
    files = _files(tmp_path)
    assert len(files) == N_CONCURRENT  # no temporary file left behind
    keys = text_keys(N_CONCURRENT)

    def fail(indices):
        raise AssertionError(f"rows {indices.tolist()} were not readable")

    rows = cached_rows(make_namespace("concurrent"), keys, fail, shared=False, memory=tmp_path)
    assert torch.equal(bits(rows), bits(Counting(keys, width=512).expected(keys)))


# --- prefixes of a staged network ------------------------------------------------------------
class Stages:
    """A 4-stage network over one input vector per key; records the stages it runs."""

    def __init__(self, keys):
        self.keys = keys
        torch.manual_seed(0)
        self.trunk = torch.nn.Sequential(
            *[torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Tanh()) for _ in range(4)]
        ).requires_grad_(False)
        self.inputs = Counting(keys, width=8)
        self.runs = []

    def __call__(self, start, stop, rows, indices):
        self.runs.append((start, stop, indices.tolist()))
        x = self.inputs.expected([self.keys[i] for i in indices]) if rows is None else rows
        return self.trunk[start:stop](x)

    def namespaces(self, stop, kept):
        return [make_namespace("stages", i + 1) if i in kept else None for i in range(stop)]

    def expected(self, stop):
        return self.trunk[:stop](self.inputs.expected(self.keys))


def test_a_deep_prefix_leaves_the_named_shallower_outputs_behind():
    keys = text_keys(6)
    net = Stages(keys)
    rows = prefix_rows(net.namespaces(4, kept={1, 2, 3}), keys, net)
    assert torch.equal(bits(rows), bits(net.expected(4)))
    assert [run[:2] for run in net.runs] == [(0, 2), (2, 3), (3, 4)]
    net.runs = []
    rows = prefix_rows(net.namespaces(3, kept={1, 2}), keys, net)
    assert net.runs == [] and torch.equal(bits(rows), bits(net.expected(3)))


def test_a_deeper_prefix_continues_from_the_deepest_stage_cached_for_each_input():
    keys = text_keys(6)
    net = Stages(keys)
    prefix_rows(net.namespaces(2, kept={1}), keys[:4], net)
    net.runs = []
    rows = prefix_rows(net.namespaces(4, kept={1, 3}), keys, net)
    # the first four inputs continue from stage 2; the two new ones run from the input
    assert sorted(net.runs) == [(0, 2, [4, 5]), (2, 4, [0, 1, 2, 3, 4, 5])]
    assert torch.allclose(rows, net.expected(4), atol=1e-6, rtol=0)
    net.runs = []
    prefix_rows(net.namespaces(4, kept={1, 3}), keys, net)
    assert net.runs == []


def test_prefix_rows_without_any_cache_runs_all_stages_at_once():
    keys = text_keys(3)
    net = Stages(keys)
    for _ in range(2):
        prefix_rows(net.namespaces(4, kept={1, 3}), keys, net, shared=False)
    assert net.runs == [(0, 4, [0, 1, 2])] * 2
    with pytest.raises(ValueError, match="cannot be None"):
        prefix_rows(net.namespaces(4, kept={1}), keys, net)


# --- the estimators share it -----------------------------------------------------------------
FAST = {"image_size": 32, "batch_size": 8}


@pytest.fixture
def computed_rows(monkeypatch):
    """Count the rows each estimator computes: the extractor's, and each stage run's."""
    import sktransfer._extractor as extractor_module
    import sktransfer._fine_tuning._cache as prefix_cache

    counts = {"features": 0, "stages": []}
    run_batches, run_stages = extractor_module.run_batches, prefix_cache._StageRunner.__call__

    def counting_batches(fn, batches, n, device):
        counts["features"] += n
        return run_batches(fn, batches, n, device)

    def counting_stages(self, start, stop, rows, indices):
        counts["stages"].append((start, stop, len(indices)))
        return run_stages(self, start, stop, rows, indices)

    monkeypatch.setattr(extractor_module, "run_batches", counting_batches)
    monkeypatch.setattr(prefix_cache._StageRunner, "__call__", counting_stages)
    return counts


def test_a_pipeline_search_computes_each_image_once(crops, computed_rows):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline

    X, y = crops
    searches = {}
    for size in (0, 64):
        pipe = Pipeline(
            [
                ("features", sktransfer.PretrainedFeatureExtractor(**FAST)),
                ("clf", LogisticRegression(max_iter=500)),
            ]
        )
        computed_rows["features"] = 0
        grid = {"clf__C": [0.1, 1.0]}
        with sktransfer.config_context(shared_cache_size=size):
            searches[size] = GridSearchCV(pipe, grid, cv=3, scoring="neg_log_loss").fit(X, y)
        searches[size].n_rows = computed_rows["features"]
    assert searches[0].n_rows == 2 * 3 * len(X) + len(X)  # every fold, candidate and refit
    assert searches[64].n_rows == len(X)
    assert searches[64].best_params_ == searches[0].best_params_
    np.testing.assert_allclose(
        searches[64].cv_results_["mean_test_score"],
        searches[0].cv_results_["mean_test_score"],
        rtol=1e-5,
    )


def test_a_rewritten_image_file_gets_new_features(tmp_path, crops, computed_rows):
    X, _ = crops
    paths = [str(tmp_path / f"{i}.png") for i in range(4)]
    for path, image in zip(paths, X, strict=False):
        Image.fromarray(image).save(path)
    extractor = sktransfer.PretrainedFeatureExtractor(**FAST).fit(paths)
    before = extractor.transform(paths)
    Image.fromarray(X[10]).save(paths[2])  # another photo under the same name
    after = extractor.transform(paths)
    assert computed_rows["features"] == 4 + 1
    with sktransfer.config_context(shared_cache_size=0):
        fresh = sktransfer.PretrainedFeatureExtractor(**FAST).fit(paths).transform(paths)
    np.testing.assert_allclose(after, fresh, atol=1e-5)
    assert np.array_equal(after[[0, 1, 3]], before[[0, 1, 3]])
    assert not np.allclose(after[2], before[2])


def test_the_memory_folder_serves_another_process(tmp_path, crops, computed_rows):
    X, _ = crops
    extractor = sktransfer.PretrainedFeatureExtractor(memory=tmp_path, **FAST).fit(X)
    features = extractor.transform(X)
    clear_cache()  # what a new process starts with
    again = sktransfer.PretrainedFeatureExtractor(memory=str(tmp_path), **FAST)
    with sktransfer.config_context(shared_cache_size=0):
        assert again.fit(X).transform(X).tobytes() == features.tobytes()
    assert computed_rows["features"] == len(X)


def test_the_memory_parameter_is_validated(crops):
    X, y = crops
    with pytest.raises(ValueError, match="'memory' parameter"):
        sktransfer.PretrainedFeatureExtractor(memory=3, **FAST).fit(X)
    with pytest.raises(ValueError, match="'memory' parameter"):
        sktransfer.FineTunedClassifier(memory=3, **FAST).fit(X, y)


@pytest.mark.parametrize("name", ["PretrainedFeatureExtractor", "FineTunedClassifier"])
def test_no_estimator_parameter_sizes_the_shared_store(name):
    estimator = getattr(sktransfer, name)
    assert "shared_cache_size" not in estimator().get_params()
    with pytest.raises(TypeError, match="shared_cache_size"):
        estimator(shared_cache_size=0)


def test_two_extractors_in_one_process_both_keep_their_rows(crops, computed_rows):
    X, _ = crops
    first = sktransfer.PretrainedFeatureExtractor(**FAST).fit(X)
    second = sktransfer.PretrainedFeatureExtractor(layer="blocks3", **FAST).fit(X)
    features = {"first": first.transform(X), "second": second.transform(X)}
    assert computed_rows["features"] == 2 * len(X)
    assert cache_info()["namespaces"] == 2
    for _ in range(2):  # each one's transforms leave the other's rows where they are
        assert first.transform(X).tobytes() == features["first"].tobytes()
        assert second.transform(X).tobytes() == features["second"].tobytes()
    assert computed_rows["features"] == 2 * len(X)


def test_with_the_store_off_a_second_transform_computes_again(crops, computed_rows):
    X, _ = crops
    extractor = sktransfer.PretrainedFeatureExtractor(**FAST).fit(X)
    with sktransfer.config_context(shared_cache_size=0):
        features = extractor.transform(X)
        assert extractor.transform(X).tobytes() == features.tobytes()
    assert computed_rows["features"] == 2 * len(X)
    assert cache_info()["rows"] == 0
    extractor.transform(X)  # the setting restored: kept from now on
    extractor.transform(X)
    assert computed_rows["features"] == 3 * len(X)


def stage_chain(runs, n):
    """Check that ``runs`` cover consecutive stages for ``n`` rows; return (first, stop)."""
    assert runs and all(count == n for _, _, count in runs)
    assert all(a[1] == b[0] for a, b in zip(runs, runs[1:], strict=False))
    return runs[0][0], runs[-1][1]


def test_fine_tuning_continues_from_the_stage_outputs_another_fit_left(crops, computed_rows):
    X, y = crops
    params = {"max_epochs": 1, "random_state": 0, **FAST}
    shallow = sktransfer.FineTunedClassifier(n_frozen=-2, **params).fit(X, y)  # stages 0..6 frozen
    assert stage_chain(computed_rows["stages"], len(X)) == (0, 7)
    computed_rows["stages"] = []
    deep = sktransfer.FineTunedClassifier(n_frozen="all", **params).fit(X, y)  # all 10
    assert stage_chain(computed_rows["stages"], len(X)) == (7, 10)
    computed_rows["stages"] = []
    middle = sktransfer.FineTunedClassifier(n_frozen=-1, **params).fit(X, y)  # stages 0..7: stored
    assert computed_rows["stages"] == []
    for clf in (shallow, deep, middle):  # prediction starts from the stored outputs too
        uncached = sktransfer.FineTunedClassifier(n_frozen=clf.n_frozen, **params)
        with sktransfer.config_context(shared_cache_size=0):
            expected = uncached.fit(X, y).predict_proba(X)
        computed_rows["stages"] = []
        np.testing.assert_allclose(clf.predict_proba(X), expected, atol=1e-5)
        assert computed_rows["stages"] == []


def test_a_fine_tuning_search_runs_the_frozen_stages_once_per_image(crops, computed_rows):
    from sklearn.model_selection import GridSearchCV

    X, y = crops
    grid = {"n_frozen": ["all", -1], "lr": [1e-3, 3e-4]}
    searches = {}
    for size in (0, 64):
        clf = sktransfer.FineTunedClassifier(max_epochs=1, random_state=0, **FAST)
        computed_rows["stages"] = []
        with sktransfer.config_context(shared_cache_size=size):
            searches[size] = GridSearchCV(clf, grid, cv=3, scoring="neg_log_loss").fit(X, y)
        searches[size].runs = computed_rows["stages"]
    from_inputs = sum(n for start, _, n in searches[64].runs if start == 0)
    assert from_inputs == len(X)  # the rest continued from stored stage outputs
    assert sum(n for start, _, n in searches[0].runs if start == 0) == 4 * 3 * 16 + len(X)
    assert searches[64].best_params_ == searches[0].best_params_
    np.testing.assert_allclose(
        searches[64].cv_results_["mean_test_score"],
        searches[0].cv_results_["mean_test_score"],
        rtol=1e-4,
    )


def test_text_features_are_shared_too(computed_rows):
    texts = ["The team won the match.", "She baked a cake.", "We cooked pasta at home."]
    extractor = sktransfer.PretrainedFeatureExtractor("all-MiniLM-L6-v2").fit(texts)
    features = extractor.transform(texts)
    assert extractor.transform(texts[::-1]).tobytes() == features[::-1].tobytes()
    assert computed_rows["features"] == 3


def test_fine_tuning_stores_the_stage_outputs_other_fits_can_start_from(crops, computed_rows):
    X, y = crops
    sktransfer.FineTunedClassifier(max_epochs=1, **FAST).fit(X, y)  # all 10 stages frozen
    stops = [stop for _, stop, _ in computed_rows["stages"]]
    assert stops[-1] == 10
    assert {7, 8} <= set(stops)  # where n_frozen=-2 and n_frozen=-1 start
    assert 9 not in stops  # pooling has no parameters: no fit starts between it and conv_head
    assert {1, 2}.isdisjoint(stops)  # stem and blocks0 outputs: larger than a 32 px image
