"""Built-in sampler objects and ``tf_sampling.samplers.get``/``serialize``."""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from tf_sampling import samplers

ROOT = pathlib.Path(__file__).resolve().parents[1]
SO_BUILT = any((ROOT / "tf_sampling" / "ops").glob("*.so"))

TRUE = tf.constant([[1, 2], [3, 4], [0, 9]], tf.int64)


def _tf_op(name, **kw):
    ops = {
        "log_uniform": tf.random.log_uniform_candidate_sampler,
        "uniform": tf.random.uniform_candidate_sampler,
        "fixed_unigram": tf.random.fixed_unigram_candidate_sampler,
    }
    return ops[name](**kw)


@pytest.mark.parametrize("name", ["log_uniform", "uniform"])
def test_sampler_matches_the_tf_op_with_the_same_seeds(name):
    tf.random.set_seed(11)
    sampler = samplers.get(name, num_classes=50, seed=5)
    got = sampler.sample(TRUE, 2, 7)
    tf.random.set_seed(11)
    want = _tf_op(
        name, true_classes=TRUE, num_true=2, num_sampled=7, unique=True, range_max=50, seed=5
    )
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g.numpy(), w.numpy())
    assert got[0].dtype == tf.int64 and got[0].shape == (7,)
    assert got[1].shape == (3, 2) and got[2].shape == (7,)
    assert len(set(got[0].numpy().tolist())) == 7  # unique


def test_fixed_unigram_from_unigrams_and_from_vocab_file(tmp_path):
    unigrams = [0.0, 5.0, 0.0, 3.0, 2.0, 0.0]
    sampler = samplers.get({"name": "fixed_unigram", "unigrams": unigrams}, 6, unique=False)
    sampled, true_expected, _ = sampler.sample(tf.constant([[1], [3]], tf.int64), 1, 200)
    assert set(sampled.numpy().tolist()) <= {1, 3, 4}  # zero-count classes never drawn
    np.testing.assert_allclose(true_expected.numpy()[:, 0], [200 * 0.5, 200 * 0.3], rtol=1e-5)
    vocab = tmp_path / "vocab.csv"
    vocab.write_text("".join(f"w{i},{c}\n" for i, c in enumerate(unigrams)))
    from_file = samplers.get(
        "fixed_unigram", 6, unique=False, vocab_file=str(vocab), distortion=0.5
    )
    _, expected_file, _ = from_file.sample(tf.constant([[1], [3]], tf.int64), 1, 10)
    p = np.array(unigrams) ** 0.5
    np.testing.assert_allclose(expected_file.numpy()[:, 0], 10 * p[[1, 3]] / p.sum(), rtol=1e-5)
    assert samplers.serialize(from_file) == {
        "name": "fixed_unigram",
        "unique": False,
        "vocab_file": str(vocab),
        "distortion": 0.5,
    }


@pytest.mark.parametrize(
    "identifier",
    [
        "uniform",
        {"name": "log_uniform", "unique": False},
        {"name": "fixed_unigram", "unigrams": [1.0, 2.0, 3.0, 4.0], "distortion": 0.75},
        {"name": "fixed_unigram", "unigrams": [1.0, 2.0, 3.0], "num_reserved_ids": 1},
    ],
)
def test_serialize_round_trip(identifier):
    sampler = samplers.get(identifier, 4, seed=1)
    assert samplers.serialize(sampler) == identifier
    again = samplers.get(samplers.serialize(sampler), 4, seed=1)
    assert type(again) is type(sampler) and again.get_config() == sampler.get_config()


def test_objects_are_passed_through():
    sampler = samplers.UniformSampler(10)
    assert samplers.get(sampler, 10) is sampler


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: samplers.get("zipf", 10), ValueError, ["'zipf'", "log_uniform"]),
        (lambda: samplers.get(3, 10), TypeError, ["3"]),
        (lambda: samplers.get({"unique": True}, 10), ValueError, ["'name'"]),
        (lambda: samplers.get("uniform", -2), ValueError, ["-2"]),
        (lambda: samplers.get("uniform", 10, distortion=0.5), ValueError, ["distortion"]),
        (lambda: samplers.get("fixed_unigram", 10), ValueError, ["unigrams", "vocab_file"]),
        (
            lambda: samplers.get("fixed_unigram", 10, unigrams=[1.0] * 9),
            ValueError,
            ["10", "9"],
        ),
        (lambda: samplers.get("uniform", 10, seed=1.5), TypeError, ["seed", "1.5"]),
    ],
)
def test_bad_sampler_arguments(call, error, words):
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value), str(info.value)


