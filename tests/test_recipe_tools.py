"""Fine-tuning recipe tools, each by what it does: test-time augmentation, layer-wise
learning-rate decay, gradual unfreezing, mixup and cutmix, the learning-rate finder."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from skorch.callbacks import Callback

import sktransfer
from sktransfer import FineTunedClassifier, FineTunedRegressor
from sktransfer._fine_tuning._mix import BatchMixer
from sktransfer._fine_tuning._tasks import MultiLabel, Regression, SingleLabel

# 56 px: the centre crop leaves as many pixels left as right (resize to 64, crop 56), so
# the network's input of a mirrored image is the mirror of the image's input
IMAGES = {"image_size": 56, "batch_size": 8, "max_epochs": 1, "random_state": 0}


def _mirrored(X):
    return np.ascontiguousarray(X[:, :, ::-1])


# --- test-time augmentation ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def tuned(crops):
    X, y = crops
    return FineTunedClassifier(n_frozen=-1, **IMAGES).fit(X, y)


def test_tta_averages_the_probabilities_of_the_image_and_its_mirror(crops, tuned):
    X = crops[0][::3]  # each view is a pass of the network: 8 images of both classes
    by_hand = (tuned.predict_proba(X) + tuned.predict_proba(_mirrored(X))) / 2
    assert np.abs(by_hand - tuned.predict_proba(X)).max() > 1e-4  # the mirror differs
    try:  # a parameter of prediction: no refit needed
        tuned.set_params(tta=True)
        np.testing.assert_allclose(tuned.predict_proba(X), by_hand, atol=1e-5)
        np.testing.assert_array_equal(tuned.predict(X), tuned.classes_[by_hand.argmax(axis=1)])
        six = tuned.set_params(tta=6).predict_proba(X)
    finally:
        tuned.set_params(tta=False)
    np.testing.assert_allclose(six.sum(axis=1), 1.0)
    assert np.abs(six - by_hand).max() > 1e-4  # the corner crops count too


def test_tta_averages_a_regressor_s_predictions_and_is_saved(crops, tmp_path):
    X, _ = crops
    reg = FineTunedRegressor(tta=True, **IMAGES).fit(X, X.mean(axis=(1, 2, 3)))
    X = X[::3]
    with_tta = reg.predict(X)
    reg.set_params(tta=False)
    by_hand = (reg.predict(X) + reg.predict(_mirrored(X))) / 2
    assert np.abs(by_hand - reg.predict(X)).max() > 1e-3
    np.testing.assert_allclose(with_tta, by_hand, rtol=1e-5, atol=1e-4)
    sktransfer.save(reg.set_params(tta=True), tmp_path / "reg.skt")
    loaded = sktransfer.load(tmp_path / "reg.skt")
    assert loaded.tta is True
    np.testing.assert_allclose(loaded.predict(X), with_tta, rtol=1e-6)


def test_every_task_averages_its_views_predictions():
    outputs = torch.randn(5, 3, 4) * 3  # 5 rows, 3 views, 4 outputs
    single = SingleLabel.fitted(np.arange(4))
    expected = np.mean([single.proba(outputs[:, v]) for v in range(3)], axis=0)
    np.testing.assert_allclose(single.proba(single.average_views(outputs)), expected, atol=1e-6)
    multi = MultiLabel.fitted(4)
    expected = np.mean([multi.proba(outputs[:, v]) for v in range(3)], axis=0)
    np.testing.assert_allclose(multi.proba(multi.average_views(outputs)), expected, atol=1e-6)
    np.testing.assert_array_equal(multi.predict(multi.average_views(outputs)), expected >= 0.5)
    regression = Regression().fitted(np.arange(4.0), np.full(4, 2.0), one_d=False)
    expected = np.mean([regression.predict(outputs[:, v]) for v in range(3)], axis=0)
    np.testing.assert_allclose(regression.predict(regression.average_views(outputs)), expected)


def test_tta_refuses_texts_and_bad_counts(crops):
    X, y = crops
    with pytest.raises(ValueError, match="tta=True averages .* text inputs. Leave tta=False"):
        FineTunedClassifier("all-MiniLM-L6-v2", tta=True).fit(["a cat", "a dog"], [0, 1])
    with pytest.raises(ValueError, match="'tta' parameter"):
        FineTunedClassifier(tta=7, **IMAGES).fit(X, y)


# --- layer-wise learning-rate decay -------------------------------------------------------------
def _rates_of(clf):
    """Each parameter's learning rate in the fitted model's optimizer, by name."""
    ids = {id(p): name for name, p in clf.net_.module_.named_parameters()}
    return {
        ids[id(p)]: group["lr"]
        for group in clf.net_.optimizer_.param_groups
        for p in group["params"]
    }


def test_lr_decay_gives_each_unfrozen_group_a_rate_down_from_the_top(crops):
    X, y = crops
    clf = FineTunedClassifier(n_frozen=-3, lr=1e-2, backbone_lr=1e-3, lr_decay=0.5, **IMAGES).fit(
        X, y
    )
    rates = _rates_of(clf)
    groups = clf.backbone_.layer_groups
    for k, (_, names) in enumerate(reversed(groups[-3:])):  # k from the top
        assert {rates[f"trunk.{name}"] for name in names} == {1e-3 * 0.5**k}
    assert {rate for name, rate in rates.items() if name.startswith("head.")} == {1e-2}
    # one parameter group per unfrozen layer group, the head's, the frozen parameters'
    assert len(clf.net_.optimizer_.param_groups) == 3 + 2
    # None: today's rule, every unfrozen group at backbone_lr (lr / 10 by default)
    plain = FineTunedClassifier(n_frozen=-3, lr=1e-2, **IMAGES).fit(X, y)
    assert {r for n, r in _rates_of(plain).items() if n.startswith("trunk.")} == {1e-3}


# --- gradual unfreezing -------------------------------------------------------------------------
class _TopGroupAtEachEpoch(Callback):
    """Copy the top layer group's weights and buffers at the start and after each epoch."""

    def on_train_begin(self, net, **kwargs):
        self.states = [self._state(net)]

    def on_epoch_end(self, net, **kwargs):
        self.states.append(self._state(net))

    @staticmethod
    def _state(net):
        top = net.module_.trunk.conv_head  # the top layer group (EfficientNet-Lite0's)
        return {k: v.detach().clone() for k, v in top.state_dict().items()}


