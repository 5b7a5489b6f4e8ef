"""PretrainedFeatureExtractor: features, layers, pooling, pipelines, persistence, errors."""

import io

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from torch import nn

from sktransfer import PretrainedFeatureExtractor, load_image_folder

SMALL = {"image_size": 64, "batch_size": 8}


@pytest.fixture(scope="module")
def extractor(crops):
    return PretrainedFeatureExtractor(**SMALL).fit(crops[0])


def test_features_are_the_backbone_output(extractor, crops):
    X, _ = crops
    feats = extractor.transform(X[:5])
    assert feats.shape == (5, 1280) and feats.dtype == np.float32
    backbone = extractor.backbone_
    tf = backbone.preprocessing.eval_transform()
    x = torch.stack([tf(torch.from_numpy(img).permute(2, 0, 1)) for img in X[:5]])
    with torch.inference_mode():
        expected = backbone.net(x).numpy()
    np.testing.assert_allclose(feats, expected, rtol=1e-4, atol=1e-4)


def test_same_images_in_every_container_give_the_same_features(extractor, image_folder):
    paths, _ = load_image_folder(image_folder)
    paths = paths[:4]
    from_paths = extractor.transform(paths)
    pil = [Image.open(p).convert("RGB") for p in paths]
    np.testing.assert_allclose(extractor.transform(pil), from_paths, atol=1e-5)
    np.testing.assert_allclose(
        extractor.transform(pd.DataFrame({"file": paths})), from_paths, atol=1e-5
    )
    arrays = np.stack([np.asarray(im) for im in pil])
    assert np.linalg.norm(extractor.transform(arrays) - from_paths) <= 1e-4 * np.linalg.norm(
        from_paths
    )
    for X in (arrays / 255.0, (arrays / 255.0).astype(np.float32)):  # resized without rounding
        other = extractor.transform(X)
        cos = (other * from_paths).sum(1) / np.linalg.norm(other, axis=1)
        assert (cos / np.linalg.norm(from_paths, axis=1) > 0.998).all()


def test_batch_size_and_order_do_not_change_features(extractor, crops):
    X, _ = crops
    reference = extractor.transform(X[:9])
    one_by_one = clone(extractor).set_params(batch_size=1).fit(X).transform(X[:9])
    np.testing.assert_allclose(one_by_one, reference, atol=1e-4)
    order = np.arange(9)[::-1]
    np.testing.assert_allclose(extractor.transform(X[:9][order]), reference[order], atol=1e-4)


def test_pipeline_on_real_photos_beats_chance(crops):
    X, y = crops
    pipe = make_pipeline(PretrainedFeatureExtractor(**SMALL), LogisticRegression(max_iter=1000))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.mean() >= 0.9


def test_intermediate_layer_stops_the_network_early(crops):
    X, _ = crops
    extractor = PretrainedFeatureExtractor(layer="blocks3", **SMALL).fit(X)
    calls = []
    extractor.backbone_.net.conv_head.register_forward_hook(lambda *a: calls.append(1))
    feats = extractor.transform(X[:3])
    assert feats.shape == (3, 80) == (3, extractor.n_features_out_)
    assert calls == []  # the stages after blocks3 never ran


@pytest.mark.parametrize(
    "layer, pooling, width",
    [(None, "max", 1280), (None, "avgmax", 2560), ("blocks1", None, 24 * 16 * 16)],
)
def test_pooling(crops, layer, pooling, width):
    X, _ = crops
    extractor = PretrainedFeatureExtractor(layer=layer, pooling=pooling, **SMALL).fit(X)
    assert extractor.transform(X[:2]).shape == (2, width)