@pytest.mark.skipif(
    not SO_BUILT and not os.environ.get("CI"),
    reason="learned-unigram op library not built (run scripts/setup.sh)",
)
def test_learned_unigram_by_name_is_the_op_backed_layer():
    sampler = samplers.get("learned_unigram", 12, unique=False, seed=3)
    assert type(sampler).__name__ == "LearnedUnigramSampler"
    assert sampler.range_max == 12 and sampler.unique is False
    assert samplers.serialize(sampler) == {"name": "learned_unigram", "unique": False}
    sampled, true_expected, sampled_expected = sampler.sample(TRUE, 2, 5)
    assert sampled.shape == (5,) and true_expected.shape == (3, 2)
    with pytest.raises(ValueError, match="distortion"):
        samplers.get("learned_unigram", 12, distortion=0.5)


# ---------------------------------------------------------------------------
# No NaN, hang or unclear error from fixed_unigram (issue 12; from test_samplers_hardening.py)
# ---------------------------------------------------------------------------


# fixed_unigram refuses weights TensorFlow would turn into NaN or a hang.


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        (dict(unigrams=[0.0, 0.0, 0.0, 0.0]), ValueError, ["`unigrams`", "sum is 0.0"]),
        (dict(unigrams=[1.0, float("nan"), 1.0, 1.0]), ValueError, ["`unigrams`", "nan", "1"]),
        (dict(unigrams=[1.0, 1.0, float("inf"), 1.0]), ValueError, ["inf", "index 2"]),
        (dict(unigrams=[1.0, 1e39, 1.0, 1.0]), ValueError, ["float32", "1e+39"]),
        (dict(unigrams=[1.0, -1.0, 1.0, 1.0]), ValueError, ["-1.0", "index 1"]),
        (dict(unigrams=[2.0, 3.0, 1.0, 1.0], distortion=1e6), ValueError, ["not finite"]),
        (dict(unigrams=[0.5, 0.25, 0.5, 0.1], distortion=1e6), ValueError, ["sum is 0.0"]),
        (dict(unigrams=[0.0, 1.0, 1.0, 1.0], distortion=-1.0), ValueError, ["index 0"]),
        (dict(unigrams=[1.0] * 4, distortion=float("nan")), ValueError, ["distortion=nan"]),
        (dict(unigrams=[1.0] * 4, distortion="2"), TypeError, ["distortion", "'2'"]),
        (dict(unigrams=[1.0] * 4, num_reserved_ids=1.0), TypeError, ["num_reserved_ids"]),
    ],
)
def test_fixed_unigram_rejects_bad_weights_when_built(options, error, words):
    with pytest.raises(error) as info:
        samplers.get("fixed_unigram", 4, **options)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_fixed_unigram_vocab_file_is_checked_when_built(tmp_path):
    vocab = tmp_path / "vocab.csv"
    vocab.write_text("a,0\nb,0\nc,0\n")
    with pytest.raises(ValueError, match=r"vocab_file.*sum is 0\.0"):
        samplers.get("fixed_unigram", 3, vocab_file=str(vocab))
    vocab.write_text("a,1\nb,2\n")
    with pytest.raises(ValueError, match=r"vocab_file.*3 values\. Received: 2 values"):
        samplers.get("fixed_unigram", 3, vocab_file=str(vocab))
    vocab.write_text("a,1\nb,x\nc,1\n")
    with pytest.raises(ValueError, match=r"vocab_file.*line 2: 'b,x'"):
        samplers.get("fixed_unigram", 3, vocab_file=str(vocab))


def test_fixed_unigram_unique_sample_larger_than_its_support_is_refused():
    sampler = samplers.get("fixed_unigram", 5, unigrams=[4.0, 0.0, 1.0, 1e-30, 0.0], distortion=2)
    assert sampler.num_drawable == 2  # 1e-30 ** 2 is 0 in float32.
    with pytest.raises(ValueError, match=r"`num_sampled` must be <= the 2 classes.*num_sampled=3"):
        sampler.sample([[0]], 1, 3)
    sampled, _, _ = sampler.sample([[0]], 1, 2)
    assert sorted(sampled.numpy().tolist()) == [0, 2]


