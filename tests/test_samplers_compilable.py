"""Compilable samplers (tf_sampling.samplers.compilable): distributions, expected counts, state, XLA."""

import math
import re

import numpy as np
import pytest
import tensorflow as tf

from tf_sampling import samplers
from tf_sampling.samplers import compilable

# Chi-square tests: seeds are fixed, so every test is deterministic; the
# thresholds are the chi-square quantiles of probability 1 - 1e-4
# (Wilson-Hilferty, accurate to well under 1% for these degrees of freedom).
Z_1E4 = 3.719


def chi2_threshold(df: int) -> float:
    a = 2.0 / (9.0 * df)
    return df * (1.0 - a + Z_1E4 * math.sqrt(a)) ** 3


def homogeneity_statistic(counts_a, counts_b, min_count=10):
    """Two-sample chi-square statistic and degrees of freedom; sparse classes pooled."""
    counts_a, counts_b = np.asarray(counts_a, float), np.asarray(counts_b, float)
    dense = counts_a + counts_b >= min_count
    table = np.stack([counts_a[dense], counts_b[dense]], 1)
    if (~dense).any():
        table = np.vstack([table, [counts_a[~dense].sum(), counts_b[~dense].sum()]])
    table = table[table.sum(1) > 0]
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    return float(((table - expected) ** 2 / expected).sum()), table.shape[0] - 1


def goodness_of_fit_statistic(counts, probabilities, min_expected=5):
    counts = np.asarray(counts, float)
    expected = np.asarray(probabilities, float) * counts.sum()
    dense = expected >= min_expected
    observed, wanted = list(counts[dense]), list(expected[dense])
    if (~dense).any() and expected[~dense].sum() > 0:
        observed.append(counts[~dense].sum())
        wanted.append(expected[~dense].sum())
    observed, wanted = np.array(observed), np.array(wanted)
    return float(((observed - wanted) ** 2 / wanted).sum()), len(observed) - 1


def assert_same_distribution(counts_a, counts_b):
    statistic, df = homogeneity_statistic(counts_a, counts_b)
    assert statistic < chi2_threshold(df), (statistic, df, chi2_threshold(df))


def assert_fits(counts, probabilities):
    statistic, df = goodness_of_fit_statistic(counts, probabilities)
    assert statistic < chi2_threshold(df), (statistic, df, chi2_threshold(df))


RANGE = 40
UNIGRAMS = [float((7 * i) % 11 + (i % 3 == 0) * 20) for i in range(RANGE - 2)]  # some zeros


def numpy_probabilities(kind, range_max=RANGE, counts=None):
    c = np.arange(range_max, dtype=np.float64)
    if kind == "log_uniform":
        return np.log((c + 2) / (c + 1)) / np.log(range_max + 1)
    if kind == "uniform":
        return np.full(range_max, 1.0 / range_max)
    if kind == "fixed_unigram":
        weights = np.concatenate([[0.0, 0.0], np.power(np.float32(UNIGRAMS), np.float32(0.75))])
        return weights / weights.sum()
    weights = 1.0 + np.asarray(counts, np.float64)
    return weights / weights.sum()


def make(kind, unique=True, seed=1, range_max=RANGE, **kwargs):
    if kind == "fixed_unigram":
        kwargs.update(unigrams=UNIGRAMS, distortion=0.75, num_reserved_ids=2)
    return samplers.get(kind, range_max, unique=unique, seed=seed, compilable=True, **kwargs)


def tf_sampler(kind, true_classes, num_sampled, unique, seed):
    options = dict(
        true_classes=true_classes,
        num_true=true_classes.shape[1],
        num_sampled=num_sampled,
        unique=unique,
        range_max=RANGE,
        seed=seed,
    )
    if kind == "log_uniform":
        return tf.random.log_uniform_candidate_sampler(**options)
    if kind == "uniform":
        return tf.random.uniform_candidate_sampler(**options)
    return tf.random.fixed_unigram_candidate_sampler(
        **options, unigrams=UNIGRAMS, distortion=0.75, num_reserved_ids=2
    )


LABELS = tf.constant([[0], [3], [17]], tf.int64)
FIXED_KINDS = ["log_uniform", "uniform", "fixed_unigram"]


