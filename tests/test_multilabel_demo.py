"""demo/multilabel: the example builder on a hand-computed frame, no leakage, and exact metrics.

No download: small synthetic frames stand in for MovieLens-100K.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from demo.movielens import data as ml
from demo.multilabel import examples as ex
from demo.multilabel import train as job

PAD = ex.PADDING_ID

# user, movie, rating, time. User 0: a burst at 100-110 (movie 7 not liked), one at
# 1000-1020, one at 5000; user 1: 100, then a burst at 3000-3010 (two movies at 3000).
FRAME = np.array(
    [
        [0, 5, 5, 100],
        [0, 3, 4, 110],
        [0, 7, 2, 115],
        [0, 1, 4, 1000],
        [0, 2, 5, 1010],
        [0, 4, 4, 1020],
        [0, 6, 4, 5000],
        [1, 0, 4, 100],
        [1, 9, 4, 3000],
        [1, 8, 5, 3000],
        [1, 3, 5, 3010],
    ]
)


def _build(frame, **kwargs):
    user, movie, rating, time = frame.T
    return ex.build(user, movie, rating, time, 10, **kwargs)


def test_examples_match_a_hand_computed_case():
    # Rows in shuffled order: the builder sorts.
    frame = FRAME[np.random.default_rng(0).permutation(len(FRAME))]
    split = _build(frame, max_true=2, history=3, test_fraction=0.3)
    # 10 liked times; the 0.7 quantile (lower) of them is the 7th smallest: 3000.
    assert split.cutoff == 3000
    # The first burst of each user has no history: dropped. User 0's burst of 3 is
    # split 1 + 2; its input is the last 3 liked movies before it (+1, 0 = empty).
    np.testing.assert_array_equal(split.train.history, [[6, 4, 0], [6, 4, 2]])
    np.testing.assert_array_equal(split.train.labels, [[1, PAD], [2, 4]])
    np.testing.assert_array_equal(split.train.user, [0, 0])
    np.testing.assert_array_equal(split.train.time, [1000, 1010])
    # Test period: user 0's last movie; user 1's burst 8, 9, 3 (ties by movie row).
    np.testing.assert_array_equal(split.test.history, [[2, 3, 5], [1, 0, 0], [1, 9, 0]])
    np.testing.assert_array_equal(split.test.labels, [[6, PAD], [8, PAD], [9, 3]])
    np.testing.assert_array_equal(split.test.user, [0, 1, 1])
    np.testing.assert_array_equal(split.train.num_true, [1, 2])
    np.testing.assert_array_equal(ex.repeat_first(split.test.labels), [[6, 6], [8, 8], [9, 3]])


def test_bursts_break_at_gaps_users_and_the_cut():
    user = np.array([0, 0, 0, 0, 1, 1])
    time = np.array([0, 30, 60, 200, 210, 230])
    np.testing.assert_array_equal(ex.bursts(user, time, gap=60, cutoff=30), [0, 1, 3, 4])
    np.testing.assert_array_equal(ex.bursts(user, time, gap=60, cutoff=10**6), [0, 3, 4])
    assert ex.pieces(5, 2) == [(0, 1), (1, 3), (3, 5)]
    assert ex.pieces(8, 8) == [(0, 8)]
    assert ex.pieces(9, 4) == [(0, 3), (3, 6), (6, 9)]


def _random_frame(seed=0, users=30, movies=60):
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        seen = rng.choice(movies, size=rng.integers(4, 25), replace=False)
        # Bursts: mostly 1-40 s apart, sometimes hours.
        steps = np.where(
            rng.random(len(seen)) < 0.25, rng.integers(100, 10**5), rng.integers(1, 40)
        )
        times = rng.integers(0, 10**6) + np.cumsum(steps)
        rows += [[u, m, rng.integers(1, 6), t] for m, t in zip(seen, times, strict=True)]
    return np.array(rows), movies


@pytest.mark.parametrize("test_fraction", [0.2, 0.3, 0.45])
def test_no_test_period_movie_is_a_training_label_and_inputs_are_the_past(test_fraction):
    frame, movies = _random_frame()
    split = ex.build(*frame.T, movies, max_true=4, history=5, test_fraction=test_fraction)
    when = {(u, m): t for u, m, r, t in frame if r >= 4}
    assert len(split.train.labels) > 20 and len(split.test.labels) > 5
    for side, before in ((split.train, True), (split.test, False)):
        for hist, labels, user, first in zip(
            side.history, side.labels, side.user, side.time, strict=True
        ):
            real = labels[labels != PAD]
            # Padding only after the real labels, 1 to max_true of them.
            assert 1 <= len(real) <= 4 and np.all(labels[len(real) :] == PAD)
            times = np.array([when[(user, m)] for m in real])
            assert np.all(times < split.cutoff) if before else np.all(times >= split.cutoff)
            assert times.min() == first
            inputs = hist[hist > 0] - 1
            assert 1 <= len(inputs) <= 5 and not set(inputs) & set(real)
            assert all(when[(user, m)] <= first for m in inputs)
    # A liked rating is a label at most once; only each user's first piece is dropped.
    pairs = [
        (u, m)
        for s in (split.train, split.test)
        for u, row in zip(s.user, s.labels, strict=True)
        for m in row[row != PAD]
    ]
    assert len(pairs) == len(set(pairs)) and set(pairs) <= set(when)
    assert len(set(when) - set(pairs)) <= 4 * len(set(frame[:, 0]))


def _numpy_metrics(logits, labels, k):
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    out = {"precision": [], "recall": [], "ndcg": []}
    for row, true in zip(top, labels, strict=True):
        true = set(true[true != PAD].tolist())
        hits = np.array([c in true for c in row], float)
        discount = 1.0 / np.log2(np.arange(k) + 2.0)
        out["precision"].append(hits.sum() / k)
        out["recall"].append(hits.sum() / len(true))
        out["ndcg"].append((hits * discount).sum() / discount[: min(k, len(true))].sum())
    return {name: float(np.mean(v)) for name, v in out.items()}


@pytest.mark.parametrize("model_name", job.MODELS)
def test_end_to_end_metrics_equal_numpy_on_the_logits(model_name):
    frame, movies = _random_frame(seed=1)
    split = ex.build(*frame.T, movies, max_true=4, history=5)
    config = job.Config(epochs=1, batch_size=32, dim=8, hidden=8, num_sampled=8)
    model, train_loss, seconds = job.train(split, model_name, seed=0, config=config)
    assert len(train_loss) == 1 and np.isfinite(train_loss[0]) and len(seconds) == 1
    result = job.evaluate(model, split.test, ks=(5, 10, 20))
    logits = model.predict(split.test.history, verbose=0)
    assert logits.shape == (len(split.test.labels), movies)
    for k in (5, 10, 20):
        expected = _numpy_metrics(logits, split.test.labels, k)
        for name, value in expected.items():
            np.testing.assert_allclose(result[f"{name}@{k}"], value, rtol=1e-5, atol=1e-7)
    # The exact set cross-entropy: 1/n_i on each real label.
    shifted = logits - logits.max(1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    ce = [
        -np.mean(row[labels[labels != PAD]])
        for row, labels in zip(logp, split.test.labels, strict=True)
    ]
    np.testing.assert_allclose(result["cross_entropy"], np.mean(ce), rtol=1e-5)


def test_load_ratings_reads_scores_and_times(tmp_path):
    files = {
        "ratings": ["1\t10\t4\t881250949", "2\t20\t3.5\t891717742", "1\t30\t5\t878887116"],
        "movies": ["10\tA\t1995\tx", "20\tB\t1995\tx", "30\tC\t1995\tx"],
        "users": ["2\t53\tF\tother\t94043", "1\t24\tM\ttechnician\t85711"],
    }
    release = {}
    for key, rows in files.items():
        spec = ml.RELEASE[key]
        (tmp_path / spec.name).write_text("\n".join([spec.header, *rows]) + "\n")
        release[key] = dataclasses.replace(spec, rows=len(rows), sha256=None)
    data = ml.load_ratings(tmp_path, release)
    np.testing.assert_array_equal(data.user, [1, 0, 1])  # rows of ml-100k.user
    np.testing.assert_array_equal(data.movie, [0, 1, 2])
    np.testing.assert_array_equal(data.rating, [4.0, 3.5, 5.0])
    np.testing.assert_array_equal(data.timestamp, [881250949, 891717742, 878887116])
    assert (data.num_users, data.num_movies) == (2, 3)
    (tmp_path / "ml-100k.inter").write_text(
        "\n".join([ml.RELEASE["ratings"].header, *files["ratings"][:2], "1\t99\t5\t1"]) + "\n"
    )
    with pytest.raises(ml.DataError, match=r"ml-100k\.inter: corrupted \(id 99"):
        ml.load_ratings(tmp_path, release)


def test_only_repeat_padding_feeds_copies_to_the_sampler_counts():
    frame, movies = _random_frame(seed=2)
    split = ex.build(*frame.T, movies, max_true=4, history=5)
    config = job.Config(epochs=2, batch_size=32, dim=8, hidden=8, num_sampled=8)
    real = split.train.labels[split.train.labels != PAD]
    copies = int((split.train.labels == PAD).sum())
    assert copies > 0  # the frame has rows with fewer than max_true labels
    for name, share in (("sampled", 0.0), ("repeat_padding", copies / (copies + real.size))):
        model, _, _ = job.train(split, name, seed=0, config=config)
        error = job.sampler_counts_error(model.get_layer("head"), split.train.labels, 2)
        np.testing.assert_allclose(error["padding_share_of_counts"], share, atol=1e-9)
        assert (error["counts_tv_distance"] == 0.0) == (name == "sampled")
