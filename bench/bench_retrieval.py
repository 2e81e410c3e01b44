"""Two-tower retrieval benchmarks: the streaming frequency estimator's accuracy, the step cost.

1. ``estimator``: a stream of ``--batches`` batches of ``--batch`` ids drawn
   i.i.d. from Zipf(1.0) over ``--ids`` ids; after the stream, the estimate of
   each of the ``--top`` most frequent ids against its true expected count per
   batch (``batch * P(id)``): median relative error, with and without the bias
   correction, for each learning rate.
2. ``step``: one training step (forward, backward, Adagrad) of two embedding
   towers at batch ``--step-batch``: plain in-batch softmax against in-batch
   softmax with hit masking + the estimator's update + the logQ correction,
   alternated in one process (median of ``--repeats`` timed steps each).
3. ``known``: forward + backward of ``nn.in_batch_softmax_loss`` at batch
   ``--known-batch`` with hit masking, without and with each row's known
   positive set (``known_positive_ids``: a padded ``[B, --known-max]``
   ``label_set``, ``n_i`` uniform in ``[1, --known-max]``, Zipf ids like the
   candidates'), alternated in one process (median of ``--repeats``).

Prints one JSON object; ``--out`` also writes it.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import sys
import time

import numpy as np
import tensorflow as tf

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import keras  # noqa: E402

from tf_sampling import nn  # noqa: E402
from tf_sampling.layers import StreamingFrequencyEstimator  # noqa: E402


def zipf_stream(num_ids: int, batches: int, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``[batches, batch]`` ids (0 is the most frequent) and the true ``P(id)``."""
    weights = 1.0 / np.arange(1, num_ids + 1, dtype=np.float64)
    prob = weights / weights.sum()
    cdf = np.cumsum(prob)
    rng = np.random.default_rng(seed)
    ids = np.searchsorted(cdf, rng.random((batches, batch)), side="right")
    return np.minimum(ids, num_ids - 1).astype(np.int64), prob


def estimator_accuracy(args) -> dict:
    stream, prob = zipf_stream(args.ids, args.batches, args.batch, args.seed)
    truth = args.batch * prob[: args.top]
    results = []
    for alpha in args.alphas:
        for correction in (True, False):
            est = StreamingFrequencyEstimator(
                args.buckets, args.hashes, alpha, bias_correction=correction
            )
            chunk = 100

            @tf.function
            def run(block, est=est):
                for i in tf.range(tf.shape(block)[0]):
                    est.update(block[i])

            start = time.perf_counter()
            for first in range(0, args.batches, chunk):
                run(tf.constant(stream[first : first + chunk]))
            seconds = time.perf_counter() - start
            estimate = est.probability(tf.range(args.top, dtype=tf.int64)).numpy()
            error = np.abs(estimate - truth) / truth
            results.append(
                {
                    "learning_rate": alpha,
                    "bias_correction": correction,
                    "median_relative_error": float(np.median(error)),
                    "median_relative_error_top_100": float(np.median(error[:100])),
                    "p90_relative_error": float(np.quantile(error, 0.9)),
                    "seconds": seconds,
                    "us_per_batch": 1e6 * seconds / args.batches,
                }
            )
            print(json.dumps(results[-1]), flush=True)
    return {
        "ids": args.ids,
        "batches": args.batches,
        "batch": args.batch,
        "top": args.top,
        "buckets": args.buckets,
        "hashes": args.hashes,
        "runs": results,
    }