# ------------------------------------------------------------- distributions
@pytest.mark.parametrize("kind", FIXED_KINDS)
def test_draws_with_replacement_match_tensorflow(kind):
    n = 40_000
    ours = make(kind, unique=False, seed=3).sample(LABELS, 1, n)[0].numpy()
    theirs = tf_sampler(kind, LABELS, n, unique=False, seed=3)[0].numpy()
    counts_ours = np.bincount(ours, minlength=RANGE)
    counts_theirs = np.bincount(theirs, minlength=RANGE)
    assert_same_distribution(counts_ours, counts_theirs)
    assert_fits(counts_ours, numpy_probabilities(kind))
    if kind == "fixed_unigram":
        assert counts_ours[numpy_probabilities(kind) == 0].sum() == 0
    # The tests have power: another distribution is told apart.
    other = "uniform" if kind != "uniform" else "log_uniform"
    counts_other = np.bincount(tf_sampler(other, LABELS, n, False, 3)[0].numpy(), minlength=RANGE)
    assert homogeneity_statistic(counts_ours, counts_other)[0] > 10 * chi2_threshold(RANGE)


def _tries_from_counts(expected, probability, num_sampled):
    """The number of draws TF's unique formula was evaluated with."""
    if np.isclose(expected, probability * num_sampled, rtol=1e-6):
        return num_sampled
    return int(round(np.log1p(-expected) / np.log1p(-probability)))


@pytest.mark.parametrize("kind", FIXED_KINDS)
def test_unique_draws_match_tensorflow(kind):
    calls, num_sampled = 300, 8
    sampler = make(kind, unique=True, seed=5)
    ours_fn = tf.function(lambda: sampler.sample(LABELS, 1, num_sampled))
    p = numpy_probabilities(kind)
    inclusion = {"ours": np.zeros(RANGE), "tf": np.zeros(RANGE)}
    first = {"ours": np.zeros(RANGE), "tf": np.zeros(RANGE)}
    tries = {"ours": [], "tf": []}
    for call in range(calls):
        for who, (cands, _, sampled_expected) in (
            ("ours", ours_fn()),
            ("tf", tf_sampler(kind, LABELS, num_sampled, True, seed=call + 1)),
        ):
            cands = cands.numpy()
            assert len(set(cands.tolist())) == num_sampled
            inclusion[who][cands] += 1
            first[who][cands[0]] += 1
            tries[who].append(
                _tries_from_counts(sampled_expected.numpy()[0], p[cands[0]], num_sampled)
            )
    assert_same_distribution(inclusion["ours"], inclusion["tf"])
    # The first candidate is a plain draw from P.
    assert_same_distribution(first["ours"], first["tf"])
    assert_fits(first["ours"], p)
    # The number of draws the rejection took has TF's distribution.
    a, b = np.array(tries["ours"], float), np.array(tries["tf"], float)
    assert a.min() >= num_sampled
    assert abs(a.mean() - b.mean()) < 4.5 * math.sqrt(a.var() / calls + b.var() / calls)
    top = int(max(a.max(), b.max())) + 1
    assert_same_distribution(
        np.bincount(a.astype(int), minlength=top), np.bincount(b.astype(int), minlength=top)
    )


def test_learned_unigram_samples_its_counts():
    counts = np.array([(i * 37) % 50 if i % 4 else 0 for i in range(RANGE)], np.int64)
    sampler = make("learned_unigram", unique=False, seed=2)
    sampler.set_counts(counts)
    drawn = sampler.draw(tf.constant([2, 9], tf.int64), 40_000).numpy()
    p = numpy_probabilities("learned_unigram", counts=counts)
    assert_fits(np.bincount(drawn, minlength=RANGE), p)
    # Power: the uniform distribution is rejected.
    assert goodness_of_fit_statistic(
        np.bincount(drawn, minlength=RANGE), np.full(RANGE, 1 / RANGE)
    )[0] > 10 * chi2_threshold(RANGE)