def test_a_network_is_probed_once_per_layer_pooling_and_input_size(crops, monkeypatch):
    import sktransfer._core.inference as inference
    import sktransfer._extractor as extractor_module

    X, _ = crops
    monkeypatch.setattr(inference, "PROBES", inference.ProbeCache())
    calls = []

    def counting(fn, preprocessing, device):
        calls.append(preprocessing.crop_size)
        return inference.probe(fn, preprocessing, device)

    monkeypatch.setattr(extractor_module, "probe", counting)
    widths = []
    for pooling, size in [("avg", 64), ("avg", 64), ("avgmax", 64), ("avg", 96), ("avg", 64)]:
        params = {**SMALL, "image_size": size}
        extractor = PretrainedFeatureExtractor(pooling=pooling, **params).fit(X)
        assert extractor.transform(X[:1]).shape == (1, extractor.n_features_out_)
        widths.append(extractor.n_features_out_)
    assert widths == [1280, 1280, 2560, 1280, 1280]
    assert calls == [64, 64, 96]  # the second and last fits probed nothing
    blocks = PretrainedFeatureExtractor(layer="blocks1", pooling=None, **SMALL).fit(X)
    assert blocks.n_features_out_ == 24 * 16 * 16 and len(calls) == 4


def test_unknown_layer_lists_valid_ones(crops):
    with pytest.raises(ValueError, match=r"Unknown layer 'block3'.*'blocks3'.*'stem'"):
        PretrainedFeatureExtractor(layer="block3", **SMALL).fit(crops[0])


def test_set_output_pandas_keeps_feature_names_and_index(extractor, image_folder):
    paths, _ = load_image_folder(image_folder)
    X = pd.DataFrame({"file": paths[:3]}, index=["a", "b", "c"])
    out = clone(extractor).set_output(transform="pandas").fit(X).transform(X)
    assert list(out.index) == ["a", "b", "c"]
    assert list(out.columns) == list(extractor.get_feature_names_out())
    assert out.columns[0] == "pretrainedfeatureextractor0"


def test_joblib_file_holds_parameters_not_weights(tmp_path, crops):
    X, y = crops
    pipe = make_pipeline(PretrainedFeatureExtractor(**SMALL), LogisticRegression(max_iter=500))
    pipe.fit(X, y)
    path = tmp_path / "model.joblib"
    joblib.dump(pipe, path)
    assert path.stat().st_size < 100_000  # the weights (~19 MB) are reloaded, not stored
    loaded = joblib.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), pipe.predict_proba(X))


def test_user_module_weights_travel_in_the_pickle(crops):
    X, _ = crops
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    extractor = PretrainedFeatureExtractor(module, image_size=32).fit(X)
    buffer = io.BytesIO()
    joblib.dump(extractor, buffer)
    buffer.seek(0)
    loaded = joblib.load(buffer)
    np.testing.assert_array_equal(loaded.transform(X[:3]), extractor.transform(X[:3]))


def test_grid_search_over_layers(crops):
    X, y = crops
    pipe = make_pipeline(PretrainedFeatureExtractor(**SMALL), LogisticRegression(max_iter=500))
    search = GridSearchCV(pipe, {"pretrainedfeatureextractor__layer": ["blocks2", None]}, cv=2)
    search.fit(X, y)
    assert search.best_score_ > 0.8
    assert set(search.cv_results_["param_pretrainedfeatureextractor__layer"]) == {"blocks2", None}


def test_clone_and_params_untouched_by_fit(crops):
    extractor = PretrainedFeatureExtractor(**SMALL)
    before = extractor.get_params()
    extractor.fit(crops[0])
    assert extractor.get_params() == before
    assert not hasattr(clone(extractor), "backbone_")


def test_not_fitted_error(crops):
    with pytest.raises(NotFittedError):
        PretrainedFeatureExtractor().transform(crops[0])


