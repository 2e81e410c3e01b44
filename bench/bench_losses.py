"""Forward+backward time of tf_sampling's losses against TensorFlow's built-ins.

Both run side by side in one process, each inside its own ``tf.function`` with
its default sampler (TF's log-uniform sampler, same seed) and gradients with
respect to weights, biases and inputs. Repetitions are interleaved (ours,
theirs, ours, ...) so drift in machine load hits both alike; the table shows
medians and the ratio ours/TF (below 1.0 means we are faster).

Usage:
  python bench/bench_losses.py            # all shapes, up to 1M classes
  python bench/bench_losses.py --quick    # small shapes, a few seconds
  python bench/bench_losses.py --repeats 41 --calls 5   # more timings, 5 steps each
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_sampling.nn as tsn  # noqa: E402

# (num_classes, dim, batch, num_sampled, num_true)
FULL_SHAPES = [
    (10_000, 128, 256, 64, 1),
    (100_000, 128, 512, 1024, 1),
    (100_000, 128, 512, 1024, 3),
    (1_000_000, 128, 1024, 1024, 1),
    (1_000_000, 64, 1024, 8192, 1),
]
QUICK_SHAPES = [(10_000, 64, 128, 64, 1), (100_000, 64, 256, 512, 2)]


def make_step(loss_fn, weights, biases, labels, inputs, num_sampled, num_classes, num_true):
    """A traced forward+backward step returning the loss and gradient values."""

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = tf.reduce_mean(
                loss_fn(
                    weights, biases, labels, inputs, num_sampled, num_classes, num_true=num_true
                )
            )
        gw, gb, gx = tape.gradient(loss, [weights, biases, inputs])
        return loss, gw.values, gb.values, gx

    return step


def time_pair(steps, repeats, calls=1):
    """Interleaved timings (seconds per call) of each step, after warm-up calls.

    Each timing covers ``calls`` consecutive calls, so that sub-millisecond
    steps are not timed one timer read at a time.
    """
    for step in steps:
        step()
        step()
    times = [[] for _ in steps]
    for _ in range(repeats):
        for k, step in enumerate(steps):
            start = time.perf_counter()
            for _ in range(calls):
                out = step()
            _ = out[0].numpy()
            times[k].append((time.perf_counter() - start) / calls)
    return [statistics.median(t) for t in times]


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small shapes only")
    parser.add_argument("--repeats", type=int, default=15, help="interleaved timings per cell")
    parser.add_argument(
        "--calls", type=int, default=5, help="steps per timing (default 5; 1 on large shapes)"
    )
    args = parser.parse_args(argv)
    shapes = QUICK_SHAPES if args.quick else FULL_SHAPES
    rng = np.random.default_rng(0)
    header = f"{'loss':<22}{'classes':>10}{'dim':>5}{'batch':>6}{'sampled':>8}{'true':>5}"
    header += f"{'ours ms':>10}{'TF ms':>9}{'ours/TF':>9}"
    print(header)
    print("-" * len(header))
    worst = 0.0
    for num_classes, dim, batch, num_sampled, num_true in shapes:
        weights = tf.Variable(rng.normal(scale=0.05, size=(num_classes, dim)).astype(np.float32))
        biases = tf.Variable(np.zeros(num_classes, np.float32))
        inputs = tf.constant(rng.normal(size=(batch, dim)).astype(np.float32))
        labels = tf.constant(rng.zipf(1.3, size=(batch, num_true)) % num_classes, tf.int64)
        for name in ("sampled_softmax_loss", "nce_loss"):
            steps = []
            for impl in (tsn, tf.compat.v1.nn):
                tf.random.set_seed(1)
                steps.append(
                    make_step(
                        getattr(impl, name),
                        weights,
                        biases,
                        labels,
                        inputs,
                        num_sampled,
                        num_classes,
                        num_true,
                    )
                )
            # Steps beyond ~10 ms need no batching of calls.
            calls = args.calls if num_classes * dim < 50_000_000 else 1
            ours, theirs = time_pair(steps, args.repeats, calls)
            ratio = ours / theirs
            worst = max(worst, ratio)
            print(
                f"{name:<22}{num_classes:>10}{dim:>5}{batch:>6}{num_sampled:>8}{num_true:>5}"
                f"{ours * 1e3:>10.2f}{theirs * 1e3:>9.2f}{ratio:>9.2f}",
                flush=True,
            )
    print(
        f"\nworst ratio ours/TF: {worst:.2f} (median of {args.repeats} interleaved timings "
        f"per cell, each of {args.calls} steps below 50M table entries)"
    )


if __name__ == "__main__":
    main()