def test_learned_unigram_samples_before_it_counts_like_tensorflow():
    sampler = make("learned_unigram", unique=False, seed=2)
    labels = tf.constant([[4, 4], [9, 1]], tf.int64)
    _, true_expected, sampled_expected = sampler.sample(labels, 2, 6)
    # First call: all weights 1.
    np.testing.assert_allclose(true_expected.numpy(), np.full((2, 2), 6 / RANGE), rtol=1e-6)
    np.testing.assert_allclose(sampled_expected.numpy(), np.full(6, 6 / RANGE), rtol=1e-6)
    want = np.bincount([4, 4, 9, 1], minlength=RANGE)
    np.testing.assert_array_equal(sampler.counts().numpy(), want)
    _, true_expected, _ = sampler.sample(labels, 2, 6)
    total = RANGE + 4
    np.testing.assert_allclose(
        true_expected.numpy(),
        [[3 * 6 / total, 3 * 6 / total], [2 * 6 / total, 2 * 6 / total]],
        rtol=1e-6,
    )
    np.testing.assert_array_equal(sampler.counts().numpy(), 2 * want)


# ----------------------------------------------------- expected-count replay
def numpy_unique_replay(sampler, seed, num_sampled, per_round):
    """TensorFlow's rejection loop in NumPy over the sampler's own raw draws."""
    chosen, tries, round_index = [], 0, 0
    while len(chosen) < num_sampled:
        round_seed = compilable.round_seed(seed, round_index)
        for value in sampler.draw(round_seed, per_round).numpy():
            tries += 1
            if value not in chosen:
                chosen.append(int(value))
                if len(chosen) == num_sampled:
                    break
        round_index += 1
    return np.array(chosen), tries


def numpy_expected(p, tries, num_sampled):
    p = np.asarray(p, np.float64)
    if tries == num_sampled:
        return p * num_sampled
    return -np.expm1(tries * np.log1p(-p))


@pytest.mark.parametrize("kind", [*FIXED_KINDS, "learned_unigram"])
@pytest.mark.parametrize("unique", [True, False])
def test_expected_counts_replayed_in_numpy(kind, unique):
    counts = np.arange(RANGE) % 5
    labels = tf.constant([[0, 5], [3, 3], [17, 39]], tf.int64)
    num_sampled, per_round = 12, 5  # several rounds per unique call
    sampler = make(kind, unique=unique, seed=11, draws_per_round=per_round)
    if kind == "learned_unigram":
        sampler.set_counts(counts)
    p = numpy_probabilities(kind, counts=counts)
    for _ in range(3):
        seed = tf.stack([sampler.key.value, sampler.step.value])
        if unique:
            want_cands, tries = numpy_unique_replay(sampler, seed, num_sampled, per_round)
        else:
            want_cands, tries = sampler.draw(seed, num_sampled).numpy(), num_sampled
        cands, true_expected, sampled_expected = sampler.sample(labels, 2, num_sampled)
        np.testing.assert_array_equal(cands.numpy(), want_cands)
        assert cands.dtype == tf.int64 and true_expected.dtype == tf.float32
        assert true_expected.shape == (3, 2) and sampled_expected.shape == (num_sampled,)
        np.testing.assert_allclose(
            sampled_expected.numpy(), numpy_expected(p[want_cands], tries, num_sampled), rtol=1e-6
        )
        np.testing.assert_allclose(
            true_expected.numpy(), numpy_expected(p[labels.numpy()], tries, num_sampled), rtol=1e-6
        )
        if kind == "learned_unigram":
            counts = counts + np.bincount(labels.numpy().ravel(), minlength=RANGE)
            p = numpy_probabilities(kind, counts=counts)
            np.testing.assert_array_equal(sampler.counts().numpy(), counts)


def test_expected_count_formula_is_tensorflows():
    """Our formula with TF's number of tries reproduces TF's own expected counts."""
    p = numpy_probabilities("log_uniform")
    for seed in range(1, 30):
        cands, true_expected, sampled_expected = tf.random.log_uniform_candidate_sampler(
            LABELS, 1, 16, True, RANGE, seed=seed
        )
        cands = cands.numpy()
        tries = _tries_from_counts(sampled_expected.numpy()[0], p[cands[0]], 16)
        tries = tf.constant(tries, tf.int64)
        np.testing.assert_allclose(
            compilable.expected_count(p[cands], tries, 16).numpy(),
            sampled_expected.numpy(),
            rtol=2e-6,
        )
        np.testing.assert_allclose(
            compilable.expected_count(p[LABELS.numpy()], tries, 16).numpy(),
            true_expected.numpy(),
            rtol=2e-6,
        )


