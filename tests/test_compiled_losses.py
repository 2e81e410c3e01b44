"""The functional losses under jit_compile: injected samples, the default sampler, hashing dedup."""

import numpy as np
import pytest
import tensorflow as tf

import tf_sampling.nn as tsn
from tf_sampling._core import accidental_hits
from tf_sampling.samplers import compilable, xla_defaults

NUM_CLASSES, DIM, BATCH, NUM_SAMPLED = 50, 8, 6, 12
SEED = 5


@pytest.fixture(autouse=True)
def _fresh_default_samplers():
    xla_defaults.clear()
    yield
    xla_defaults.clear()


def _problem(num_true=1):
    rng = np.random.default_rng(7)
    weights = tf.Variable(rng.normal(size=(NUM_CLASSES, DIM)).astype(np.float32))
    biases = tf.Variable(rng.normal(size=NUM_CLASSES).astype(np.float32))
    inputs = tf.constant(rng.normal(size=(BATCH, DIM)).astype(np.float32))
    # Frequent classes, so the samples hit true classes (accidental hits).
    labels = tf.constant(rng.integers(0, 4, size=(BATCH, num_true)), tf.int64)
    return weights, biases, inputs, labels


def _losses(name, weights, biases, labels, inputs, num_true, sampled_values):
    if name == "sampled_softmax_loss":
        return tsn.sampled_softmax_loss(
            weights, biases, labels, inputs, NUM_SAMPLED, NUM_CLASSES, num_true=num_true,
            sampled_values=sampled_values, seed=SEED,
        )  # fmt: skip
    if name == "rank_sampled_softmax_loss":
        return tsn.rank_sampled_softmax_loss(
            weights, biases, labels, inputs, NUM_SAMPLED, NUM_SAMPLED // 2, NUM_CLASSES,
            num_true, sampled_values, 1.0, True, "mod",
        )  # fmt: skip
    return getattr(tsn, name)(
        weights, biases, labels, inputs, NUM_SAMPLED, NUM_CLASSES, num_true=num_true,
        sampled_values=sampled_values, remove_accidental_hits=True,
    )  # fmt: skip


def _step_fn(name, weights, biases, labels, inputs, num_true, sampled_values):
    def step():
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            losses = _losses(name, weights, biases, labels, inputs, num_true, sampled_values)
            total = tf.reduce_sum(losses)
        grads = tape.gradient(total, [weights, biases, inputs])
        return [losses] + [tf.convert_to_tensor(g) for g in grads]

    return step


def _step(*args, jit):
    return tf.function(_step_fn(*args), jit_compile=jit)()


# test_samplers_compilable covers the three losses with unique samples and
# num_true=1; here repeated candidates and two true classes.
@pytest.mark.parametrize("name, num_true", [("sampled_softmax_loss", 2), ("nce_loss", 1)])
def test_compiled_loss_and_gradients_equal_non_compiled_for_injected_samples(name, num_true):
    weights, biases, inputs, labels = _problem(num_true)
    # TF's sampler, not unique: repeated candidates exercise TF's last-position hit rule.
    sampled_values = tuple(
        tf.identity(t)
        for t in tf.random.log_uniform_candidate_sampler(
            labels, num_true, NUM_SAMPLED, name == "rank_sampled_softmax_loss", NUM_CLASSES, seed=3
        )
    )
    assert len(set(sampled_values[0].numpy()) & set(labels.numpy().ravel())) > 0
    args = (name, weights, biases, labels, inputs, num_true, sampled_values)
    compiled, plain = _step(*args, jit=True), _step(*args, jit=False)
    for got, want in zip(compiled, plain, strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=2e-5, atol=2e-6)


# nce_loss takes the same default path as sampled_softmax_loss (log-uniform).
@pytest.mark.parametrize("name", ["sampled_softmax_loss", "rank_sampled_softmax_loss"])
def test_default_sampler_under_jit_is_the_compilable_one(name):
    """sampled_values=None under XLA: the default sampler's draws, then the same loss."""
    weights, biases, inputs, labels = _problem()
    seed = SEED if name == "sampled_softmax_loss" else None
    tf.random.set_seed(11)
    try:
        compiled_step = tf.function(
            _step_fn(name, weights, biases, labels, inputs, 1, None), jit_compile=True
        )
        first, second = compiled_step(), compiled_step()
        distribution = "learned_unigram" if name.startswith("rank") else "log_uniform"
        sampler = xla_defaults.default_sampler(distribution, NUM_CLASSES, seed=seed)
    finally:
        tf.random.set_seed(None)
    assert sampler.unique and sampler.step.numpy() == 2
    # Replay: a fresh sampler of the same key draws what the compiled steps drew.
    replay = compilable.get(distribution, NUM_CLASSES, seed=int(sampler.key.numpy()))
    for compiled in (first, second):
        values = replay.sample(labels, 1, NUM_SAMPLED)
        plain = _step_fn(name, weights, biases, labels, inputs, 1, values)()  # eager
        for got, want in zip(compiled, plain, strict=True):
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=2e-5, atol=2e-6)
    if distribution == "learned_unigram":
        # The counts were learned inside the compiled steps.
        np.testing.assert_array_equal(sampler.counts().numpy(), replay.counts().numpy())
        assert sampler.counts().numpy().sum() == 2 * BATCH


