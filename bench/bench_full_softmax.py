"""Peak memory and time of the chunked full softmax against TensorFlow's one-shot computation.

Every case runs in a fresh subprocess, so its peak RSS is its own: the child
builds the class table, traces the step, resets the peak (``VmHWM``, through
``/proc/self/clear_refs``), runs the step ``--repeats`` times and reports the
peak RSS growth over the RSS before the first run, and the median time. The
growth counts everything the step allocates: logits, their copies and, for a
training step, the dense ``[num_classes, dim]`` weight gradient (which any
exact step returns; reported separately as ``grad MB``).

Cases (``impl``):
  matmul          one full-logits matmul ``inputs @ weights^T + biases`` (the time yardstick)
  oneshot_ce      ``full_logits`` + ``tf.nn.sparse_softmax_cross_entropy_with_logits``
  chunked_ce      ``tf_sampling.nn.full_softmax_cross_entropy``
  oneshot_step    forward+backward of the one-shot loss (gradients to inputs, weights, biases)
  chunked_step    forward+backward of the chunked loss
  oneshot_topk    ``tf.math.top_k`` on the full logits
  chunked_topk    ``tf_sampling.nn.full_top_k``

A one-shot case runs only where its estimated footprint fits ``--budget-gb``
(and the machine's available memory); otherwise its row says "skipped".

Usage:
  python bench/bench_full_softmax.py                  # the issue's shapes and the plot
  python bench/bench_full_softmax.py --quick          # small shapes, about a minute
  python bench/bench_full_softmax.py --plot-only      # plot sweep only
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MB = 2**20


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def _available_gb() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    return 0.0


def estimate_gb(impl: str, classes: int, dim: int, batch: int, k: int) -> float:
    """Peak footprint of a case (table, logits and copies), for the budget check.

    Factors measured at 10^5 x 512, batch 1024: the one-shot forward holds
    about 1.1x the logits (TF's cross-entropy kernel reuses the logits buffer
    for its gradient), the one-shot step the logits plus the weight gradient.
    """
    table = classes * dim * 4
    logits = batch * classes * 4
    extra = {
        "matmul": logits,
        "oneshot_ce": 1.2 * logits,
        "oneshot_topk": 1.2 * logits,
        "oneshot_step": 1.2 * logits + table,
        "chunked_ce": 256 * MB,
        "chunked_topk": 256 * MB,
        "chunked_step": table + 512 * MB,
    }[impl]
    return (table + extra) / 2**30 + 0.8  # + TensorFlow itself


def _watchdog(limit_mb: float, record: dict):
    """Ends this process if its RSS passes ``limit_mb`` (a shared machine)."""
    import threading

    def watch():
        while True:
            rss = _status_mb("VmRSS")
            if rss > limit_mb:
                record["exceeded"] = f"RSS {rss:.0f} MB passed the {limit_mb:.0f} MB limit"
                print("RESULT " + json.dumps(record), flush=True)
                os._exit(3)
            time.sleep(0.02)

    threading.Thread(target=watch, daemon=True).start()


def run_case(impl: str, classes: int, dim: int, batch: int, k: int, repeats: int, chunk, limit_gb):
    """Child process: builds, traces, measures one case and prints one JSON line."""
    _watchdog(
        limit_gb * 1024, {"impl": impl, "classes": classes, "dim": dim, "batch": batch, "k": k}
    )
    sys.path.insert(0, ROOT)
    import numpy as np
    import tensorflow as tf

    import tf_sampling.nn as tsn
    from tf_sampling._core.full_logits import full_logits

    tf.random.set_seed(0)
    strategy = "mod"
    if classes * dim * 4 > 4 * 2**30:
        # Too large to build as one variable or tensor under the budget (filling
        # a variable's slices copies it once; random_normal's scale needs a
        # second buffer): a list of 2^20-row tensor shards, "div" layout.
        strategy = "div"
        shard_rows = 2**20
        make = tf.function(
            lambda n, s: tf.random.stateless_normal([n, dim], seed=[1, s], stddev=0.05)
        )
        weights = [
            make(tf.constant(min(shard_rows, classes - start)), tf.constant(start))
            for start in range(0, classes, shard_rows)
        ]
    else:
        # Created empty and filled slice by slice inside one tf.function: a
        # random tensor of the whole table would double it before the
        # measurement.
        weights = tf.Variable(
            lambda: tf.zeros([classes, dim]), shape=[classes, dim], dtype=tf.float32
        )
        rows = max(1, (4 * MB) // (4 * dim))

        @tf.function
        def fill():
            for start in tf.range(0, classes, rows):
                size = tf.minimum(rows, classes - start)
                weights[start : start + size].assign(tf.random.normal([size, dim], stddev=0.05))

        fill()
    biases = tf.Variable(tf.random.normal([classes], stddev=0.1))
    if strategy == "div":
        biases = tf.split(biases, [int(w.shape[0]) for w in weights])
    inputs = tf.random.normal([batch, dim])
    labels = tf.random.uniform([batch, 1], maxval=classes, dtype=tf.int64)

    def oneshot_loss(x):
        logits = full_logits(weights, biases, x)
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels[:, 0], logits=logits)

    def chunked_loss(x):
        return tsn.full_softmax_cross_entropy(
            weights, biases, labels, x, classes, partition_strategy=strategy, chunk_size=chunk
        )

    def step_of(loss_fn):
        def step():
            with tf.GradientTape() as tape:
                tape.watch([inputs, weights, biases])
                loss = tf.reduce_mean(loss_fn(inputs))
            gx, gw, gb = tape.gradient(loss, [inputs, weights, biases])
            return loss, tf.reduce_sum(gx), tf.reduce_sum(gw), tf.reduce_sum(gb)

        return step

    cases = {
        "matmul": lambda: tf.reduce_sum(
            tf.nn.bias_add(tf.matmul(inputs, weights, transpose_b=True), biases)
        ),
        "oneshot_ce": lambda: tf.reduce_mean(oneshot_loss(inputs)),
        "chunked_ce": lambda: tf.reduce_mean(chunked_loss(inputs)),
        "oneshot_step": step_of(oneshot_loss),
        "chunked_step": step_of(chunked_loss),
        "oneshot_topk": lambda: tf.math.top_k(full_logits(weights, biases, inputs), k),
        "chunked_topk": lambda: tsn.full_top_k(
            weights, biases, inputs, k, partition_strategy=strategy, chunk_size=chunk
        ),
    }
    fn = tf.function(cases[impl])
    fn.get_concrete_function()
    # Freed heap pages (the table's build slices) would otherwise stay
    # resident and be reused unseen by the measured step.
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    before = _status_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        first = tf.nest.flatten(out)[0]
        value = float(tf.reduce_sum(tf.cast(first, tf.float64)))
        times.append(time.perf_counter() - t0)
    peak = _status_mb("VmHWM")
    print(
        "RESULT "
        + json.dumps(
            {
                "impl": impl,
                "classes": classes,
                "dim": dim,
                "batch": batch,
                "k": k,
                "chunk": chunk,
                "rss_before_mb": round(before, 1),
                "peak_growth_mb": round(peak - before, 1),
                "time_s": round(statistics.median(times), 3),
                "times_s": [round(t, 3) for t in times],
                "grad_mb": round(classes * dim * 4 / MB, 1) if impl.endswith("step") else 0.0,
                "value": value,
                "numpy": np.__version__,
            }
        ),
        flush=True,
    )


def spawn(impl, classes, dim, batch, k, repeats, chunk, budget_gb):
    """Runs one case in a subprocess, or returns a skip record when it would not fit."""
    need = estimate_gb(impl, classes, dim, batch, k)
    available = _available_gb()
    record = {"impl": impl, "classes": classes, "dim": dim, "batch": batch, "k": k}
    if need > budget_gb or need > available - 2:
        record["skipped"] = f"needs ~{need:.1f} GB (budget {budget_gb} GB, {available:.1f} GB free)"
        print(json.dumps(record), flush=True)
        return record
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        impl,
        str(classes),
        str(dim),
        str(batch),
        str(k),
        str(repeats),
        str(chunk or 0),
        str(budget_gb),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            record = json.loads(line[len("RESULT ") :])
            print(json.dumps(record), flush=True)
            return record
    record["failed"] = (proc.stderr or proc.stdout)[-800:]
    print(json.dumps(record), flush=True)
    return record


def table(records, reference_of):
    """Markdown table; ``reference_of(record)`` names the impl its ratio is against."""
    by_key = {(r["impl"], r["classes"], r["dim"], r["batch"]): r for r in records}
    lines = [
        "| case | classes x dim, batch | peak growth MB | grad MB | time s | ratio vs | time ratio |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in records:
        shape = f"{r['classes']:,} x {r['dim']}, {r['batch']}"
        if "peak_growth_mb" not in r:
            why = r.get("skipped") or r.get("exceeded") or "failed"
            lines.append(f"| {r['impl']} | {shape} | {why} | | | | |")
            continue
        ref_name = reference_of(r)
        ref = by_key.get((ref_name, r["classes"], r["dim"], r["batch"])) if ref_name else None
        ratio = (
            f"{r['time_s'] / ref['time_s']:.2f}x"
            if ref is not None and "time_s" in ref and ref is not r
            else ""
        )
        lines.append(
            f"| {r['impl']} | {shape} | {r['peak_growth_mb']:.0f} | {r['grad_mb']:.0f} | "
            f"{r['time_s']:.2f} | {ref_name if ratio else ''} | {ratio} |"
        )
    return "\n".join(lines)


def plot(records, path):
    """Peak memory growth against the number of classes, one-shot vs chunked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for impl, label, marker in (
        ("oneshot_ce", "one-shot (full logits + TF softmax CE)", "o"),
        ("chunked_ce", "chunked (tf_sampling.nn.full_softmax_cross_entropy)", "s"),
    ):
        points = sorted(
            (r["classes"], r["peak_growth_mb"])
            for r in records
            if r["impl"] == impl and "peak_growth_mb" in r
        )
        if points:
            ax.plot(*zip(*points, strict=True), marker=marker, label=label)
    shapes = {(r["dim"], r["batch"]) for r in records}
    dim, batch = sorted(shapes)[0]
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("number of classes")
    ax.set_ylabel("peak RSS growth of one forward pass (MB)")
    ax.set_title(f"Full softmax cross-entropy, dim {dim}, batch {batch} (CPU)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        impl, classes, dim, batch, k, repeats, chunk, limit = sys.argv[2:10]
        run_case(
            impl,
            int(classes),
            int(dim),
            int(batch),
            int(k),
            int(repeats),
            int(chunk) or None,
            float(limit),
        )
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes only")
    parser.add_argument("--plot-only", action="store_true", help="only the memory sweep and plot")
    parser.add_argument("--no-plot", action="store_true", help="skip the memory sweep and plot")
    parser.add_argument("--budget-gb", type=float, default=10.0, help="largest case footprint")
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per case")
    parser.add_argument("--chunk", type=int, default=0, help="chunk size (0: automatic)")
    parser.add_argument("--plot", default=os.path.join(ROOT, "docs", "full_softmax_memory.png"))
    parser.add_argument("--json", default=None, help="also write every record here")
    parser.add_argument(
        "--groups",
        default="main,big,sweep",
        help="comma-separated: main (10^6 x 512 and 2.5x10^5 x 512), big (10^7 x 128), sweep (plot)",
    )
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated impl:classes cases to leave out (already measured)",
    )
    parser.add_argument("--records", default=None, help="JSON of earlier records to include")
    args = parser.parse_args()
    chunk = args.chunk or None

    skip = set(filter(None, args.skip.split(",")))
    groups = set(args.groups.split(","))
    earlier = []
    if args.records:
        with open(args.records) as f:
            earlier = json.load(f)

    def go(impl, classes, dim, batch, k=100, repeats=None):
        for r in earlier:
            if (r["impl"], r["classes"], r["dim"], r["batch"]) == (impl, classes, dim, batch):
                return r
        if f"{impl}:{classes}" in skip:
            return {
                "impl": impl,
                "classes": classes,
                "dim": dim,
                "batch": batch,
                "skipped": "--skip",
            }
        record = spawn(impl, classes, dim, batch, k, repeats or args.repeats, chunk, args.budget_gb)
        if args.json:
            with open(args.json + "l", "a") as f:
                f.write(json.dumps(record) + "\n")
        return record

    records = []
    if args.quick:
        main_shapes = [(100_000, 128, 256)]
        big = []
        sweep = [10_000, 30_000, 100_000]
        sweep_shape = (128, 256)
    else:
        main_shapes = [(1_000_000, 512, 1024), (250_000, 512, 1024)]
        big = [(10_000_000, 128, 1024)]
        sweep = [10_000, 30_000, 100_000, 300_000, 1_000_000]
        sweep_shape = (512, 1024)
    if args.plot_only or "main" not in groups:
        main_shapes = []
    if args.plot_only or "big" not in groups:
        big = []
    if "sweep" not in groups:
        args.no_plot = True
    if main_shapes or big:
        for classes, dim, batch in main_shapes:
            for impl in ("matmul", "oneshot_ce", "chunked_ce", "oneshot_step", "chunked_step"):
                records.append(go(impl, classes, dim, batch))
        for classes, dim, batch in big:
            for impl in ("matmul", "chunked_ce", "chunked_topk", "oneshot_topk"):
                records.append(go(impl, classes, dim, batch, repeats=1))

        def reference_of(r):
            return {
                "oneshot_ce": "matmul",
                "chunked_ce": "matmul",
                "chunked_step": "oneshot_step",
                "oneshot_step": "matmul",
                "chunked_topk": "matmul",
                "oneshot_topk": "matmul",
            }.get(r["impl"])

        print()
        print(table(records, reference_of))
    if not args.no_plot:
        sweep_records = []
        dim, batch = sweep_shape
        for classes in sweep:
            for impl in ("oneshot_ce", "chunked_ce"):
                sweep_records.append(go(impl, classes, dim, batch, repeats=1))
        print()
        print(table(sweep_records, lambda r: "oneshot_ce"))
        plot(sweep_records, args.plot)
        records += sweep_records
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)


if __name__ == "__main__":
    main()
