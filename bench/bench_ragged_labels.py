"""Variable-count labels (issue 26): padded path against the fixed ``num_true`` path.

Forward+backward of ``sampled_softmax_loss``, ``nce_loss``,
``rank_sampled_softmax_loss`` (TAPAS) and the exact
``full_softmax_cross_entropy`` (class blocks) at equal batch and ``max_true``:
the fixed path gets ``[batch, max_true]`` labels with every slot real
(``num_true = max_true``); the padded path gets the same width with ``n_i``
drawn in ``[1, max_true]`` and the rest padded (``nn.label_set`` with
``padding_id=-1``). The sampled losses take the same injected sampled values
(drawn once from the log-uniform sampler, unique), so only the losses are
timed. Runs are interleaved; medians shown, ratio = fixed time / padded time
(throughput of the padded path relative to the fixed one; the target is >=
0.8). With ``--jit`` both steps are ``tf.function(jit_compile=True)``.

A loss whose step is slow (the full softmax at 10^6 classes) gets fewer
runs, so that its timed runs take about ``--budget`` seconds: one call per
run and at least 3 runs; the table says how many.

Usage:
  python bench/bench_ragged_labels.py            # 10^5 and 10^6 classes, plain and jit
  python bench/bench_ragged_labels.py --quick    # 10^4 classes, a few seconds
  python bench/bench_ragged_labels.py --losses rank,full --jit off
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

# (num_classes, dim, batch, num_sampled, max_true)
FULL_SHAPES = [(100_000, 64, 512, 1024, 8), (1_000_000, 64, 512, 1024, 8)]
QUICK_SHAPES = [(10_000, 32, 128, 128, 4)]
# TAPAS: candidates kept after the rank-based resampling (at most a quarter of
# those drawn), and its temperature.
NUM_RESAMPLED, TEMPERATURE = 256, 1.0


def _sampled(fn):
    def loss(w, b, labels, x, num_sampled, num_classes, num_true, values):
        return fn(
            w,
            b,
            labels,
            x,
            num_sampled,
            num_classes,
            num_true=num_true,
            sampled_values=values,
            remove_accidental_hits=True,
        )

    return loss


def _rank(w, b, labels, x, num_sampled, num_classes, num_true, values):
    resampled = min(NUM_RESAMPLED, num_sampled // 4)
    return tsn.rank_sampled_softmax_loss(
        w, b, labels, x, num_sampled, resampled, num_classes, num_true, values,
        TEMPERATURE, True, "div",
    )  # fmt: skip


def _full(w, b, labels, x, num_sampled, num_classes, num_true, values):
    del num_sampled, values  # every class, in blocks
    return tsn.full_softmax_cross_entropy(w, b, labels, x, num_classes, num_true)


LOSSES = {
    "softmax": _sampled(tsn.sampled_softmax_loss),
    "nce": _sampled(tsn.nce_loss),
    "rank": _rank,
    "full": _full,
}


def make_step(loss_fn, weights, biases, inputs, num_sampled, num_classes, max_true, values, jit):
    def step(labels, padded):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            if padded:
                labels = tsn.label_set(labels, padding_id=-1)
            loss = tf.reduce_mean(
                loss_fn(weights, biases, labels, inputs, num_sampled, num_classes, max_true, values)
            )
        grads = tape.gradient(loss, [weights, biases, inputs])
        # The sparse rows, not a dense [num_classes, dim] copy (which would dominate).
        return [loss] + [g.values if isinstance(g, tf.IndexedSlices) else g for g in grads]

    fixed = tf.function(lambda labels: step(labels, False), jit_compile=jit)
    padded = tf.function(lambda labels: step(labels, True), jit_compile=jit)
    return fixed, padded


def time_call(fn, arg, calls):
    start = time.perf_counter()
    for _ in range(calls):
        out = fn(arg)
    _ = out[0].numpy()
    return (time.perf_counter() - start) / calls


def run_shape(shape, repeats, calls, jit, rng, losses, budget):
    num_classes, dim, batch, num_sampled, max_true = shape
    weights = tf.Variable(rng.normal(0, 0.05, (num_classes, dim)).astype(np.float32))
    biases = tf.Variable(np.zeros(num_classes, np.float32))
    inputs = tf.constant(rng.normal(size=(batch, dim)).astype(np.float32))
    full = rng.integers(0, num_classes, (batch, max_true)).astype(np.int64)
    counts = rng.integers(1, max_true + 1, batch)
    padded = np.where(np.arange(max_true)[None] < counts[:, None], full, -1)
    values = tf.random.log_uniform_candidate_sampler(
        tf.constant(full), max_true, num_sampled, True, num_classes, seed=1
    )
    rows = []
    for name in losses:
        fixed, masked = make_step(
            LOSSES[name], weights, biases, inputs, num_sampled, num_classes, max_true, values, jit
        )
        fixed_labels, padded_labels = tf.constant(full), tf.constant(padded)
        for f, a in ((fixed, fixed_labels), (masked, padded_labels)):
            time_call(f, a, 1)  # trace and compile
        warm = [time_call(f, a, 1) for f, a in ((fixed, fixed_labels), (masked, padded_labels))]
        runs, n_calls = repeats, calls
        if 2 * repeats * calls * max(warm) > budget:
            runs, n_calls = max(3, int(budget / (2 * max(warm)))), 1
        t_fixed, t_padded = [], []
        for _ in range(runs):
            t_fixed.append(time_call(fixed, fixed_labels, n_calls))
            t_padded.append(time_call(masked, padded_labels, n_calls))
        mf, mp = statistics.median(t_fixed), statistics.median(t_padded)
        rows.append((name, num_classes, jit, mf * 1e3, mp * 1e3, mf / mp, runs, n_calls))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--jit", choices=["off", "on", "both"], default="both")
    parser.add_argument(
        "--losses", default=",".join(LOSSES), help=f"comma-separated, of {','.join(LOSSES)}"
    )
    parser.add_argument("--classes", default=None, help="comma-separated class counts to run")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds of timed runs")
    args = parser.parse_args()
    losses = [name.strip() for name in args.losses.split(",") if name.strip()]
    unknown = sorted(set(losses) - set(LOSSES))
    if unknown:
        parser.error(f"--losses: unknown {unknown}; choose from {sorted(LOSSES)}")
    rng = np.random.default_rng(0)
    shapes = QUICK_SHAPES if args.quick else FULL_SHAPES
    if args.classes:
        wanted = {int(c) for c in args.classes.split(",")}
        shapes = [s for s in shapes if s[0] in wanted]
    jits = {"off": [False], "on": [True], "both": [False, True]}[args.jit]
    print(f"device: {'GPU' if tf.config.list_physical_devices('GPU') else 'CPU'}")
    print("loss     classes    jit   fixed ms  padded ms  padded throughput / fixed  runs x calls")
    for jit in jits:
        for shape in shapes:
            for name, classes, j, mf, mp, ratio, runs, calls in run_shape(
                shape, args.repeats, args.calls, jit, rng, losses, args.budget
            ):
                print(
                    f"{name:8s} {classes:>9,d}  {str(j):5s} {mf:9.2f} {mp:10.2f}  {ratio:.2f}x"
                    f"{'':24s}{runs} x {calls}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