def test_bad_parameters():
    images = np.zeros((2, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="batch_size"):
        PretrainedFeatureExtractor(batch_size=0).fit(images)
    with pytest.raises(ValueError, match="pooling"):
        PretrainedFeatureExtractor(pooling="median").fit(images)
    with pytest.raises(ValueError, match="Unknown backbone 'resnet1'"):
        PretrainedFeatureExtractor("resnet1").fit(images)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            PretrainedFeatureExtractor(device="cuda").fit(images)


def test_corrupt_image_is_named_and_nothing_returned(extractor, tmp_path, image_folder):
    paths, _ = load_image_folder(image_folder)
    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes(b"\xff\xd8 nope")
    with pytest.raises(ValueError, match="Cannot read image .*corrupt.jpg"):
        extractor.transform([*paths[:3], str(bad)])


def test_progress_bar(extractor, crops, capsys):
    clone(extractor).set_params(verbose=1).fit(crops[0]).transform(crops[0][:4])
    assert "features" in capsys.readouterr().err
    old = clone(extractor).set_params(progress=True)
    with pytest.warns(FutureWarning, match="'progress' was renamed 'verbose'"):
        old.fit(crops[0])
    old.transform(crops[0][:4])  # the old name still works
    assert "features" in capsys.readouterr().err


def test_worker_processes_give_the_same_features(extractor, image_folder):
    paths, _ = load_image_folder(image_folder)
    with_workers = clone(extractor).set_params(num_workers=1).fit(paths)
    np.testing.assert_allclose(
        with_workers.transform(paths[:5]), extractor.transform(paths[:5]), atol=1e-6
    )


@pytest.mark.gpu
def test_gpu_features_match_cpu(crops):
    X, _ = crops
    cpu = PretrainedFeatureExtractor(device="cpu", **SMALL).fit(X).transform(X[:4])
    gpu = PretrainedFeatureExtractor(device="cuda", **SMALL).fit(X)
    assert gpu.device_.type == "cuda"
    np.testing.assert_allclose(gpu.transform(X[:4]), cpu, atol=1e-3)
    buffer = io.BytesIO()
    joblib.dump(gpu, buffer)
    buffer.seek(0)
    assert joblib.load(buffer).transform(X[:1]).shape == (1, 1280)


def test_own_module_with_its_own_preprocessing(crops):
    from sktransfer import load_backbone
    from sktransfer.backbones import Preprocessing

    X, _ = crops
    module = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU())
    pre = Preprocessing(crop_size=40, resize_size=48, mean=(0.5,) * 3, std=(0.25,) * 3)
    backbone = load_backbone(module, preprocessing=pre)
    extractor = PretrainedFeatureExtractor(backbone).fit(X)
    assert extractor.backbone_.preprocessing == pre
    feats = extractor.transform(X[:2])
    x = pre.eval_transform()(torch.from_numpy(X[0]).permute(2, 0, 1))
    assert x.shape == (3, 40, 40)
    with torch.inference_mode():
        expected = module(x[None]).mean((2, 3))
    np.testing.assert_allclose(feats[:1], expected.numpy(), atol=1e-5)


def test_parameters_changed_after_fit_take_effect_at_the_next_fit(extractor, crops):
    X, _ = crops
    fitted = clone(extractor).fit(X)
    before = fitted.transform(X[:3])
    fitted.set_params(layer="blocks3", pooling="avgmax")  # as in sklearn: nothing refits yet
    np.testing.assert_array_equal(fitted.transform(X[:3]), before)
    assert fitted.layer_ is None and fitted.get_feature_names_out().shape == (1280,)
    refitted = fitted.fit(X).transform(X[:3])
    assert refitted.shape == (3, 160) and fitted.layer_ == "blocks3"


def test_layer_auto_picks_the_best_scoring_layer(crops):
    X, y = crops
    extractor = PretrainedFeatureExtractor(layer="auto", **SMALL).fit(X, y)
    scores = extractor.layer_scores_
    best = scores.iloc[0]["layer"]
    assert extractor.layer_ == (None if best is None or best != best else best)
    assert scores["score"].is_monotonic_decreasing and len(scores) >= 5
    assert extractor.transform(X[:2]).shape == (2, extractor.n_features_out_)
    with pytest.raises(ValueError, match="layer='auto' chooses the layer .* pass y"):
        PretrainedFeatureExtractor(layer="auto", **SMALL).fit(X)
    assert PretrainedFeatureExtractor(**SMALL).fit(X).layer_scores_ is None