def step_cost(args) -> dict:
    b, d, n = args.step_batch, args.dim, args.vocab
    rng = np.random.default_rng(args.seed)
    stream, _ = zipf_stream(n, args.repeats * 2 + 4, b, args.seed)
    users = rng.integers(0, n, size=stream.shape)

    def make(corrected: bool):
        keras.utils.set_random_seed(args.seed)
        user_table = keras.Variable(keras.random.uniform((n, d), -0.05, 0.05), name="users")
        item_table = keras.Variable(keras.random.uniform((n, d), -0.05, 0.05), name="items")
        optimizer = keras.optimizers.Adagrad(0.1)
        optimizer.build([user_table, item_table])
        est = StreamingFrequencyEstimator(1 << 20, 2, 0.01) if corrected else None

        @tf.function(jit_compile=args.jit)
        def step(u, m):
            with tf.GradientTape() as tape:
                q = tf.gather(user_table.value, u)
                c = tf.gather(item_table.value, m)
                if corrected:
                    p = est(m, training=True)
                    loss = nn.in_batch_softmax_loss(
                        q, c, candidate_ids=m, candidate_sampling_probability=p
                    )
                else:
                    loss = nn.in_batch_softmax_loss(q, c)
                total = tf.reduce_sum(loss)
            grads = tape.gradient(total, [user_table.value, item_table.value])
            optimizer.apply(grads, [user_table, item_table])
            return total

        return step

    plain, corrected = make(False), make(True)
    for i in range(2):  # trace and warm up
        plain(tf.constant(users[i]), tf.constant(stream[i]))
        corrected(tf.constant(users[i]), tf.constant(stream[i]))
    times = {"plain": [], "corrected": []}
    for r in range(args.repeats):
        i = 2 + r
        u, m = tf.constant(users[i]), tf.constant(stream[i])
        order = [("plain", plain), ("corrected", corrected)]
        if r % 2:
            order.reverse()
        for name, fn in order:
            start = time.perf_counter()
            fn(u, m).numpy()
            times[name].append(time.perf_counter() - start)
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {
        "batch": b,
        "dim": d,
        "vocab": n,
        "jit_compile": args.jit,
        "repeats": args.repeats,
        "median_seconds": med,
        "ratio_corrected_over_plain": med["corrected"] / med["plain"],
        "all_seconds": times,
    }


def known_positives_cost(args) -> dict:
    b, d, k = args.known_batch, args.dim, args.known_max
    stream, _ = zipf_stream(args.vocab, 1 + k, b, args.seed)
    ids = stream[0]
    rng = np.random.default_rng(args.seed)
    count = rng.integers(1, k + 1, size=b)
    known = np.where(np.arange(k)[None, :] < count[:, None], stream[1:].T, -1)
    q = tf.constant(rng.normal(size=(b, d)).astype(np.float32))
    c = tf.constant(rng.normal(size=(b, d)).astype(np.float32))

    def make(with_known: bool):
        @tf.function(jit_compile=args.jit)
        def step(q, c, ids, known):
            with tf.GradientTape() as tape:
                tape.watch([q, c])
                extra = {}
                if with_known:
                    extra["known_positive_ids"] = nn.label_set(known, padding_id=-1)
                total = tf.reduce_sum(nn.in_batch_softmax_loss(q, c, candidate_ids=ids, **extra))
            dq, dc = tape.gradient(total, [q, c])
            return total + tf.reduce_sum(dq) + tf.reduce_sum(dc)

        return step

    fns = {"hits": make(False), "hits_and_known": make(True)}
    inputs = (q, c, tf.constant(ids), tf.constant(known))
    for fn in fns.values():  # trace and warm up
        fn(*inputs).numpy()
        fn(*inputs).numpy()
    times = {name: [] for name in fns}
    for r in range(args.repeats):
        order = list(fns.items())
        if r % 2:
            order.reverse()
        for name, fn in order:
            start = time.perf_counter()
            fn(*inputs).numpy()
            times[name].append(time.perf_counter() - start)
    med = {name: float(np.median(v)) for name, v in times.items()}
    return {
        "batch": b,
        "dim": d,
        "max_true": k,
        "mean_n_i": float(count.mean()),
        "vocab": args.vocab,
        "jit_compile": args.jit,
        "repeats": args.repeats,
        "median_seconds": med,
        "ratio_known_over_hits": med["hits_and_known"] / med["hits"],
        "all_seconds": times,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["estimator", "step", "both", "known"], default="both")
    parser.add_argument("--ids", type=int, default=1_000_000)
    parser.add_argument("--batches", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--top", type=int, default=10_000)
    parser.add_argument("--buckets", type=int, default=1 << 20)
    parser.add_argument("--hashes", type=int, default=2)
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.01])
    parser.add_argument("--step-batch", type=int, default=8192)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--known-batch", type=int, default=4096)
    parser.add_argument("--known-max", type=int, default=32)
    parser.add_argument("--jit", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    report = {
        "machine": {
            "platform": platform.platform(),
            "tensorflow": tf.__version__,
            "cpus_visible": len(tf.config.list_physical_devices("CPU")),
        }
    }
    if args.part in ("estimator", "both"):
        report["estimator"] = estimator_accuracy(args)
    if args.part in ("step", "both"):
        report["step"] = step_cost(args)
    if args.part == "known":
        report["known"] = known_positives_cost(args)
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        pathlib.Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
