"""Explanations: maps aligned to the original image, word attributions, faithful and harmless."""

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib import colormaps
from PIL import Image
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.svm import SVC

from sktransfer import (
    FewShotTextClassifier,
    FineTunedClassifier,
    FineTunedRegressor,
    PretrainedFeatureExtractor,
    ZeroShotTextClassifier,
)
from sktransfer._modalities import ImagePipeline
from sktransfer.inspection import (
    TextExplanation,
    _words,
    explain,
    plot_explanation,
    plot_text_explanation,
)
from sktransfer.inspection._maps import cam_positions
from sktransfer.inspection._occlusion import _patches

matplotlib.use("Agg")
RdBu_r = colormaps["RdBu_r"]
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


@pytest.fixture(scope="module")
def linear(task):
    """Pipeline(PretrainedFeatureExtractor(), LogisticRegression()) fitted on the canvases."""
    X, y, _, _ = task
    return make_pipeline(PretrainedFeatureExtractor(), LogisticRegression(max_iter=1000)).fit(X, y)


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


def test_occlusion_patches_cover_the_crop_on_the_original_image():
    pipeline = ImagePipeline()
    grids, masks = _patches(pipeline, (100, 200), patch_size=0.25)
    assert grids.shape == (49, 224, 224) and masks.shape == (49, 100, 200)
    assert torch.all(grids.sum(0) >= 1)  # every input pixel is covered at least once
    crop = pipeline.to_original(torch.ones(7, 7), (100, 200)) > 0.5
    assert torch.equal(masks.any(0), crop)  # and nothing outside the crop ever is
    rows, cols = torch.nonzero(masks[0], as_tuple=True)  # top left: a rectangle, 1/4 wide
    assert masks[0].sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    assert (rows.min(), cols.min()) == (crop.nonzero()[:, 0].min(), crop.nonzero()[:, 1].min())
    assert abs((cols.max() - cols.min() + 1) - 88 / 4) <= 1  # the crop is 88 pixels wide


def test_cam_is_exact_for_average_pooling(task, linear):
    X, _, _, _ = task
    pipe = linear
    transform = pipe[0].backbone_.preprocessing.eval_transform()
    batch = torch.stack([transform(torch.from_numpy(x).permute(2, 0, 1)) for x in X[:4]])
    positions = cam_positions(pipe, batch)
    linear = pipe[-1]
    decision = linear.decision_function(pipe[0].transform(X[:4])) - linear.intercept_
    np.testing.assert_allclose(
        positions.mean((2, 3))[:, 1].numpy(), decision, rtol=1e-3, atol=1e-3
    )


def test_maps_point_at_the_pasted_photo(task, linear):
    _, _, X_test, corners = task
    maps = explain(linear, X_test)
    np.testing.assert_allclose(maps[0], explain(linear, X_test[:1], method="cam")[0], atol=1e-5)
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
    # occlusion of a regressor's prediction (no probabilities), patches of half the side
    (heat,) = explain(model, X[1:], method="occlusion", patch_size=0.5)
    assert heat.shape == (260, 180) and 0 <= heat.min() and heat.max() <= 1
    assert np.all(heat[:20] == 0)  # above the centre crop: never covered, never blamed


def test_bad_models_methods_and_targets_are_refused(task, linear):
    X, y, X_test, _ = task
    X_small, y_small, X_test = X[:6], y[:6], X_test[:2]
    with pytest.raises(NotFittedError):
        explain(FineTunedClassifier(), X_test)
    forest = make_pipeline(PretrainedFeatureExtractor(), RandomForestClassifier(n_estimators=3))
    with pytest.raises(ValueError, match="linear classifier.*method='occlusion'"):
        explain(forest.fit(X_small, y_small), X_test, method="cam")
    pipe = make_pipeline(PretrainedFeatureExtractor(pooling="max"), LogisticRegression())
    with pytest.raises(ValueError, match="exact for the final layer with average pooling"):
        explain(pipe.fit(X_small, y_small), X_test, method="cam")
    with pytest.raises(ValueError, match="method='gradcam' needs a FineTunedClassifier"):
        explain(linear, X_test, method="gradcam")
    with pytest.raises(ValueError, match="method must be one of auto, gradcam"):
        explain(linear, X_test, method="shap")
    with pytest.raises(ValueError, match="patch_size is the patch's side"):
        explain(linear, X_test, method="occlusion", patch_size=2)
    with pytest.raises(ValueError, match="target 'cat' is not one of the classes"):
        explain(linear, X_test, target="cat")
    with pytest.raises(TypeError, match="explain takes a fitted.*got LogisticRegression"):
        explain(LogisticRegression(), X_test)
    with pytest.raises(NotFittedError, match="ZeroShotTextClassifier"):
        explain(ZeroShotTextClassifier(["a", "b"]), ["a text"])


