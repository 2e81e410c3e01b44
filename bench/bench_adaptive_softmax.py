"""Forward+backward time of the adaptive softmax against the exact full softmax head.

The shape is PyTorch's own benchmark of ``AdaptiveLogSoftmaxWithLoss``
(pytorch/pytorch#4659: text8, 44,371 classes, batch 128 x bptt 20 = 2560
rows; forward 58.1 -> 13.5 ms and backward 90.7 -> 24.0 ms, full -> adaptive,
on a GPU). That report gives no hidden size or cutoffs: here ``dim=512`` and
``cutoffs=[2000, 10000]`` (the example of PyTorch's documentation),
``div_value=4``, so the tail clusters project to 128 and 32 units.

Targets are drawn from a Zipf law (``p(c) ~ 1/(c + 1)``, as in text: 73% of
them fall in the 2000-class head) -- the distribution adaptive softmax is
built for -- and, as the adverse case, uniformly (76% in the last cluster).
Results: docs/adaptive_softmax.md.

Variants, each a ``tf.function`` returning the mean loss and the gradients of
every parameter and of the inputs, all in one process, timings interleaved:

  full            ``inputs @ W^T + b`` + ``tf.nn.sparse_softmax_cross_entropy_with_logits``
  full_chunked    ``tf_sampling.nn.full_softmax_cross_entropy`` (``FullSoftmaxLoss``'s path)
  adaptive        ``tf_sampling.nn.adaptive_softmax_loss``
  (``--xla``: ``full`` and ``adaptive`` again under ``jit_compile=True``)

plus forward-only steps of ``full`` and ``adaptive`` (the backward time is the
step's minus the forward's, as PyTorch reported them). The speedup is the
faster full variant's median over the adaptive one's.

Usage:
  python bench/bench_adaptive_softmax.py              # the shape above
  python bench/bench_adaptive_softmax.py --quick      # small shapes, seconds
  python bench/bench_adaptive_softmax.py --xla --repeats 9
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_sampling.nn as tsn  # noqa: E402


def zipf_labels(rng, num_classes: int, n: int) -> np.ndarray:
    p = 1.0 / np.arange(1, num_classes + 1)
    return rng.choice(num_classes, size=n, p=p / p.sum()).astype(np.int64)


def make_problem(num_classes, dim, rows, cutoffs, div_value, seed=0):
    """Full and adaptive parameters (variables) and inputs of one shape."""
    rng = np.random.default_rng(seed)

    def var(*shape, scale):
        return tf.Variable(rng.normal(0, scale, size=shape).astype(np.float32))

    full = {"W": var(num_classes, dim, scale=dim**-0.5), "b": var(num_classes, scale=0.1)}
    edges = list(cutoffs) + [num_classes]
    head_rows = cutoffs[0] + len(cutoffs)
    widths = [int(dim // div_value ** (i + 1)) for i in range(len(cutoffs))]
    adaptive = {
        "head_weights": var(head_rows, dim, scale=dim**-0.5),
        "head_biases": var(head_rows, scale=0.1),
        "tail_projections": [var(dim, w, scale=dim**-0.5) for w in widths],
        "tail_weights": [
            var(edges[i + 1] - edges[i], w, scale=w**-0.5) for i, w in enumerate(widths)
        ],
        "tail_biases": [var(edges[i + 1] - edges[i], scale=0.1) for i in range(len(widths))],
    }
    inputs = tf.constant(rng.normal(size=(rows, dim)).astype(np.float32))
    return full, adaptive, inputs


def variants(full, adaptive, inputs, labels, num_classes, cutoffs, xla: bool) -> dict:
    labels = tf.constant(labels)

    def full_loss(x):
        logits = tf.nn.bias_add(tf.matmul(x, full["W"], transpose_b=True), full["b"])
        return tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        )

    def chunked_loss(x):
        return tf.reduce_mean(
            tsn.full_softmax_cross_entropy(full["W"], full["b"], labels, x, num_classes)
        )

    def adaptive_loss(x):
        return tf.reduce_mean(
            tsn.adaptive_softmax_loss(
                adaptive["head_weights"],
                adaptive["head_biases"],
                adaptive["tail_projections"],
                adaptive["tail_weights"],
                adaptive["tail_biases"],
                labels,
                x,
                cutoffs,
                num_classes,
            )
        )

    full_params = [full["W"], full["b"]]
    adaptive_params = tf.nest.flatten(adaptive)

    def step(loss_fn, params, jit=False):
        @tf.function(jit_compile=jit)
        def run():
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                loss = loss_fn(inputs)
            grads = tape.gradient(loss, [inputs, *params])
            # One scalar that depends on every gradient, so none is pruned.
            return loss + tf.add_n([tf.reduce_sum(g) for g in grads]) * 0.0

        return run

    def forward(loss_fn):
        return tf.function(lambda: loss_fn(inputs))

    out = {
        "full": step(full_loss, full_params),
        "full_chunked": step(chunked_loss, full_params),
        "adaptive": step(adaptive_loss, adaptive_params),
        "full_forward": forward(full_loss),
        "adaptive_forward": forward(adaptive_loss),
    }
    if xla:
        out["full_xla"] = step(full_loss, full_params, jit=True)
        out["adaptive_xla"] = step(adaptive_loss, adaptive_params, jit=True)
    return out


def time_interleaved(steps: dict, repeats: int) -> dict:
    """Median seconds per call of each step, after two warm-up calls, interleaved."""
    for fn in steps.values():
        fn().numpy()
        fn().numpy()
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, fn in steps.items():
            start = time.perf_counter()
            fn().numpy()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, a few seconds")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timings per step")
    parser.add_argument("--xla", action="store_true", help="also time jit_compile=True steps")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    if args.quick:
        num_classes, dim, rows, cutoffs = 4000, 64, 256, [200, 1000]
    else:
        num_classes, dim, rows, cutoffs = 44_371, 512, 128 * 20, [2000, 10000]
    div_value = 4.0
    full, adaptive, inputs = make_problem(num_classes, dim, rows, cutoffs, div_value)
    rng = np.random.default_rng(1)
    load_before = os.getloadavg()
    print(
        f"classes {num_classes}, dim {dim}, rows {rows}, cutoffs {cutoffs}, div_value "
        f"{div_value}; {os.cpu_count()} CPUs, load average {load_before[0]:.2f} (1 min); "
        f"devices {[d.device_type for d in tf.config.list_physical_devices()]}"
    )
    results = {}
    for targets in ("zipf", "uniform"):
        if targets == "zipf":
            labels = zipf_labels(rng, num_classes, rows)
        else:
            labels = rng.integers(0, num_classes, rows).astype(np.int64)
        share = np.bincount(
            np.searchsorted(cutoffs, labels, side="right"), minlength=len(cutoffs) + 1
        )
        steps = variants(full, adaptive, inputs, labels, num_classes, cutoffs, args.xla)
        med = time_interleaved(steps, args.repeats)
        best_full = min(med["full"], med["full_chunked"])
        row = {name: round(t * 1e3, 2) for name, t in med.items()}
        row["share_per_cluster"] = (share / rows).round(3).tolist()
        row["speedup"] = round(best_full / med["adaptive"], 2)
        row["forward_speedup"] = round(med["full_forward"] / med["adaptive_forward"], 2)
        row["backward_full_ms"] = round((med["full"] - med["full_forward"]) * 1e3, 2)
        row["backward_adaptive_ms"] = round((med["adaptive"] - med["adaptive_forward"]) * 1e3, 2)
        if args.xla:
            row["speedup_xla"] = round(med["full_xla"] / med["adaptive_xla"], 2)
        results[targets] = row
        print(f"\ntargets {targets} (share of targets per cluster {row['share_per_cluster']})")
        for name, t in med.items():
            print(f"  {name:18s} {t * 1e3:10.1f} ms")
        print(
            f"  speedup forward+backward (best full / adaptive): {row['speedup']:.2f}x; "
            f"forward {row['forward_speedup']:.2f}x; backward {row['backward_full_ms']:.1f} -> "
            f"{row['backward_adaptive_ms']:.1f} ms"
            + (f"; XLA {row['speedup_xla']:.2f}x" if args.xla else "")
        )
    load_after = os.getloadavg()
    print(f"\nload average after: {load_after[0]:.2f} (1 min), {load_after[1]:.2f} (5 min)")
    results["config"] = dict(
        num_classes=num_classes,
        dim=dim,
        rows=rows,
        cutoffs=cutoffs,
        div_value=div_value,
        repeats=args.repeats,
        load_before=load_before,
        load_after=load_after,
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
