"""Compiled sampling: tf_sampling's losses under ``jit_compile=True`` against TensorFlow's.

Part 1, the losses: forward+backward of ``sampled_softmax_loss`` and
``nce_loss`` (gradients for weights, biases and inputs). Four steps per
cell, interleaved (one timing of each in turn, so drift in machine load hits
all alike), medians reported (``--stat min``: minima):

* ``TF``: ``tf.nn.sampled_softmax_loss`` / ``tf.nn.nce_loss`` in a
  ``tf.function``, with their default sampler (log-uniform, unique) -- the
  reference, not compilable.
* ``ours``: ``tf_sampling.nn`` in a ``tf.function``, same TF sampler.
* ``ours XLA``: ``tf_sampling.nn`` in ``tf.function(jit_compile=True)`` with
  ``sampled_values=None``: the loss's compilable default sampler
  (log-uniform, unique) draws inside the compiled step.
* ``XLA unif``: the same with a compilable uniform sampler (unique).

Part 2, Keras: one ``train_on_batch`` step of a model that is just the output
layer (``SampledSoftmax``, ``NCE``, ``RankSampledSoftmax``), compiled with
``jit_compile=True`` and with ``False``, both with the compilable sampler,
and with ``False`` and the layer's default sampler (TF's / this package's
C++ op).

Part 0 (``--pieces``), where a compiled step's time goes: each piece alone,
compiled and not, interleaved in one process: the unique-draw
dedup by sort (the former method) and by hashing (the current one), the
samplers, the three matmuls, the hand-written lower bound of the loss
(``../shared/bench``'s: row gathers and the three matmuls, no sampler) and
the loss with fixed samples.

Usage:
  python bench/bench_compiled.py                # 1e5 and 1e6 classes, dim 128, batch 256, 1024 samples
  python bench/bench_compiled.py --pieces --skip-losses --skip-keras
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
from tf_sampling._core import sampled_logits  # noqa: E402
from tf_sampling.samplers import compilable  # noqa: E402

# (num_classes, dim, batch, num_sampled)
FULL_SHAPES = [(100_000, 128, 256, 1024), (1_000_000, 128, 256, 1024)]
QUICK_SHAPES = [(10_000, 64, 128, 256)]
KERAS_FULL = (100_000, 128, 256, 1024)
KERAS_QUICK = (10_000, 64, 128, 256)


def loss_step(loss_fn, weights, biases, labels, inputs, num_sampled, num_classes, sampler, jit):
    """A forward+backward step; ``sampler`` None means the loss's default sampler.

    ``sampler`` may also be a fixed ``sampled_values`` triple.
    """

    def step():
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            sampled_values = None
            if isinstance(sampler, tuple):
                sampled_values = sampler
            elif sampler is not None:
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


# Statistic of the interleaved timings: "median", or "min" on a loaded machine
# (the least-disturbed timing of each step).
STAT = {"name": "median"}


def time_interleaved(steps, repeats, calls):
    """Seconds per call of each step (median or min), timings interleaved, after warm-up."""
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
    reduce = min if STAT["name"] == "min" else statistics.median
    return [reduce(t) for t in times]


def bench_losses(shapes, repeats, calls):
    rng = np.random.default_rng(0)
    header = (
        f"{'loss':<22}{'classes':>9}{'dim':>5}{'batch':>6}{'sampled':>8}"
        f"{'TF ms':>9}{'ours ms':>9}{'XLA ms':>9}{'unif ms':>9}{'ours/TF':>9}{'XLA/TF':>8}"
        f"{'unif/TF':>8}"
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
            uniform = samplers.get("uniform", num_classes, seed=1, compilable=True)
            common = (weights, biases, labels, inputs, num_sampled, num_classes)
            steps = [
                loss_step(getattr(tf.nn, name), *common, sampler=None, jit=False),
                loss_step(getattr(tsn, name), *common, sampler=None, jit=False),
                loss_step(getattr(tsn, name), *common, sampler=None, jit=True),
                loss_step(getattr(tsn, name), *common, sampler=uniform, jit=True),
            ]
            theirs, ours, compiled, compiled_uniform = time_interleaved(steps, repeats, calls)
            worst = max(worst, compiled / theirs)
            print(
                f"{name:<22}{num_classes:>9}{dim:>5}{batch:>6}{num_sampled:>8}"
                f"{theirs * 1e3:>9.2f}{ours * 1e3:>9.2f}{compiled * 1e3:>9.2f}"
                f"{compiled_uniform * 1e3:>9.2f}{ours / theirs:>9.2f}{compiled / theirs:>8.2f}"
                f"{compiled_uniform / theirs:>8.2f}",
                flush=True,
            )
    print(f"worst XLA/TF: {worst:.2f} (target <= 0.6)")


def _sorted_first_occurrences(values):
    # The former dedup: a stable argsort (what XLA's CPU sort costs).
    order = tf.argsort(values, stable=True)
    ordered = tf.gather(values, order)
    starts = tf.concat([tf.ones([1], tf.int32), tf.cast(ordered[1:] != ordered[:-1], tf.int32)], 0)
    return tf.scatter_nd(order[:, None], starts, tf.shape(values)) > 0


def bench_pieces(shapes, repeats, calls):
    """Each piece of a compiled step alone, compiled (XLA) and not (TF), ms per call."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                    "..", "shared", "bench"))  # fmt: skip
    import bench_lib  # ../shared/bench: the hand-written lower bound

    print(f"\n{'piece':<48}{'classes':>9}{'TF ms':>9}{'XLA ms':>9}{'XLA/TF':>8}")
    print("-" * 83)
    for shape in shapes:
        _bench_pieces_shape(bench_lib, shape, repeats, calls)