def test_plot_explanation_overlays_the_map(sample_photos):
    image = sample_photos[0][:120, :160]
    ax = plot_explanation(image, np.linspace(0, 1, 120 * 160).reshape(120, 160), title="t")
    assert len(ax.images) == 2 and ax.get_title() == "t"
    with pytest.raises(ValueError, match="the image is"):
        plot_explanation(image, np.zeros((10, 10)))


def test_occlusion_explains_a_non_linear_head_and_points(task, linear):
    X, y, X_test, corners = task
    X_test, corners = X_test[:8], corners[:8]
    extractor = linear[0]  # fitted already: its features are shared, not recomputed
    svc = make_pipeline(extractor, SVC()).fit(X, y)
    weights = {k: v.clone() for k, v in extractor.backbone_.net.state_dict().items()}
    before = svc.decision_function(X_test)
    maps = explain(svc, X_test)  # auto: an RBF kernel has no coefficients to map
    assert all(m.shape == (240, 320) and m.dtype == np.float32 for m in maps)
    assert all(m.min() >= 0 and m.max() == pytest.approx(1, abs=0.02) for m in maps)
    assert pointing_accuracy(maps, corners) >= 0.5  # a random point hits 13% of the time
    np.testing.assert_array_equal(svc.decision_function(X_test), before)
    after = extractor.backbone_.net.state_dict()
    assert all(torch.equal(weights[k], after[k]) for k in weights)
    # occlusion on request for a linear head too; a bigger patch gives a coarser map
    (coarse,) = explain(linear, X_test[:1], method="occlusion", patch_size=0.5)
    (fine,) = explain(svc, X_test[:1], patch_size=0.5)
    assert coarse.shape == (240, 320) and not np.allclose(fine, maps[0])


POSITIVE = [
    "a wonderful film, I loved it",
    "great acting and a superb story",
    "truly delightful and moving",
    "an excellent, charming movie",
    "I enjoyed every minute",
    "brilliant and beautiful work",
]
NEGATIVE = [
    "a terrible film, I hated it",
    "awful acting and a boring story",
    "truly dull and pointless",
    "a dreadful, tedious movie",
    "I regretted every minute",
    "stupid and ugly work",
]
HELD_OUT = ["the plot was thin but the music was wonderful", "the evening was boring"]


@pytest.fixture(scope="module")
def sentiment():
    """Pipeline(PretrainedFeatureExtractor('all-MiniLM-L6-v2'), LogisticRegression())."""
    extractor = PretrainedFeatureExtractor("all-MiniLM-L6-v2")
    pipe = make_pipeline(extractor, LogisticRegression(C=10))
    return pipe.fit(POSITIVE + NEGATIVE, ["pos"] * 6 + ["neg"] * 6)