def test_unfreeze_after_holds_the_body_still_then_trains_it(crops):
    X, y = crops
    clf = FineTunedClassifier(
        n_frozen=-1, backbone_lr=1e-3, unfreeze_after=2, callbacks=[_TopGroupAtEachEpoch()],
        **{**IMAGES, "max_epochs": 3},
    ).fit(X, y)  # fmt: skip
    (spy,) = [cb for _, cb in clf.net_.callbacks_ if isinstance(cb, _TopGroupAtEachEpoch)]
    start, *after = spy.states
    assert any(name.endswith("running_mean") for name in start)  # BatchNorm statistics too
    for epoch in (0, 1):  # bit-identical after epochs 1 and 2
        for name, value in start.items():
            assert torch.equal(after[epoch][name], value), (epoch, name)
    moved = [name for name, value in start.items() if not torch.equal(after[2][name], value)]
    assert len(moved) > len(start) / 2  # epoch 3 trains them
    top = clf.backbone_.layer_groups[-1][1]
    net_params = dict(clf.backbone_.net.named_parameters())
    assert all(net_params[name].requires_grad for name in top)  # trainable again after fit


# --- mixup and cutmix ---------------------------------------------------------------------------
@pytest.mark.parametrize("mixup, cutmix", [(0.4, 0.0), (0.0, 1.0)])
def test_mixing_makes_each_target_the_mixture_of_its_pixels_sources(mixup, cutmix):
    # row i of the batch is all ones in channel i (of class i): a mixed image's mean over
    # its pixels, channel by channel, is the share of each source image in it
    X = torch.eye(3)[:, :, None, None].expand(3, 3, 16, 16).contiguous()
    packed = torch.tensor([[0.0, 1.0], [1.0, 2.0], [2.0, 4.0]])  # class, row weight
    mixer = BatchMixer(mixup, cutmix, SingleLabel.fitted(np.array(["a", "b", "c"])))
    mixed_any = False
    for _ in range(20):
        mixed, targets = mixer(X, packed)
        shares = mixed.mean(dim=(2, 3)).double().numpy()
        np.testing.assert_allclose(targets[:, :3], shares, atol=1e-6)  # one-hot, mixed
        np.testing.assert_allclose(targets[:, 3], shares @ [1.0, 2.0, 4.0], rtol=1e-5)
        if cutmix:  # each pixel is one source's
            assert set(mixed.unique().tolist()) <= {0.0, 1.0}
        mixed_any |= bool((shares.max(axis=1) < 0.99).any())
    assert mixed_any


