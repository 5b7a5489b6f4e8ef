"""Class activation maps: aligned to the original image, faithful, and harmless to the model."""

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from sktransfer import FineTunedClassifier, FineTunedRegressor, PretrainedFeatureExtractor
from sktransfer._modalities import ImagePipeline
from sktransfer.inspection import explain, plot_explanation
from sktransfer.inspection._maps import cam_positions

matplotlib.use("Agg")
SIDE = 100  # the pasted photo's side, in a 240 x 320 grey canvas


def canvases(photos, n, seed):
    """Grey canvases with a crop of one of two real photos pasted in a random quadrant."""
    rng = np.random.default_rng(seed)
    X, y, corners = [], [], []
    for i in range(n):
        canvas = np.full((240, 320, 3), 128, np.uint8)
        photo = photos[i % 2]
        top, left = rng.integers(0, photo.shape[0] - 200), rng.integers(0, photo.shape[1] - 200)
        patch = Image.fromarray(photo[top : top + 200, left : left + 200]).resize((SIDE, SIDE))
        q = rng.integers(4)
        row, col = (q // 2) * 120 + 10, (q % 2) * 160 + 30
        canvas[row : row + SIDE, col : col + SIDE] = np.asarray(patch)
        X.append(canvas)
        y.append(i % 2)
        corners.append((row, col))
    return np.stack(X), np.array(y), corners


def pointing_accuracy(maps, corners):
    hits = 0
    for heat, (row, col) in zip(maps, corners, strict=True):
        i, j = np.unravel_index(np.argmax(heat), heat.shape)
        hits += row <= i < row + SIDE and col <= j < col + SIDE
    return hits / len(maps)


@pytest.fixture(scope="module")
def task(sample_photos):
    X, y, corners = canvases(sample_photos, 48, seed=0)
    return X[:28], y[:28], X[28:], corners[28:]


def test_a_map_goes_back_over_the_crop_of_the_original_image():
    pipeline = ImagePipeline()  # resize the shorter side to 256, centre-crop 224
    out = pipeline.to_original(torch.ones(7, 7), (100, 200)).numpy()
    assert out.shape == (100, 200)
    # resized to 256 x 512, the crop keeps rows 16..240 of 256 (6..94 of 100) and columns
    # 144..368 of 512 (56..144 of 200)
    assert np.all(out[10:90, 60:140] > 0.99)
    assert np.all(out[:, :50] == 0) and np.all(out[:, 150:] == 0) and np.all(out[:4] == 0)
    left = np.zeros((7, 7))
    left[:, :3] = 1
    out = pipeline.to_original(left, (200, 200)).numpy()
    assert out[:, :90].mean() > out[:, 110:].mean() + 0.5  # left stays left


def test_cam_is_exact_for_average_pooling(task):
    X, y, _, _ = task
    pipe = make_pipeline(PretrainedFeatureExtractor(), LogisticRegression(max_iter=1000)).fit(X, y)
    transform = pipe[0].backbone_.preprocessing.eval_transform()
    batch = torch.stack([transform(torch.from_numpy(x).permute(2, 0, 1)) for x in X[:4]])
    positions = cam_positions(pipe, batch)
    linear = pipe[-1]
    decision = linear.decision_function(pipe[0].transform(X[:4])) - linear.intercept_
    np.testing.assert_allclose(
        positions.mean((2, 3))[:, 1].numpy(), decision, rtol=1e-3, atol=1e-3
    )


def test_maps_point_at_the_pasted_photo(task):
    X, y, X_test, corners = task
    pipe = make_pipeline(PretrainedFeatureExtractor(), LogisticRegression(max_iter=1000)).fit(X, y)
    maps = explain(pipe, X_test)
    assert all(m.shape == (240, 320) and m.dtype == np.float32 for m in maps)
    assert all(m.min() >= 0 and m.max() == pytest.approx(1, abs=0.02) for m in maps)
    assert pointing_accuracy(maps, corners) >= 0.5  # a random point hits 13% of the time


def test_grad_cam_points_and_leaves_the_model_as_it_was(task):
    X, y, X_test, corners = task
    model = FineTunedClassifier(n_frozen=-1, max_epochs=4, random_state=0).fit(X, y)
    before = {k: v.clone() for k, v in model.net_.module_.state_dict().items()}
    grads = [None if p.grad is None else p.grad.clone() for p in model.net_.module_.parameters()]
    proba = model.predict_proba(X_test)
    maps = explain(model, X_test)
    assert pointing_accuracy(maps, corners) >= 0.5
    after = model.net_.module_.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    for grad, param in zip(grads, model.net_.module_.parameters(), strict=True):
        assert (grad is None and param.grad is None) or torch.equal(grad, param.grad)
    np.testing.assert_array_equal(model.predict_proba(X_test), proba)
    # another class, another layer: other maps
    other = explain(model, X_test[:2], target=1 - model.predict(X_test[:1])[0], layer="blocks5")
    assert not np.allclose(other[0], maps[0])


def test_images_of_any_size_and_a_regressor(sample_photos):
    X = [sample_photos[0][:150, :300], sample_photos[1][:260, :180]]
    model = FineTunedRegressor(n_frozen="all", max_epochs=1, random_state=0).fit(X, [0.0, 1.0])
    maps = explain(model, X, target=0)
    assert [m.shape for m in maps] == [(150, 300), (260, 180)]


def test_bad_models_and_targets_are_refused(task):
    X, y, X_test, _ = task
    with pytest.raises(NotFittedError):
        explain(FineTunedClassifier(), X_test)
    forest = make_pipeline(PretrainedFeatureExtractor(), RandomForestClassifier(n_estimators=3))
    with pytest.raises(ValueError, match="linear classifier"):
        explain(forest.fit(X, y), X_test)
    pipe = make_pipeline(PretrainedFeatureExtractor(pooling="max"), LogisticRegression())
    with pytest.raises(ValueError, match="exact for the final layer with average pooling"):
        explain(pipe.fit(X, y), X_test)
    pipe = make_pipeline(PretrainedFeatureExtractor(), LogisticRegression()).fit(X, y)
    with pytest.raises(ValueError, match="target 'cat' is not one of the classes"):
        explain(pipe, X_test, target="cat")
    with pytest.raises(TypeError, match="explain takes a fitted"):
        explain(LogisticRegression(), X_test)
    texts = FineTunedClassifier("all-MiniLM-L6-v2", max_epochs=1).fit(["a", "b"], [0, 1])
    with pytest.raises(ValueError, match="explain maps images"):
        explain(texts, ["a"])


def test_plot_explanation_overlays_the_map(sample_photos):
    image = sample_photos[0][:120, :160]
    ax = plot_explanation(image, np.linspace(0, 1, 120 * 160).reshape(120, 160), title="t")
    assert len(ax.images) == 2 and ax.get_title() == "t"
    with pytest.raises(ValueError, match="the image is"):
        plot_explanation(image, np.zeros((10, 10)))