# ------------------------------------------------------------ state and XLA
ALL_KINDS = [*FIXED_KINDS, "learned_unigram"]


def test_same_seed_same_draws_compiled_or_not():
    # One compiled function for the four samplers: compiling is the slow part.
    eager = {kind: make(kind, seed=7) for kind in ALL_KINDS}
    compiled = {kind: make(kind, seed=7) for kind in ALL_KINDS}
    other = {kind: make(kind, seed=8) for kind in ALL_KINDS}
    compiled_fn = tf.function(
        lambda: {kind: sampler.sample(LABELS, 1, 10) for kind, sampler in compiled.items()},
        jit_compile=True,
    )
    differs = dict.fromkeys(ALL_KINDS, False)
    for _ in range(3):
        outputs = compiled_fn()
        for kind in ALL_KINDS:
            a, c = eager[kind].sample(LABELS, 1, 10), other[kind].sample(LABELS, 1, 10)
            for x, y in zip(a, outputs[kind], strict=True):
                np.testing.assert_array_equal(x.numpy(), y.numpy())
            differs[kind] |= not np.array_equal(a[0].numpy(), c[0].numpy())
    assert all(differs.values()), differs
    for kind in ALL_KINDS:
        assert int(eager[kind].step.numpy()) == int(compiled[kind].step.numpy()) == 3
    counts = 3 * np.bincount(LABELS.numpy().ravel(), minlength=RANGE)
    # The Fenwick tree over the counts: entry i - 1 sums classes (i - lowbit(i), i].
    i = np.arange(1, RANGE + 1)
    prefix = np.concatenate([[0], np.cumsum(counts)])
    for learned in (eager["learned_unigram"], compiled["learned_unigram"]):
        np.testing.assert_array_equal(learned.counts().numpy(), counts)
        np.testing.assert_array_equal(learned.fenwick.numpy(), prefix[i] - prefix[i - (i & -i)])


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_checkpoint_restores_the_stream(kind, tmp_path):
    sampler = make(kind, seed=None)
    for _ in range(2):
        sampler.sample(LABELS, 1, 10)
    path = tf.train.Checkpoint(sampler=sampler).save(str(tmp_path / "ckpt"))
    after = [sampler.sample(LABELS, 1, 10) for _ in range(2)]
    # A fresh sampler with another seed takes the saved key, step and counts.
    fresh = make(kind, seed=123)
    tf.train.Checkpoint(sampler=fresh).restore(path).assert_consumed()
    for want in after:
        for x, y in zip(want, fresh.sample(LABELS, 1, 10), strict=True):
            np.testing.assert_array_equal(x.numpy(), y.numpy())


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_config_and_serialize_round_trip(kind):
    sampler = make(kind, unique=False, seed=4, draws_per_round=7)
    rebuilt = type(sampler).from_config(sampler.get_config())
    assert rebuilt.get_config() == sampler.get_config()
    identifier = samplers.serialize(sampler)
    assert identifier["name"] == kind and identifier["compilable"] is True
    again = samplers.get(identifier, RANGE, seed=4)
    assert type(again) is type(sampler)
    assert again.unique is False and again.draws_per_round == 7
    for x, y in zip(sampler.sample(LABELS, 1, 6), again.sample(LABELS, 1, 6), strict=True):
        np.testing.assert_array_equal(x.numpy(), y.numpy())


# ------------------------------------------------------------------- errors
def test_bad_arguments_raise_and_leave_state_unchanged():
    sampler = make("learned_unigram", seed=1)
    with pytest.raises(ValueError, match="num_sampled"):
        sampler.sample(LABELS, 1, RANGE + 1)
    with pytest.raises(TypeError, match="true_classes"):
        sampler.sample(tf.constant([[1.0]]), 1, 3)
    with pytest.raises(ValueError, match="true_classes"):
        sampler.sample(tf.constant([1, 2], tf.int64), 1, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="true_classes"):
        sampler.sample(tf.constant([[RANGE]], tf.int64), 1, 3)
    with pytest.raises(tf.errors.InvalidArgumentError):
        sampler.set_counts(-np.ones(RANGE, np.int64))
    np.testing.assert_array_equal(sampler.counts().numpy(), np.zeros(RANGE))
    np.testing.assert_array_equal(sampler.fenwick.numpy(), np.zeros(RANGE))
    with pytest.raises(ValueError, match=r"`sampler` must be one of"):
        samplers.get("zipf", RANGE, compilable=True)
    with pytest.raises(ValueError, match="vocab_file"):
        samplers.get("fixed_unigram", RANGE, compilable=True, vocab_file="/nonexistent/vocab")
    with pytest.raises(ValueError, match="num_sampled"):
        make("fixed_unigram").sample(LABELS, 1, RANGE - 3)  # 3 classes have weight 0
    with pytest.raises(ValueError, match="draws_per_round"):
        make("uniform", draws_per_round=0)