def test_mixup_and_cutmix_train_without_the_cache_and_refuse_texts(crops):
    X, y = crops
    plain = FineTunedClassifier(head_init="zeros", **IMAGES).fit(X, y)
    mixed = FineTunedClassifier(head_init="zeros", mixup=0.4, cutmix=1.0, **IMAGES).fit(X, y)
    assert plain.n_cached_stages_ > 0 and mixed.n_cached_stages_ == 0
    losses = mixed.history_[:, "train_loss"]
    assert np.isfinite(losses).all()
    assert not np.allclose(losses, plain.history_[:, "train_loss"])
    assert mixed.predict_proba(X).shape == (len(X), 2)
    assert "mixup" not in FineTunedRegressor().get_params()
    with pytest.raises(ValueError, match=r"mixup=0.2, cutmix=0.0 blends images; .* text"):
        FineTunedClassifier("all-MiniLM-L6-v2", mixup=0.2).fit(["a cat", "a dog"], [0, 1])


# --- the learning-rate finder -------------------------------------------------------------------
def test_find_lr_suggests_a_rate_that_trains_and_leaves_the_estimator_as_it_was(crops):
    X, _ = crops
    brightness = X.mean(axis=(1, 2, 3))  # a head from zero: the loss starts at 1, the variance
    reg = FineTunedRegressor(head_init="zeros", **IMAGES)
    params = reg.get_params()
    found = reg.find_lr(X, brightness, num_it=60)
    assert not hasattr(reg, "net_") and reg.get_params() == params
    with pytest.raises(NotFittedError):
        reg.predict(X)
    rates, losses = found.rates, found.losses
    assert rates[0] == 1e-7 and np.all(np.diff(rates) > 0)
    assert len(rates) == len(losses) < 60  # stopped where the loss diverged
    assert losses[-1] > 4 * losses.min()
    assert rates[0] < found.suggestion < rates[-1]
    # the suggestion trains the head; a hundredth of it barely moves it, a hundred times
    # it diverges
    final = {}
    for factor in (0.01, 1, 100):
        fitted = clone(reg).set_params(lr=found.suggestion * factor, max_epochs=5)
        final[factor] = fitted.fit(X, brightness).history_[-1, "train_loss"]
    assert final[1] < 0.6 and final[0.01] > 0.9 and final[100] > 2


# --- every tool: validated, cloned, saved -------------------------------------------------------
@pytest.mark.parametrize(
    "params, match",
    [({"tta": 0}, "'tta' parameter"), ({"lr_decay": 0.0}, "'lr_decay' parameter"),
     ({"lr_decay": 1.5}, "'lr_decay' parameter"),
     ({"unfreeze_after": -1}, "'unfreeze_after' parameter"),
     ({"mixup": -0.1}, "'mixup' parameter"), ({"cutmix": "yes"}, "'cutmix' parameter")],
)  # fmt: skip
def test_bad_tool_parameters_are_named(crops, params, match):
    X, y = crops
    with pytest.raises(ValueError, match=match):
        FineTunedClassifier(**params, **IMAGES).fit(X, y)


def test_find_lr_refuses_a_bad_range(crops):
    X, y = crops
    with pytest.raises(ValueError, match="0 < start_lr < end_lr; got start_lr=1.0, end_lr=0.1"):
        FineTunedClassifier(**IMAGES).find_lr(X, y, start_lr=1.0, end_lr=0.1)
    with pytest.raises(ValueError, match="num_it, an integer of at least 2; got 1"):
        FineTunedClassifier(**IMAGES).find_lr(X, y, num_it=1)


def test_the_tools_settings_are_cloned_and_saved(crops, tmp_path):
    X, y = crops
    tools = {"tta": 2, "lr_decay": 0.8, "unfreeze_after": 1, "mixup": 0.2, "cutmix": 0.5}
    clf = FineTunedClassifier(n_frozen=-2, **tools, **{**IMAGES, "max_epochs": 2}).fit(X, y)
    assert clone(clf).get_params() == clf.get_params()
    sktransfer.save(clf, tmp_path / "clf.skt")
    loaded = sktransfer.load(tmp_path / "clf.skt")
    assert {name: loaded.get_params()[name] for name in tools} == tools
    np.testing.assert_allclose(loaded.predict_proba(X[:4]), clf.predict_proba(X[:4]), atol=1e-6)