def test_a_sentiment_rests_on_its_sentiment_word_and_the_model_is_untouched(sentiment):
    weights = {k: v.clone() for k, v in sentiment[0].backbone_.net.state_dict().items()}
    proba = sentiment.predict_proba(HELD_OUT)
    first, second = explain(sentiment, HELD_OUT)
    assert isinstance(first, TextExplanation)
    assert (first.target, second.target) == ("pos", "neg")
    assert first.top(1)[0][0] == "wonderful" and second.top(1)[0][0] == "boring"
    assert [first.text[a:b] for a, b in first.spans] == list(first.tokens)
    assert first.scores.dtype == np.float32 and first.scores.shape == (len(first.tokens),)
    assert first.score == pytest.approx(proba[0, 1])
    np.testing.assert_array_equal(sentiment.predict_proba(HELD_OUT), proba)
    after = sentiment[0].backbone_.net.state_dict()
    assert all(torch.equal(weights[k], after[k]) for k in weights)
    # explaining the other class turns the attribution of the sentiment word around
    (other,) = explain(sentiment, HELD_OUT[:1], target="neg")
    assert other.target == "neg"
    assert other.scores[other.tokens.index("wonderful")] < 0


def test_a_word_attribution_is_the_fall_of_the_score_without_it(monkeypatch):
    texts = ["The match was won late, in extra time!", "Bake the cake slowly."]
    model = FineTunedClassifier("all-MiniLM-L6-v2", max_epochs=1, max_length=16, random_state=0)
    model.fit(texts, ["sport", "food"])
    state = {k: v.clone() for k, v in model.net_.module_.state_dict().items()}
    (found,) = explain(model, texts[:1], target="food")
    assert found.tokens == ("The", "match", "was", "won", "late", ",", "in", "extra", "time", "!")
    without_late = "The match was won , in extra time!"
    proba = model.predict_proba([texts[0], without_late])[:, 0]  # classes_: food, sport
    assert found.scores[4] == pytest.approx(proba[0] - proba[1], abs=1e-5)
    after = model.net_.module_.state_dict()
    assert all(torch.equal(state[k], after[k]) for k in state)
    with pytest.raises(ValueError, match="method='gradcam' maps images; this model takes texts"):
        explain(model, texts, method="gradcam")
    (single,) = explain(model, ["Goal!!"])  # removing a text's every word is scored too
    assert single.tokens == ("Goal", "!", "!")
    long = " ".join(["the cup final went to extra time"] * 5)  # 35 words, 16 tokens kept
    monkeypatch.setattr(_words, "CHUNK", 20)  # its 36 variants in two calls of the model
    with pytest.warns(UserWarning, match="truncated") as caught:
        (cut,) = explain(model, [long])
    assert len(caught) == 1 and "2 of the 2 calls" in str(caught[0].message)
    assert np.all(cut.scores[20:-1] == 0)  # words past the cut change nothing


def test_zero_shot_words_and_their_html():
    model = ZeroShotTextClassifier(["positive", "negative"], template="The review is {}.").fit()
    (found,) = explain(model, ["<i>what a boring evening</i> & more"])
    assert found.target == "negative" and found.top(1)[0][0] == "boring"
    page = found.to_html()
    assert page.count("<span") == len(found.tokens) and "&lt;" in page and "<i>" not in page
    assert found._repr_html_() == page


def test_a_multi_label_few_shot_model_explains_one_label():
    labels = np.array([[1, 0], [1, 1], [0, 1], [0, 0]] * 3)  # "pos", "long"
    model = FewShotTextClassifier(max_epochs=0, random_state=0).fit(POSITIVE + NEGATIVE, labels)
    (found,) = explain(model, HELD_OUT[:1], target=0)
    assert found.target == 0  # a label's column: its probability of being there
    assert found.score == pytest.approx(model.predict_proba(HELD_OUT[:1])[0][0, 1])
    assert found.top(1)[0][0] == "wonderful"


def test_plot_text_explanation_colours_each_word(sentiment):
    (found,) = explain(sentiment, HELD_OUT[:1])
    ax = plot_text_explanation(found, width=20, title="why")
    assert [t.get_text() for t in ax.texts] == list(found.tokens)
    assert ax.get_title() == "why"
    rows = {t.xy[1] for t in ax.texts}
    assert len(rows) >= 2  # 46 characters wrap at 20
    top = [t.get_text() for t in ax.texts if t.get_bbox_patch().get_facecolor() == RdBu_r(1.0)]
    assert top == ["wonderful"]  # the strongest attribution takes the colour map's end
    with pytest.raises(TypeError, match="takes one TextExplanation"):
        plot_text_explanation([found])
