"""Compiled sampling: tf_sampling's losses under ``jit_compile=True`` against TensorFlow's.

Part 1, the losses: forward+backward of ``sampled_softmax_loss`` and
``nce_loss`` (gradients for weights, biases and inputs). Three steps per
cell, interleaved (one timing of each in turn, so drift in machine load hits
all alike), medians reported:

* ``TF``: ``tf.nn.sampled_softmax_loss`` / ``tf.nn.nce_loss`` in a
  ``tf.function``, with their default sampler (log-uniform, unique) -- the
  reference, not compilable.
* ``ours``: ``tf_sampling.nn`` in a ``tf.function``, same TF sampler.
* ``ours XLA``: ``tf_sampling.nn`` in ``tf.function(jit_compile=True)``, with
  the compilable log-uniform sampler (unique) drawing inside the compiled step.

Part 2, Keras: one ``train_on_batch`` step of a model that is just the output
layer (``SampledSoftmax``, ``NCE``, ``RankSampledSoftmax``), compiled with
``jit_compile=True`` and with ``False``, both with the compilable sampler,
and with ``False`` and the layer's default sampler (TF's / this package's
C++ op).

Usage:
  python bench/bench_compiled.py                # 1e5 and 1e6 classes, dim 128, batch 256, 1024 samples
  python bench/bench_compiled.py --quick        # small shapes, a quick check
  python bench/bench_compiled.py --repeats 41 --skip-keras
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_sampling  # noqa: E402
import tf_sampling.nn as tsn  # noqa: E402
from tf_sampling import samplers  # noqa: E402

# (num_classes, dim, batch, num_sampled)
FULL_SHAPES = [(100_000, 128, 256, 1024), (1_000_000, 128, 256, 1024)]
QUICK_SHAPES = [(10_000, 64, 128, 256)]
KERAS_FULL = (100_000, 128, 256, 1024)
KERAS_QUICK = (10_000, 64, 128, 256)


def loss_step(loss_fn, weights, biases, labels, inputs, num_sampled, num_classes, sampler, jit):
    """A forward+backward step; ``sampler`` None means the loss's default (TF's) sampler."""

    def step():
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            sampled_values = None
            if sampler is not None:
                sampled_values = sampler.sample(labels, 1, num_sampled)
            loss = tf.reduce_mean(
                loss_fn(
                    weights,
                    biases,
                    labels,
                    inputs,
                    num_sampled,
                    num_classes,
                    sampled_values=sampled_values,
                )
            )
        gw, gb, gx = tape.gradient(loss, [weights, biases, inputs])
        return loss, gw.values, gb.values, gx

    return tf.function(step, jit_compile=jit)


def time_interleaved(steps, repeats, calls):
    """Median seconds per call of each step, timings interleaved, after warm-up."""
    for step in steps:
        for _ in range(3):
            step()[0].numpy()
    times = [[] for _ in steps]
    for _ in range(repeats):
        for k, step in enumerate(steps):
            start = time.perf_counter()
            for _ in range(calls):
                out = step()
            out[0].numpy()
            times[k].append((time.perf_counter() - start) / calls)
    return [statistics.median(t) for t in times]


def bench_losses(shapes, repeats, calls):
    rng = np.random.default_rng(0)
    header = (
        f"{'loss':<22}{'classes':>9}{'dim':>5}{'batch':>6}{'sampled':>8}"
        f"{'TF ms':>9}{'ours ms':>9}{'XLA ms':>9}{'ours/TF':>9}{'XLA/TF':>8}"
    )
    print(header)
    print("-" * len(header))
    worst = 0.0
    for num_classes, dim, batch, num_sampled in shapes:
        weights = tf.Variable(rng.normal(scale=0.05, size=(num_classes, dim)).astype(np.float32))
        biases = tf.Variable(np.zeros(num_classes, np.float32))
        inputs = tf.constant(rng.normal(size=(batch, dim)).astype(np.float32))
        labels = tf.constant(rng.zipf(1.3, size=(batch, 1)) % num_classes, tf.int64)
        for name in ("sampled_softmax_loss", "nce_loss"):
            tf.random.set_seed(1)
            sampler = samplers.get("log_uniform", num_classes, seed=1, compilable=True)
            common = (weights, biases, labels, inputs, num_sampled, num_classes)
            steps = [
                loss_step(getattr(tf.nn, name), *common, sampler=None, jit=False),
                loss_step(getattr(tsn, name), *common, sampler=None, jit=False),
                loss_step(getattr(tsn, name), *common, sampler=sampler, jit=True),
            ]
            theirs, ours, compiled = time_interleaved(steps, repeats, calls)
            worst = max(worst, compiled / theirs)
            print(
                f"{name:<22}{num_classes:>9}{dim:>5}{batch:>6}{num_sampled:>8}"
                f"{theirs * 1e3:>9.2f}{ours * 1e3:>9.2f}{compiled * 1e3:>9.2f}"
                f"{ours / theirs:>9.2f}{compiled / theirs:>8.2f}",
                flush=True,
            )
    print(
        f"worst XLA/TF: {worst:.2f} (target <= 0.6; median of {repeats} timings of {calls} steps)"
    )


def keras_model(layer_cls, shape, sampler, jit, extra):
    num_classes, dim, batch, num_sampled = shape
    keras.utils.set_random_seed(1)
    inputs = keras.Input((dim,))
    head = layer_cls(num_classes, num_sampled, sampler=sampler, seed=1, **extra)
    model = keras.Model(inputs, head(inputs))
    loss = {
        "SampledSoftmax": tf_sampling.losses.SampledSoftmaxLoss,
        "NCE": tf_sampling.losses.NCELoss,
        "RankSampledSoftmax": tf_sampling.losses.RankSampledSoftmaxLoss,
    }[layer_cls.__name__]()
    model.compile(keras.optimizers.SGD(0.01), loss=loss, jit_compile=jit)
    if bool(model.jit_compile) != jit:
        raise RuntimeError(f"Keras did not honour jit_compile={jit} for {layer_cls.__name__}")
    return model


def bench_keras(shape, repeats, calls):
    num_classes, dim, batch, num_sampled = shape
    rng = np.random.default_rng(1)
    x = rng.normal(size=(batch, dim)).astype(np.float32)
    y = (rng.zipf(1.3, size=batch) % num_classes).astype(np.int64)
    print(
        f"\nKeras train_on_batch, {num_classes} classes, dim {dim}, batch {batch}, "
        f"{num_sampled} samples (ms per step)"
    )
    header = (
        f"{'layer':<20}{'sampler':<17}{'default ms':>11}{'compilable ms':>14}"
        f"{'jit ms':>9}{'jit/compilable':>15}{'jit/default':>12}"
    )
    print(header)
    print("-" * len(header))
    cases = [
        (tf_sampling.layers.SampledSoftmax, "log_uniform", {}),
        (tf_sampling.layers.NCE, "log_uniform", {}),
        (tf_sampling.layers.RankSampledSoftmax, "learned_unigram", {"num_resampled": 64}),
    ]
    for layer_cls, name, extra in cases:
        compilable = {"name": name, "compilable": True}
        models = [
            keras_model(layer_cls, shape, name, False, extra),
            keras_model(layer_cls, shape, compilable, False, extra),
            keras_model(layer_cls, shape, compilable, True, extra),
        ]
        steps = [(lambda m=m: (tf.constant(m.train_on_batch(x, y)),)) for m in models]
        default, plain, jit = time_interleaved(steps, repeats, calls)
        print(
            f"{layer_cls.__name__:<20}{name:<17}{default * 1e3:>11.2f}{plain * 1e3:>14.2f}"
            f"{jit * 1e3:>9.2f}{jit / plain:>15.2f}{jit / default:>12.2f}",
            flush=True,
        )


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small shapes only")
    parser.add_argument("--repeats", type=int, default=21, help="interleaved timings per cell")
    parser.add_argument("--calls", type=int, default=3, help="steps per timing")
    parser.add_argument("--skip-keras", action="store_true", help="only the losses")
    parser.add_argument("--skip-losses", action="store_true", help="only the Keras steps")
    args = parser.parse_args(argv)
    print(
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, devices: "
        f"{[d.device_type for d in tf.config.list_logical_devices()]}, {os.cpu_count()} CPUs"
    )
    if not args.skip_losses:
        bench_losses(QUICK_SHAPES if args.quick else FULL_SHAPES, args.repeats, args.calls)
    if not args.skip_keras:
        bench_keras(KERAS_QUICK if args.quick else KERAS_FULL, args.repeats, args.calls)


if __name__ == "__main__":
    main()
