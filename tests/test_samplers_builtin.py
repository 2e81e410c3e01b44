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