# ------------------------------------------------------- compiled training
def _loss_and_gradients(loss_fn, weights, biases, labels, inputs, sampled_values, **options):
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        loss = loss_fn(weights, biases, labels, inputs, sampled_values=sampled_values, **options)
        total = tf.reduce_sum(loss)
    grad_w, grad_b, grad_x = tape.gradient(total, [weights, biases, inputs])
    return loss, tf.convert_to_tensor(grad_w), tf.convert_to_tensor(grad_b), grad_x


@pytest.mark.parametrize(
    "loss_name", ["sampled_softmax_loss", "nce_loss", "rank_sampled_softmax_loss"]
)
def test_compiled_step_equals_non_compiled_for_the_same_samples(loss_name):
    import tf_sampling.nn as tsn

    num_classes, dim, batch, num_true, num_sampled = 30, 6, 5, 2, 12
    rng = np.random.default_rng(3)
    weights = tf.Variable(rng.normal(size=(num_classes, dim)).astype(np.float32))
    biases = tf.Variable(rng.normal(size=num_classes).astype(np.float32))
    inputs = tf.constant(rng.normal(size=(batch, dim)).astype(np.float32))
    # Hits guaranteed: the candidates repeat and include true classes.
    labels = tf.constant([[0, 1], [1, 1], [2, 5], [7, 0], [3, 4]], tf.int64)
    sampler = make("log_uniform", unique=False, seed=9, range_max=num_classes)
    sampled_values = sampler.sample(labels, num_true, num_sampled)
    assert len(set(sampled_values[0].numpy().tolist())) < num_sampled
    options = dict(num_classes=num_classes, num_true=num_true, remove_accidental_hits=True)
    if loss_name == "rank_sampled_softmax_loss":
        options.update(
            num_sampled=num_sampled,
            num_resampled=6,
            resampling_temperature=0.5,
            partition_strategy="div",
        )
    else:
        options.update(num_sampled=num_sampled)
    loss_fn = getattr(tsn, loss_name)
    args = (loss_fn, weights, biases, labels, inputs, sampled_values)
    want = _loss_and_gradients(*args, **options)
    got = tf.function(lambda: _loss_and_gradients(*args, **options), jit_compile=True)()
    for w, g in zip(want, got, strict=True):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-5, atol=1e-5)
    # The masked candidates matter: without removal the loss differs.
    options["remove_accidental_hits"] = False
    unmasked = _loss_and_gradients(*args, **options)[0]
    assert not np.allclose(unmasked.numpy(), want[0].numpy())


def test_layers_support_jit_with_compilable_and_builtin_samplers():
    import tf_sampling

    # A built-in sampler compiles through its compilable twin.
    assert tf_sampling.layers.SampledSoftmax(20, 4).supports_jit
    head = tf_sampling.layers.SampledSoftmax(
        20, 4, sampler={"name": "uniform", "compilable": True, "unique": False}
    )
    assert head.supports_jit and head.sampler.supports_jit
    config = head.get_config()
    assert config["sampler"] == {"name": "uniform", "compilable": True, "unique": False}
    rebuilt = tf_sampling.layers.SampledSoftmax.from_config(config)
    assert isinstance(rebuilt.sampler, compilable.CompilableUniformSampler)
    assert rebuilt.supports_jit and rebuilt.sampler.unique is False