def test_default_stream_moves_on_and_is_fixed_by_the_seeds():
    weights, biases, inputs, labels = _problem()

    @tf.function(jit_compile=True)
    def losses():
        return tsn.sampled_softmax_loss(
            weights, biases, labels, inputs, NUM_SAMPLED, NUM_CLASSES, seed=9
        )

    first, second = losses().numpy(), losses().numpy()
    assert not np.allclose(first, second)  # new draws on every call
    sampler = xla_defaults.default_sampler("log_uniform", NUM_CLASSES, seed=9)
    assert sampler.step.numpy() == 2
    key = sampler.key.numpy()
    xla_defaults.clear()
    # A new stream for the same seeds has the same key, hence (draws being a
    # function of key and call number, as the replay test shows) the same draws.
    again = xla_defaults.default_sampler("log_uniform", NUM_CLASSES, seed=9)
    assert again is not sampler and again.key.numpy() == key and again.step.numpy() == 0
    other = xla_defaults.default_sampler("log_uniform", NUM_CLASSES, seed=10)
    assert other.key.numpy() != key
    tf.random.set_seed(4)
    try:
        with_global = xla_defaults.default_sampler("log_uniform", NUM_CLASSES, seed=9)
    finally:
        tf.random.set_seed(None)
    assert with_global.key.numpy() not in (key, other.key.numpy())


def test_default_sampler_errors_name_the_argument():
    weights, biases, inputs, labels = _problem()

    @tf.function(jit_compile=True)
    def too_many():
        return tsn.sampled_softmax_loss(
            weights, biases, labels, inputs, NUM_CLASSES + 1, NUM_CLASSES
        )

    with pytest.raises(ValueError, match="num_sampled"):
        too_many()

    @tf.function(jit_compile=True)
    def bad_resampled():
        return tsn.rank_sampled_softmax_loss(
            weights, biases, labels, inputs, NUM_SAMPLED, NUM_SAMPLED, NUM_CLASSES,
            1, None, 1.0, True, "mod",
        )  # fmt: skip

    with pytest.raises(ValueError, match="num_resampled"):
        bad_resampled()
    assert not xla_defaults._SAMPLERS  # nothing was drawn


def _numpy_occurrences(values, last):
    values = np.asarray(values)
    order = values[::-1] if last else values
    index = np.unique(order, return_index=True)[1]
    want = np.zeros(len(values), bool)
    want[(len(values) - 1 - index) if last else index] = True
    return want


@pytest.mark.parametrize("last", [False, True])
def test_hashed_occurrences_match_numpy(last):
    rng = np.random.default_rng(3)
    n = 257  # one length: one compilation
    cases = [
        rng.integers(0, 40, n),  # many repeats, many hash collisions per round
        rng.integers(-(2**62), 2**62, n),  # wide values
        (np.arange(n) << 40) % (2**62),  # equal low bits
        np.array([-1] * 9 + [3, -1, 3] * 82 + [-1, 2]),
    ]
    compiled = tf.function(lambda v: accidental_hits.occurrences(v, last), jit_compile=True)
    np.testing.assert_array_equal(accidental_hits.occurrences(tf.constant([7]), last), [True])
    for values in cases:
        values = tf.constant(values, tf.int64)
        want = _numpy_occurrences(values.numpy(), last)
        np.testing.assert_array_equal(accidental_hits.occurrences(values, last).numpy(), want)
        np.testing.assert_array_equal(compiled(values).numpy(), want)


def test_unique_draws_agree_compiled_or_not_for_keys_past_32_bits():
    # A random stream key has 62 bits; the rounds' seeds must not lose them under XLA.
    labels = tf.zeros([3, 1], tf.int64)
    plain = compilable.get("log_uniform", NUM_CLASSES, seed=2**40 + 3, draws_per_round=8)
    jitted = compilable.get("log_uniform", NUM_CLASSES, seed=2**40 + 3, draws_per_round=8)
    compiled = tf.function(lambda: jitted.sample(labels, 1, NUM_SAMPLED), jit_compile=True)
    for _ in range(2):
        for got, want in zip(compiled(), plain.sample(labels, 1, NUM_SAMPLED), strict=True):
            np.testing.assert_array_equal(got.numpy(), want.numpy())
