"""Peak memory and time of one Keras ``evaluate`` batch: our head vs Keras' built-in full softmax.

Each case runs in a fresh process (so peak RSS is its own). Modes, at the same
``[num_classes, dim]`` table and batch:

* ``ours``: ``layers.SampledSoftmax`` + ``SampledSoftmaxLoss`` + ``Perplexity``
  + ``TopKAccuracy(5)`` (exact, in class blocks, from the head's input);
* ``keras``: the same table as a ``Dense`` head with Keras'
  ``SparseCategoricalCrossentropy(from_logits=True)`` and
  ``SparseTopKCategoricalAccuracy(5)`` on the full logits (skipped where the
  ``[batch, num_classes]`` logits would not fit in ``--max-keras-gb``);
* ``matmul``: one compiled ``inputs @ weights^T + biases``, the unit of time.

Usage: python bench/bench_keras_eval.py [--cases 1e5x512 1e6x128 ...] [--batch 1024]
Prints one JSON line per run and a table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

CHILD = r"""
import json, sys, time
import numpy as np, keras, tensorflow as tf
import tf_sampling

def hwm_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1])

def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])

def reset_hwm():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

mode, V, D, B = sys.argv[1], int(float(sys.argv[2])), int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(0)
x = rng.normal(size=(B, D)).astype("float32")
y = rng.integers(0, V, size=B)
inputs = keras.Input((D,))
if mode == "ours":
    head = tf_sampling.layers.SampledSoftmax(V, num_sampled=64, seed=1)
    model = keras.Model(inputs, head(inputs))
    model.compile(loss=tf_sampling.losses.SampledSoftmaxLoss(),
                  metrics=[tf_sampling.metrics.Perplexity(), tf_sampling.metrics.TopKAccuracy(5)])
elif mode == "keras":
    model = keras.Model(inputs, keras.layers.Dense(V)(inputs))
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseTopKCategoricalAccuracy(5)])
else:
    w = tf.Variable(tf.random.normal([V, D], stddev=0.05))
    b = tf.Variable(tf.zeros([V]))
    step = tf.function(lambda h: tf.reduce_sum(tf.matmul(h, w, transpose_b=True) + b))
if mode == "matmul":
    step(x[:8]); base = rss_kb(); reset_hwm()
    times = []
    for _ in range(3):
        t = time.perf_counter(); step(x).numpy(); times.append(time.perf_counter() - t)
    seconds = sorted(times)[1]
    out = {}
else:
    model.evaluate(x[:8], y[:8], batch_size=8, verbose=0)   # build and trace (shapes differ)
    base = rss_kb(); reset_hwm()
    t = time.perf_counter()
    out = model.evaluate(x, y, batch_size=B, verbose=0, return_dict=True)
    seconds = time.perf_counter() - t
print(json.dumps({"mode": mode, "V": V, "D": D, "B": B, "s": round(seconds, 3),
                  "extra_peak_MB": round((hwm_kb() - base) / 1024),
                  "out": {k: round(float(v), 4) for k, v in out.items()}}))
"""


def run(mode: str, classes: float, dim: int, batch: int) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(classes), str(dim), str(batch)],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
    )
    if done.returncode != 0:
        return {"mode": mode, "V": int(classes), "D": dim, "error": done.stderr[-300:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["1e5x512", "1e6x128", "1e6x512"])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--max-keras-gb", type=float, default=1.0, help="logits size cap")
    args = parser.parse_args()
    rows = []
    for case in args.cases:
        classes, dim = case.split("x")
        classes, dim = float(classes), int(dim)
        modes = ["matmul", "ours"]
        if classes * args.batch * 4 / 2**30 <= args.max_keras_gb:
            modes.append("keras")
        results = {}
        for mode in modes:
            started = time.perf_counter()
            results[mode] = run(mode, classes, dim, args.batch)
            print(json.dumps(results[mode]), f"({time.perf_counter() - started:.0f} s)", flush=True)
        rows.append((case, results))
    print(
        "\n| classes x dim | batch | ours extra MB | ours s | matmul s | ours/matmul "
        "| Keras extra MB | Keras s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for case, r in rows:
        ours, mm, ks = r["ours"], r["matmul"], r.get("keras")
        ratio = ours["s"] / mm["s"] if "s" in ours and "s" in mm else float("nan")
        keras_cells = (
            f"{ks.get('extra_peak_MB', '-')} | {ks.get('s', '-')}" if ks else "not run | not run"
        )
        print(
            f"| {case} | {args.batch} | {ours.get('extra_peak_MB')} | {ours.get('s')} | "
            f"{mm.get('s')} | {ratio:.2f} | {keras_cells} |"
        )


if __name__ == "__main__":
    main()