def test_keras_jit_fit_lowers_the_full_loss_of_every_layer(tmp_path):
    import keras

    import tf_sampling

    num_classes, dim = 30, 8
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, dim)).astype("float32")
    y = np.argmax(x @ rng.normal(size=(dim, num_classes)), 1).astype("int64")
    keras.utils.set_random_seed(1)

    def sampler(name):
        return {"name": name, "compilable": True}

    heads = [
        tf_sampling.layers.SampledSoftmax(
            num_classes, 10, sampler=sampler("log_uniform"), seed=1, name="softmax"
        ),
        tf_sampling.layers.NCE(num_classes, 10, sampler=sampler("uniform"), seed=1, name="nce"),
        tf_sampling.layers.RankSampledSoftmax(
            num_classes,
            10,
            num_resampled=5,
            sampler=sampler("learned_unigram"),
            seed=1,
            name="tapas",
        ),
    ]
    # One model, one compiled step for the three heads (compiling is the slow part).
    inputs = keras.Input((dim,))
    model = keras.Model(inputs, [head(inputs) for head in heads])
    model.compile(
        keras.optimizers.Adam(0.05),
        loss=[
            tf_sampling.losses.SampledSoftmaxLoss(),
            tf_sampling.losses.NCELoss(),
            tf_sampling.losses.RankSampledSoftmaxLoss(),
        ],
        jit_compile=True,
    )
    assert model.jit_compile is True  # Keras did not fall back
    before = model.evaluate(x, [y, y, y], verbose=0, return_dict=True)
    model.fit(x, [y, y, y], batch_size=64, epochs=3, verbose=0)
    after = model.evaluate(x, [y, y, y], verbose=0, return_dict=True)
    for name in ("softmax_loss", "nce_loss", "tapas_loss"):
        assert after[name] < 0.85 * before[name], (name, before[name], after[name])
    # The learned counts were updated inside the compiled steps: 3 epochs of y.
    learned = heads[2].sampler
    want_counts = 3 * np.bincount(y, minlength=num_classes)
    np.testing.assert_array_equal(learned.counts().numpy(), want_counts)
    assert int(learned.step.numpy()) == 3 * 4
    # ... and are saved with the model.
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    restored = loaded.get_layer("tapas").sampler
    np.testing.assert_array_equal(restored.counts().numpy(), want_counts)
    assert int(restored.step.numpy()) == 12
    assert loaded.get_layer("softmax").supports_jit


# ---------------------------------------------------------------------------
# Bad input and skewed weights (issue 22; from test_samplers_compilable_hardening.py).
# Skewed unique samples end (eagerly, in a graph, under XLA) with the law of
# rejection sampling; out-of-range true classes get TensorFlow's words, or NaN
# expected counts where XLA drops the check; seeds and counts that do not fit
# an int64 are named.
# ---------------------------------------------------------------------------


INT64_MAX = 2**63 - 1


def _skewed(name):
    if name == "learned_unigram":
        sampler = compilable.CompilableLearnedUnigramSampler(5, seed=7)
        sampler.set_counts([2**40, 0, 0, 0, 0])
        return sampler, 3
    return compilable.CompilableFixedUnigramSampler(3, unigrams=[1e30, 1.0, 1.0], seed=7), 2


# 1. Unique samples from skewed weights end, with the law of going on rejecting.


@pytest.mark.parametrize("name", ["learned_unigram", "fixed_unigram"])
def test_unique_samples_from_skewed_weights_end_compiled_or_not(name):
    sampler, num_sampled = _skewed(name)
    twin, _ = _skewed(name)  # same seed, same state
    empty = tf.zeros([0, 1], tf.int64)
    graph = tf.function(lambda: sampler.sample(empty, 1, num_sampled))
    jit = tf.function(lambda: twin.sample(empty, 1, num_sampled), jit_compile=True)
    for _ in range(2):
        plain, compiled = graph(), jit()
        for sampled, _, sampled_expected in (plain, compiled):
            values = sampled.numpy()
            # The heavy class comes first; the others are distinct and valid.
            assert values[0] == 0 and len(set(values.tolist())) == num_sampled
            assert np.all((values >= 0) & (values < sampler.range_max))
            expected = sampled_expected.numpy()
            assert expected[0] == pytest.approx(1.0)
            assert np.all((expected[1:] > 0) & (expected[1:] <= 1))
        np.testing.assert_array_equal(plain[0].numpy(), compiled[0].numpy())
        np.testing.assert_allclose(plain[2].numpy(), compiled[2].numpy(), rtol=1e-6)