@pytest.mark.parametrize("name", ["uniform", "log_uniform"])
def test_builtin_unique_sample_larger_than_the_range_is_named(name):
    with pytest.raises(ValueError, match=r"`num_sampled` must be <= `range_max`.*num_sampled=11"):
        samplers.get(name, 10).sample([[0]], 1, 11)


# Found in the adversarial pass.


def test_fixed_unigram_unique_sample_that_rejection_cannot_finish_is_refused():
    sampler = samplers.get("fixed_unigram", 3, unigrams=[1e30, 1.0, 1.0], seed=1)
    with pytest.raises(ValueError, match=r"`num_sampled` must be small enough.*num_sampled=2"):
        sampler.sample([[0]], 1, 2)
    assert sampler.sample([[0]], 1, 1)[0].numpy().tolist() == [0]
    # Non-unique draws never reject.
    nonunique = samplers.get("fixed_unigram", 3, unigrams=[1e30, 1.0, 1.0], unique=False)
    assert nonunique.sample([[0]], 1, 3)[0].shape == (3,)
    # A skew that rejection gets through quickly is still sampled.
    sampled, _, sampled_expected = samplers.get(
        "fixed_unigram", 3, unigrams=[1e5, 1.0, 1.0], seed=4
    ).sample([[0]], 1, 3)
    assert sorted(sampled.numpy().tolist()) == [0, 1, 2]
    assert np.all(sampled_expected.numpy() > 0) and np.all(sampled_expected.numpy() <= 1)


def test_unique_draws_bound_matches_the_coupon_collector():
    from tf_sampling.samplers.builtin import unique_draws_bound

    bound = unique_draws_bound([1.0] * 4, 1.0)
    np.testing.assert_allclose(bound, [1, 1 + 4 / 3, 1 + 4 / 3 + 2, 1 + 4 / 3 + 2 + 4])
    assert np.isinf(unique_draws_bound([1.0, 0.0], 1.0)[1])


def test_fixed_unigram_non_numbers_are_named():
    with pytest.raises(TypeError, match=r"`unigrams` must be a sequence of numbers.*'x'"):
        samplers.get("fixed_unigram", 3, unigrams=["1", "x", "2"])


# ---------------------------------------------------------------------------
# One protocol, one registry (issue 23)
# ---------------------------------------------------------------------------


def test_every_sampler_follows_one_protocol_and_is_in_one_registry():
    import inspect

    from tf_sampling.samplers import base, builtin, compilable, learned_unigram

    assert samplers.names() == ("log_uniform", "uniform", "fixed_unigram", "learned_unigram")
    for name in samplers.names():
        for compiled in (False, True):
            cls = base.sampler_class(name, compiled)
            assert issubclass(cls, samplers.Sampler)
            assert (cls.sampler_name, cls.compilable) == (name, compiled)
    # Every concrete sampler class of the package is registered.
    defined = {
        cls
        for module in (builtin, compilable, learned_unigram)
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, samplers.Sampler) and cls.sampler_name
    }
    registered = {base.sampler_class(n, c) for n in samplers.names() for c in (False, True)}
    assert defined == registered
    # The same four things describe every kind; serialize reads only them.
    options = {"unigrams": [1.0, 2.0, 3.0, 4.0]}
    for name, extra in [("uniform", {}), ("fixed_unigram", options)]:
        for compiled in (False, True):
            sampler = samplers.get(name, 4, unique=False, seed=1, compilable=compiled, **extra)
            assert (sampler.sampler_name, sampler.unique, sampler.compilable) == (
                name,
                False,
                compiled,
            )
            identifier = samplers.serialize(sampler)
            assert identifier["name"] == name and identifier.get("compilable", False) == compiled
            again = samplers.get(identifier, 4, seed=1)
            assert type(again) is type(sampler)
            assert again.sampler_options() == sampler.sampler_options()
    with pytest.raises(ValueError, match=r"options of the compilable 'uniform' sampler.*\['bad'\]"):
        samplers.get("uniform", 4, compilable=True, bad=1)
    with pytest.raises(TypeError, match="`compilable` must be a bool"):
        samplers.get("uniform", 4, compilable="yes")