def _bench_pieces_shape(bench_lib, shape, repeats, calls):
    num_classes, dim, batch, num_sampled = shape
    prob = bench_lib.Problem(num_classes, dim, batch, seed=11)
    fixed = prob.sampled_values(num_sampled)
    rng = np.random.default_rng(2)
    x, w_s = prob.inputs, tf.gather(prob.weights, fixed[0])
    grad = tf.constant(rng.normal(size=(batch, num_sampled)).astype(np.float32))
    log_uniform = samplers.get("log_uniform", num_classes, seed=1, compilable=True)
    uniform = samplers.get("uniform", num_classes, seed=1, compilable=True)
    per_round = max(2 * num_sampled, 64)
    # What one unique round deduplicates: the held slots, then the draws.
    keys = tf.concat(
        [tf.fill([num_sampled], tf.constant(-1, tf.int64)),
         log_uniform.draw(tf.constant([1, 2], tf.int64), per_round)], 0
    )  # fmt: skip
    labels = prob.labels
    common = (prob.weights, prob.biases, labels, x, num_sampled, num_classes)
    pieces = {
        f"dedup of {keys.shape[0]} draws, stable sort (before)": lambda: (
            _sorted_first_occurrences(keys),
        ),
        f"dedup of {keys.shape[0]} draws, hashing (now)": lambda: (
            compilable.first_occurrences(keys),
        ),
        "log-uniform sampler, unique (compilable)": lambda: log_uniform.sample(
            labels, 1, num_sampled
        ),
        "uniform sampler, unique (compilable)": lambda: uniform.sample(labels, 1, num_sampled),
        "matmul x.Ws^T [B,D]x[D,S] (logits)": lambda: (tf.matmul(x, w_s, transpose_b=True),),
        "matmul g.Ws [B,S]x[S,D] (d inputs)": lambda: (tf.matmul(grad, w_s),),
        "matmul g^T.x [S,B]x[B,D] (d sampled rows)": lambda: (
            tf.matmul(grad, x, transpose_a=True),
        ),
    }
    rows = [(name, fn, fn) for name, fn in pieces.items()]
    rows.append(("TF's sampler (log-uniform, unique; no XLA kernel)",
                 lambda: tf.random.log_uniform_candidate_sampler(
                     labels, 1, num_sampled, True, num_classes), None))  # fmt: skip
    timed = []
    for _, fn, jit_fn in rows:
        timed.append(tf.function(fn))
        timed.append(tf.function(jit_fn, jit_compile=True) if jit_fn else None)
    # Row gathers, the three matmuls and a softmax; fixed samples, no autodiff.
    rows.append(("lower bound (hand-written, no sampler)", None, None))
    timed += [bench_lib.lower_bound_step(prob, num_sampled),
              bench_lib.lower_bound_step(prob, num_sampled, jit=True)]  # fmt: skip
    for name, loss in (("sampled softmax", "sampled_softmax_loss"), ("NCE", "nce_loss")):
        rows.append((f"ours {name}, fixed samples", None, None))
        timed += [loss_step(getattr(tsn, loss), *common, sampler=fixed, jit=False),
                  loss_step(getattr(tsn, loss), *common, sampler=fixed, jit=True)]  # fmt: skip
        rows.append((f"ours {name}, sampling in the step", None, None))
        timed += [loss_step(getattr(tsn, loss), *common, sampler=None, jit=False),
                  loss_step(getattr(tsn, loss), *common, sampler=None, jit=True)]  # fmt: skip
        # The same before the row-major backward dot (traced with the switch off).
        rows.append(("  same, XLA's transposed backward dot (before)", None, None))
        sampled_logits.XLA_TRANSPOSED_BACKWARD = False
        before = loss_step(getattr(tsn, loss), *common, sampler=None, jit=True)
        _first_tensor(before)()
        sampled_logits.XLA_TRANSPOSED_BACKWARD = True
        timed += [loss_step(getattr(tsn, loss), *common, sampler=None, jit=False), before]
        rows.append((f"TF's {name} (reference of the target)", None, None))
        timed += [loss_step(getattr(tf.nn, loss), *common, sampler=None, jit=False), None]
    live = [f for f in timed if f is not None]
    medians = iter(time_interleaved([_first_tensor(f) for f in live], repeats, calls))
    results = [next(medians) if f is not None else None for f in timed]
    for k, (name, _, _) in enumerate(rows):
        plain, compiled = results[2 * k], results[2 * k + 1]
        ratio = f"{compiled / plain:>8.2f}" if compiled else f"{'-':>8}"
        xla = f"{compiled * 1e3:>9.3f}" if compiled else f"{'-':>9}"
        print(f"{name:<48}{num_classes:>9}{plain * 1e3:>9.3f}{xla}{ratio}", flush=True)


def _first_tensor(fn):
    def call():
        out = tf.nest.flatten(fn(), expand_composites=True)
        return (out[0],)

    return call


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
    parser.add_argument("--pieces", action="store_true", help="also time the pieces (part 0)")
    parser.add_argument(
        "--stat", choices=("median", "min"), default="median", help="statistic of the timings"
    )
    args = parser.parse_args(argv)
    STAT["name"] = args.stat
    print(
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, devices: "
        f"{[d.device_type for d in tf.config.list_logical_devices()]}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}, {args.stat} of {args.repeats} timings of "
        f"{args.calls} calls"
    )
    if args.pieces:
        bench_pieces(QUICK_SHAPES if args.quick else FULL_SHAPES, args.repeats, args.calls)
    if not args.skip_losses:
        bench_losses(QUICK_SHAPES if args.quick else FULL_SHAPES, args.repeats, args.calls)
    if not args.skip_keras:
        bench_keras(KERAS_QUICK if args.quick else KERAS_FULL, args.repeats, args.calls)


if __name__ == "__main__":
    main()