def test_eager_unique_sample_from_skewed_weights_ends():
    sampler, num_sampled = _skewed("fixed_unigram")
    sampled, true_expected, _ = sampler.sample([[1]], 1, num_sampled)
    assert sampled.numpy()[0] == 0 and sampled.numpy()[1] in (1, 2)
    assert 0 < true_expected.numpy()[0, 0] <= 1


def test_completed_unique_samples_follow_the_law_of_rejection_sampling():
    """Class 0 weighs ~10^6, the others 1, 2, 4, 8: a second class takes ~6.7e4
    draws, so the rejection rounds (16 x 64 draws) mostly run out and the rest is
    drawn directly. The second class must still be in proportion to the weights
    left, and the number of draws geometric with mean total / 15 (read back from
    the expected count of the second class, -expm1(tries * log1p(-p)))."""
    counts = [10**6, 0, 1, 3, 7]
    total = sum(counts) + 5
    calls = 1200
    sampler = compilable.CompilableLearnedUnigramSampler(5, seed=21)
    sampler.set_counts(counts)
    empty = tf.zeros([0, 1], tf.int64)

    @tf.function
    def draws():
        outputs = tf.TensorArray(tf.int64, calls), tf.TensorArray(tf.float32, calls)
        for i in tf.range(calls):
            sampled, _, expected = sampler.sample(empty, 1, 2)
            outputs = outputs[0].write(i, sampled), outputs[1].write(i, expected)
        return outputs[0].stack(), outputs[1].stack()

    sampled, expected = (t.numpy() for t in draws())
    assert np.all(sampled[:, 0] == 0)
    second = sampled[:, 1]
    observed = np.bincount(second, minlength=5)[1:]
    weights = np.array([1, 2, 4, 8]) / 15
    chi2 = float(((observed - calls * weights) ** 2 / (calls * weights)).sum())
    assert chi2 < 16.3, (observed, chi2)  # 3 dof, p = 0.001
    p = (np.asarray(counts)[second] + 1) / total
    tries = np.log1p(-expected[:, 1].astype(np.float64)) / np.log1p(-p)
    mean = total / 15
    # Geometric: sd = mean; 5 sd of the mean of `calls` draws (float32 rounding included).
    assert abs(np.mean(tries) - mean) < 5 * mean / math.sqrt(calls) + 0.02 * mean
    np.testing.assert_array_equal(sampler.counts().numpy(), counts)


def test_unique_samples_that_rejection_finishes_are_unchanged_by_the_completion():
    # A uniform sample of all 40 classes: the coupon collector needs ~171 draws,
    # well inside the rounds, so every class appears once and no completion runs.
    sampler = compilable.CompilableUniformSampler(40, seed=3)
    sampled, _, expected = sampler.sample([[0]], 1, 40)
    assert sorted(sampled.numpy().tolist()) == list(range(40))
    tries = math.log1p(-float(expected.numpy()[0])) / math.log1p(-1 / 40)
    assert 40 < tries < 16 * 80


# 2. set_counts refuses totals past int64, before anything changes.


@pytest.mark.parametrize(
    "counts",
    [[2**62, 2**62, 0, 0, 0], [2**62] * 4 + [0], [INT64_MAX - 4, 0, 0, 0, 0]],
    ids=["overflow", "wraps_to_zero", "total_past_int64"],
)
def test_compilable_set_counts_refuses_totals_past_int64(counts):
    sampler = compilable.CompilableLearnedUnigramSampler(5, seed=1)
    sampler.set_counts([1, 2, 3, 4, 5])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`counts` must sum to at most"):
        sampler.set_counts(counts)
    np.testing.assert_array_equal(sampler.counts().numpy(), [1, 2, 3, 4, 5])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`counts` must sum"):
        tf.function(sampler.set_counts)(tf.constant(counts, tf.int64))
    np.testing.assert_array_equal(sampler.counts().numpy(), [1, 2, 3, 4, 5])
    # The sampler still works from the old counts.
    sampled, _, _ = sampler.sample([[0]], 1, 3)
    assert np.all((sampled.numpy() >= 0) & (sampled.numpy() < 5))


