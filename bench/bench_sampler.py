"""Calls per second: tf_sampling's learned-unigram op vs TensorFlow's built-in.

Compares ``tf_sampling.ops.learned_unigram_candidate_sampler`` (and, for
information, the checkpointable ``LearnedUnigramSampler`` layer) with
``tf.random.learned_unigram_candidate_sampler`` at range_max 1e4, 1e6 and 1e7,
num_sampled 64 and 8192, unique True/False, batch 1024 (num_true 1), in one
process. Each sampler runs in its own ``tf.function`` (one op instance) fed the
same Zipf-skewed stream of true classes. After warm-up (TensorFlow's op builds
its O(range_max) picker on the first call), repetitions are interleaved
(ours, built-in, layer, ours, ...) and the table reports median milliseconds
per call, calls/second and the speed ratio ours/built-in. Then, for how time
per call grows from the smallest range_max to the largest, both ranges are
timed again interleaved (ours and the built-in at 1e4 and 1e7), so that a
slower or faster spell of the machine cannot bias the ratio.

Usage: python bench/bench_sampler.py [--reps 7] [--calls 20] [--ranges 1e4,1e7]
    [--num-sampled 8192] [--unique true]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tf_sampling.ops import learned_unigram_candidate_sampler  # noqa: E402
from tf_sampling.samplers.learned_unigram import LearnedUnigramSampler  # noqa: E402

RANGES = (10_000, 1_000_000, 10_000_000)
NUM_SAMPLED = (64, 8192)
UNIQUE = (True, False)
BATCH = 1024


def make_stream(range_max: int, batches: int, seed: int = 0) -> list[tf.Tensor]:
    """Zipf-skewed [BATCH, 1] int64 batches over [0, range_max)."""
    rng = np.random.default_rng(seed)
    stream = []
    for _ in range(batches):
        ids = (rng.zipf(1.3, size=(BATCH, 1)) - 1) % range_max
        # Spread the frequent ids over the range, as real vocabularies are not sorted.
        ids = (ids * 2_654_435_761) % range_max
        stream.append(tf.constant(ids, tf.int64))
    return stream


def time_calls(fn: Callable, stream: list[tf.Tensor], calls: int, start: int) -> float:
    """Seconds per call over `calls` calls on consecutive stream batches."""
    begin = time.perf_counter()
    for i in range(calls):
        outputs = fn(stream[(start + i) % len(stream)])
    outputs[0].numpy()  # Make sure the work is done.
    return (time.perf_counter() - begin) / calls


def make_samplers(range_max, num_sampled, unique):
    """Ours, the built-in and the layer, each in its own ``tf.function``."""
    signature = [tf.TensorSpec([None, 1], tf.int64)]
    ours = tf.function(
        lambda tc: learned_unigram_candidate_sampler(tc, 1, num_sampled, unique, range_max, seed=1),
        input_signature=signature,
    )
    builtin = tf.function(
        lambda tc: tf.random.learned_unigram_candidate_sampler(
            tc, 1, num_sampled, unique, range_max, seed=1
        ),
        input_signature=signature,
    )
    layer = LearnedUnigramSampler(range_max, unique=unique, seed=1)
    layer_fn = tf.function(lambda tc: layer.sample(tc, 1, num_sampled), input_signature=signature)
    return {"ours": ours, "builtin": builtin, "layer": layer_fn}


def interleave(contenders, reps, calls):
    """Median seconds per call of each ``name: (fn, stream)``, runs interleaved."""
    for fn, stream in contenders.values():  # Warm-up: tracing, picker construction.
        time_calls(fn, stream, 3, 0)
    times = {name: [] for name in contenders}
    position = 3
    for _ in range(reps):
        for name, (fn, stream) in contenders.items():
            times[name].append(time_calls(fn, stream, calls, position))
        position += calls
    return {name: statistics.median(values) for name, values in times.items()}


def bench_config(range_max, num_sampled, unique, reps, calls, stream):
    """Median seconds per call of ours, the built-in, and the layer."""
    samplers = make_samplers(range_max, num_sampled, unique)
    return interleave({name: (fn, stream) for name, fn in samplers.items()}, reps, calls)


def bench_growth(small, large, num_sampled, unique, reps, calls, streams):
    """Time per call at ``large`` over ``small`` classes, both timed interleaved."""
    contenders = {}
    for range_max in (small, large):
        samplers = make_samplers(range_max, num_sampled, unique)
        for name in ("ours", "builtin"):
            contenders[name, range_max] = (samplers[name], streams[range_max])
    t = interleave(contenders, reps, calls)
    return {name: t[name, large] / t[name, small] for name in ("ours", "builtin")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=7, help="interleaved repetitions")
    parser.add_argument("--calls", type=int, default=20, help="calls per repetition")
    parser.add_argument("--ranges", default="1e4,1e6,1e7", help="comma-separated range_max")
    parser.add_argument("--num-sampled", default="64,8192", help="comma-separated num_sampled")
    parser.add_argument("--unique", default="true,false", help="comma-separated true/false")
    args = parser.parse_args()
    ranges = tuple(int(float(v)) for v in args.ranges.split(","))
    num_sampled_values = tuple(int(v) for v in args.num_sampled.split(","))
    unique_values = tuple(v.strip().lower() == "true" for v in args.unique.split(","))
    print(
        f"TensorFlow {tf.version.VERSION}, batch {BATCH}, num_true 1, "
        f"median of {args.reps} x {args.calls} calls, {os.cpu_count()} CPUs"
    )
    results = {}
    streams = {range_max: make_stream(range_max, 64) for range_max in ranges}
    header = (
        f"{'range_max':>10} {'num_sampled':>11} {'unique':>6} | {'ours ms':>8} "
        f"{'TF ms':>8} {'layer ms':>8} | {'ours/s':>8} {'TF/s':>8} | {'speed x':>7}"
    )
    print(header)
    print("-" * len(header))
    for range_max in ranges:
        for num_sampled in num_sampled_values:
            for unique in unique_values:
                t = bench_config(
                    range_max, num_sampled, unique, args.reps, args.calls, streams[range_max]
                )
                results[range_max, num_sampled, unique] = t
                print(
                    f"{range_max:>10.0e} {num_sampled:>11} {unique!s:>6} | "
                    f"{1e3 * t['ours']:>8.3f} {1e3 * t['builtin']:>8.3f} "
                    f"{1e3 * t['layer']:>8.3f} | {1 / t['ours']:>8.0f} "
                    f"{1 / t['builtin']:>8.0f} | {t['builtin'] / t['ours']:>7.2f}",
                    flush=True,
                )
    slowest = min(t["builtin"] / t["ours"] for t in results.values())
    print(f"Lowest speed ratio ours/TF: {slowest:.2f}x (target >= 1.0x)")
    if len(ranges) < 2:
        return
    small, large = ranges[0], ranges[-1]
    print()
    print(
        f"Growth of time per call from range_max {small:.0e} to {large:.0e} (target <= 1.5x),"
        " both ranges timed interleaved:"
    )
    for num_sampled in num_sampled_values:
        for unique in unique_values:
            growth = bench_growth(small, large, num_sampled, unique, args.reps, args.calls, streams)
            print(
                f"  num_sampled {num_sampled:>5} unique {unique!s:>5}: ours "
                f"{growth['ours']:.2f}x, TF {growth['builtin']:.2f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