def test_compilable_learned_unigram_at_the_int64_limit_refuses_more_counts():
    sampler = compilable.CompilableLearnedUnigramSampler(5, unique=False, seed=1)
    sampler.set_counts([INT64_MAX - 5, 0, 0, 0, 0])  # total weight exactly 2^63 - 1
    step = int(sampler.step.numpy())
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"total weight.*2\^63 - 1"):
        sampler.sample([[1]], 1, 2)
    assert int(sampler.step.numpy()) == step
    np.testing.assert_array_equal(sampler.counts().numpy(), [INT64_MAX - 5, 0, 0, 0, 0])
    sampled, _, _ = sampler.sample(tf.zeros([0, 1], tf.int64), 1, 2)
    assert np.all((sampled.numpy() >= 0) & (sampled.numpy() < 5))


# 3. Seeds that are not int64 are named.


@pytest.mark.parametrize("seed", [2**63, 2**64 + 1, -(2**63) - 1])
@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("name", ["log_uniform", "uniform", "learned_unigram"])
def test_seeds_outside_int64_are_named(name, compiled, seed):
    with pytest.raises(ValueError, match=rf"`seed` must fit in an int64.*seed={seed}"):
        samplers.get({"name": name, "compilable": compiled}, 10, seed=seed)


def test_largest_int64_seed_is_taken():
    sampler = samplers.get({"name": "uniform", "compilable": True}, 10, seed=INT64_MAX)
    assert int(sampler.key.numpy()) == INT64_MAX
    assert sampler.sample([[1]], 1, 3)[0].shape == (3,)


# 4. Out-of-range true classes: TensorFlow's words, or NaN under XLA.


def _tf_message(true_class, range_max=5):
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        tf.random.uniform_candidate_sampler(
            tf.constant([[true_class]], tf.int64), 1, 2, True, range_max
        )
    # "`true_candidate` out of range [0, 5), received 7", without TF's op suffix.
    message = str(info.value)
    start = message.index("`true_candidate`")
    return message[start : message.index(" [Op:", start)]


def _compilable(name, range_max=5, unique=True):
    options = {"unigrams": [1.0] * range_max} if name == "fixed_unigram" else {}
    return compilable.get(name, range_max, unique=unique, seed=3, **options)


NAMES = ["log_uniform", "uniform", "fixed_unigram", "learned_unigram"]


@pytest.mark.parametrize("bad", [7, 5, -1])
@pytest.mark.parametrize("name", NAMES)
def test_compilable_out_of_range_true_class_gets_tensorflows_words(name, bad):
    sampler = _compilable(name)
    step = int(sampler.step.numpy())
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        sampler.sample([[1], [bad]], 1, 2)
    message = str(info.value)
    assert _tf_message(bad) in message
    assert f"true_classes[1, 0] = {bad}" in message
    assert int(sampler.step.numpy()) == step  # nothing drawn or counted
    graph = tf.function(lambda tc: sampler.sample(tc, 1, 2))
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(_tf_message(bad))):
        graph(tf.constant([[1], [bad]], tf.int64))


@pytest.mark.parametrize("name", NAMES)
def test_compiled_out_of_range_true_class_gets_a_nan_expected_count(name):
    # With replacement: the check does not depend on it, and it compiles faster.
    sampler = _compilable(name, unique=False)
    reference = _compilable(name, unique=False)
    jit = tf.function(lambda tc: sampler.sample(tc, 1, 2), jit_compile=True)
    _, true_expected, sampled_expected = jit(tf.constant([[1], [9], [-2], [4]], tf.int64))
    values = true_expected.numpy()[:, 0]
    assert np.isnan(values[1]) and np.isnan(values[2])
    assert np.all(np.isfinite(sampled_expected.numpy()))
    # The valid rows have the values of the same call on valid classes alone.
    _, want, _ = reference.sample([[1], [1], [1], [4]], 1, 2)
    np.testing.assert_allclose(values[[0, 3]], want.numpy()[[0, 3], 0], rtol=1e-6)
    if name == "learned_unigram":  # invalid classes are left out of the counts
        np.testing.assert_array_equal(sampler.counts().numpy(), [0, 1, 0, 0, 1])
