"""Keras ``train_on_batch`` step time against the number of classes, per optimizer.

A ``tf_sampling.layers.SampledSoftmax`` head (dim 128, batch 256, 1024 sampled
classes, a ``Dense(128)`` trunk) trained with ``keras.optimizers.SGD``, Keras'
``Adam`` and ``tf_sampling.optimizers.LazyAdam``, at 10^4 ... 10^7 classes
(dim 32 at 10^7: three 10^7 x 128 float32 tables would not fit the memory
budget; 10^4 is also timed at dim 32 so the growth to 10^7 compares equal
widths). For reference, a full softmax (``Dense(num_classes)`` head,
``sparse_categorical_crossentropy``, SGD) at the sizes given by
``--full-max-classes``. Everything runs in one process. At each size SGD and
LazyAdam are built together and timed interleaved (A, B, B, A, ...), so drift
in machine load hits both alike and their ratio is fair; Keras Adam (10^7: not
run, its dense temporaries would exceed the memory budget) and the full
softmax, up to 1000x slower, are then timed each in their own loop. Medians of
``--repeats`` steps (``--large-repeats`` for the slow ones) after 3 warm-up steps.

Each size runs in its own child process, one after the other (``--one-process``
runs them all in this one): a model with a ``tf_sampling.layers`` head is never
freed in this version (its traced training graph keeps the layer, hence its
tables, alive), and the 10^6 and 10^7 tables together would exceed the
benchmark's 8 GB memory budget. Ratios between optimizers always come from one
process; growth across sizes from consecutive processes.

Usage:
  python bench/bench_optimizers.py                  # the table, JSON and the PNG plot
  python bench/bench_optimizers.py --quick          # 10^4 and 10^5 only
  python bench/bench_optimizers.py --survey         # which Keras optimizers stay sparse
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_sampling.layers  # noqa: E402
import tf_sampling.losses  # noqa: E402
from tf_sampling import ops, optimizers  # noqa: E402

BATCH, NUM_SAMPLED = 256, 1024
# (num_classes, dim)
SIZES = [(10**4, 128), (10**5, 128), (10**6, 128), (10**4, 32), (10**7, 32)]
QUICK_SIZES = [(10**4, 128), (10**5, 128)]
OPTIMIZERS = {
    "SGD": lambda: keras.optimizers.SGD(0.01),
    "Adam": lambda: keras.optimizers.Adam(1e-3),
    # The configuration the README and the demo use (second_moment="per_lookup":
    # one more segment sum over the slices than the default).
    "LazyAdam": lambda: optimizers.LazyAdam(1e-3, second_moment="per_lookup"),
    # The same without the fused C++ row update (its TensorFlow-ops path:
    # trained with the kernels switched off, see WITHOUT_KERNELS).
    "LazyAdam (TF ops)": lambda: optimizers.LazyAdam(1e-3, second_moment="per_lookup"),
}
#: Models whose steps are built with tf_sampling's C++ kernels switched off.
WITHOUT_KERNELS = {"LazyAdam (TF ops)"}
FULL = "full softmax (SGD)"
FAST = ("SGD", "LazyAdam", "LazyAdam (TF ops)")


def kernels_for(name: str):
    """The context a model's steps run in: its kernels switched off if WITHOUT_KERNELS names it."""
    return ops.custom_kernels(False) if name in WITHOUT_KERNELS else contextlib.nullcontext()


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far, in GB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def release_memory() -> None:
    """Frees what the last models left that can be freed, and trims the heap."""
    keras.backend.clear_session()
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass


def sampled_model(num_classes: int, dim: int, optimizer) -> keras.Model:
    inputs = keras.Input((dim,))
    hidden = keras.layers.Dense(dim, activation="relu")(inputs)
    head = tf_sampling.layers.SampledSoftmax(num_classes, num_sampled=NUM_SAMPLED, seed=1)
    model = keras.Model(inputs, head(hidden))
    model.compile(optimizer=optimizer, loss=tf_sampling.losses.SampledSoftmaxLoss())
    return model


def full_model(num_classes: int, dim: int) -> keras.Model:
    inputs = keras.Input((dim,))
    hidden = keras.layers.Dense(dim, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(num_classes)(hidden))
    model.compile(
        optimizer=keras.optimizers.SGD(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def time_interleaved(models: dict, x, y, repeats: int, warmup: int = 3) -> dict:
    """Median seconds of one ``train_on_batch`` per model, timings interleaved.

    The order alternates every round (A, B, B, A, ...), so that neither model
    always runs right after the other (caches, allocator state).
    """
    for name, model in models.items():
        with kernels_for(name):  # the first call traces the step
            for _ in range(warmup):
                model.train_on_batch(x, y)
    times = {name: [] for name in models}
    order = list(models)
    for _ in range(repeats):
        for name in order:
            with kernels_for(name):
                start = time.perf_counter()
                models[name].train_on_batch(x, y)
                times[name].append(time.perf_counter() - start)
        order.reverse()
    return {name: statistics.median(t) for name, t in times.items()}


def measure_size(args, num_classes: int, dim: int) -> dict:
    """One row of the table: median step times of every model at one size."""
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    x = tf.constant(rng.normal(size=(BATCH, dim)).astype(np.float32))
    y = tf.constant(rng.zipf(1.2, size=BATCH) % num_classes, tf.int64)
    # SGD and LazyAdam interleaved; Keras Adam and the full softmax, up to
    # 1000x slower at 10^6 classes, each in their own loop afterwards (a
    # second-long step between two fast ones would evict their caches).
    models = {name: sampled_model(num_classes, dim, OPTIMIZERS[name]()) for name in FAST}
    medians = time_interleaved(models, x, y, args.repeats)
    del models
    release_memory()
    slow = args.repeats if num_classes * dim <= 2 * 10**7 else args.large_repeats
    if num_classes <= args.adam_max_classes:
        adam = sampled_model(num_classes, dim, OPTIMIZERS["Adam"]())
        medians.update(time_interleaved({"Adam": adam}, x, y, slow))
        del adam
        release_memory()
    if num_classes <= args.full_max_classes and dim == 128:
        medians.update(time_interleaved({FULL: full_model(num_classes, dim)}, x, y, slow))
        release_memory()
    row = {"num_classes": num_classes, "dim": dim, "repeats": {"fast": args.repeats, "slow": slow}}
    row.update({name: medians.get(name) for name in [*OPTIMIZERS, FULL]})
    row["peak_rss_gb"] = peak_rss_gb()
    return row


def run_table(args) -> list[dict]:
    """Measures every size, each in a child process (or all here with --one-process)."""
    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    rows = []
    header = f"{'classes':>10}{'dim':>5}" + "".join(f"{n:>20}" for n in [*OPTIMIZERS, FULL])
    print(header + f"{'peak RSS GB':>13}")
    print("-" * (len(header) + 13))
    passed = [
        f"--repeats={args.repeats}",
        f"--large-repeats={args.large_repeats}",
        f"--adam-max-classes={args.adam_max_classes}",
        f"--full-max-classes={args.full_max_classes}",
    ]
    for num_classes, dim in sizes:
        if args.one_process:
            row = measure_size(args, num_classes, dim)
        else:
            child = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--child", str(num_classes), str(dim)]
                + passed,
                capture_output=True,
                text=True,
                check=False,
            )
            if child.returncode != 0:
                raise SystemExit(f"size {num_classes} x {dim} failed:\n{child.stderr[-3000:]}")
            row = json.loads(child.stdout.strip().splitlines()[-1])
        rows.append(row)
        cells = "".join(
            f"{'-' if row[n] is None else f'{row[n] * 1e3:.1f} ms':>20}"
            for n in [*OPTIMIZERS, FULL]
        )
        print(f"{num_classes:>10}{dim:>5}{cells}{row['peak_rss_gb']:>13.2f}", flush=True)
    return rows


def summarize(rows: list[dict]) -> None:
    by_size = {(r["num_classes"], r["dim"]): r for r in rows}

    def ratio(a, b, name_a, name_b=None):
        ra, rb = by_size.get(a), by_size.get(b)
        if ra is None or rb is None or ra[name_a] is None or rb[name_b or name_a] is None:
            return None
        return ra[name_a] / rb[name_b or name_a]

    print()
    for name in OPTIMIZERS:
        for small, large in [((10**4, 128), (10**6, 128)), ((10**4, 32), (10**7, 32))]:
            r = ratio(large, small, name)
            if r is not None:
                print(
                    f"growth {name:<9} {small[0]:.0e} -> {large[0]:.0e} (dim {small[1]}): {r:.2f}x"
                )
    r = ratio((10**7, 32), (10**4, 128), "LazyAdam")
    if r is not None:
        print(f"growth LazyAdam  1e+04 dim 128 -> 1e+07 dim 32: {r:.2f}x")
    for size in [(10**6, 128), (10**7, 32)]:
        r = ratio(size, size, "LazyAdam", "SGD")
        if r is not None:
            print(f"LazyAdam / SGD at {size[0]:.0e} (dim {size[1]}): {r:.2f}x")
    for size in sorted(by_size):
        r = ratio(size, size, "LazyAdam (TF ops)", "LazyAdam")
        if r is not None:
            print(f"LazyAdam TF ops / fused kernel at {size[0]:.0e} (dim {size[1]}): {r:.2f}x")
    r = ratio((10**6, 128), (10**6, 128), "Adam", "LazyAdam")
    if r is not None:
        print(f"Keras Adam / LazyAdam at 1e+06: {r:.1f}x")


def plot(rows: list[dict], path: str) -> None:
    import matplotlib  # noqa: PLC0415 - only the plot needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = {"SGD": "o-", "Adam": "s-", "LazyAdam": "^-", FULL: "x--"}
    main = sorted(
        (r for r in rows if r["dim"] == 128 or r["num_classes"] == 10**7),
        key=lambda r: r["num_classes"],
    )
    for name, style in styles.items():
        pts = [(r["num_classes"], r[name] * 1e3) for r in main if r.get(name) is not None]
        if pts:
            ax.plot(*zip(*pts, strict=True), style, label=name)
    for r in main:
        if r["dim"] != 128:
            ax.annotate(
                f"dim {r['dim']}",
                (r["num_classes"], r["LazyAdam"] * 1e3),
                textcoords="offset points",
                xytext=(-10, -14),
                fontsize=8,
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("number of classes")
    ax.set_ylabel("train_on_batch step (ms, median)")
    ax.set_title(
        f"SampledSoftmax head, dim 128, batch {BATCH}, {NUM_SAMPLED} sampled (10^7: dim 32)",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


# --------------------------------------------------------------------------- survey

SURVEY = {
    "SGD": lambda: keras.optimizers.SGD(),
    "SGD(momentum=0.9)": lambda: keras.optimizers.SGD(momentum=0.9),
    "Adam": lambda: keras.optimizers.Adam(),
    "AdamW": lambda: keras.optimizers.AdamW(),
    "Adamax": lambda: keras.optimizers.Adamax(),
    "Nadam": lambda: keras.optimizers.Nadam(),
    "Adagrad": lambda: keras.optimizers.Adagrad(),
    "Adadelta": lambda: keras.optimizers.Adadelta(),
    "RMSprop": lambda: keras.optimizers.RMSprop(),
    "Ftrl": lambda: keras.optimizers.Ftrl(),
    "Lion": lambda: keras.optimizers.Lion(),
    "Lamb": lambda: keras.optimizers.Lamb(),
    "Adafactor": lambda: keras.optimizers.Adafactor(),
    "SGD(clipnorm=1)": lambda: keras.optimizers.SGD(clipnorm=1.0),
    "SGD(global_clipnorm=1)": lambda: keras.optimizers.SGD(global_clipnorm=1.0),
    "SGD(weight_decay=0.01)": lambda: keras.optimizers.SGD(weight_decay=0.01),
    "LossScaleOptimizer(SGD)": lambda: keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD()),
    "tf_sampling LazyAdam": lambda: optimizers.LazyAdam(),
    "tf_sampling LazyAdam(per_lookup, catch_up)": lambda: optimizers.LazyAdam(
        second_moment="per_lookup", catch_up=True
    ),
    "tf_sampling LazyAdamW": lambda: optimizers.LazyAdamW(),
    "tf_sampling LazySGD(momentum=0.9)": lambda: optimizers.LazySGD(momentum=0.9),
    "tf_sampling LazyAdagrad": lambda: optimizers.LazyAdagrad(),
    "SparseLossScaleOptimizer(LazyAdam)": lambda: optimizers.SparseLossScaleOptimizer(
        optimizers.LazyAdam()
    ),
}


def _full_size_ops(graph, rows: int) -> list[str]:
    """Op types in ``graph`` and its nested functions that make a tensor with a ``rows`` axis."""
    found = []
    for op in graph.get_operations():
        for out in op.outputs:
            if out.dtype != tf.resource and out.shape.rank and rows in out.shape.as_list():
                found.append(op.type)
    for fn in graph._functions.values():  # cond/while branches (no public accessor)
        if hasattr(fn, "graph"):
            found += _full_size_ops(fn.graph, rows)
    return found


def _apply_fn(opt, variable, grad):
    return tf.function(lambda: opt.apply([grad()], [variable]))


def survey() -> None:
    """Inspects and measures each optimizer on one sparse gradient of a large table.

    * "full-size tensors": ops of the traced ``apply`` (nested functions
      included) whose output has a ``rows`` axis, the table being ``[rows, 4]``
      with ``rows`` = 100,003, a size nothing else has.
    * "untouched rows change": after one dense step (so that every row has
      state) and two sparse steps on rows {1, 5, 7}, whether any other row of
      the weights or the optimizer's variables changed in the sparse steps.
    """
    rows = 100_003
    init = np.random.default_rng(0).normal(size=(rows, 4)).astype(np.float32)
    print(f"{'optimizer':<44}{'full-size tensors per step':>28}{'untouched rows change':>24}")
    print("-" * 96)
    for name, make in SURVEY.items():
        variable = keras.Variable(init)
        opt = make()
        opt.build([variable])
        # One dense step first, so that every row has non-zero slots to decay.
        opt.apply([tf.ones([rows, 4])], [variable])
        start = variable.numpy().copy()
        before = [v.numpy().copy() for v in opt.variables if tuple(v.shape) == (rows, 4)]

        def grad():
            return tf.IndexedSlices(
                tf.ones([3, 4]), tf.constant([1, 5, 7], tf.int64), tf.constant([rows, 4], tf.int64)
            )

        step = _apply_fn(opt, variable, grad)
        ops = _full_size_ops(step.get_concrete_function().graph, rows)
        step()
        step()
        untouched = np.setdiff1d(np.arange(rows), [1, 5, 7])
        after = [v.numpy() for v in opt.variables if tuple(v.shape) == (rows, 4)]
        changed = not np.array_equal(variable.numpy()[untouched], start[untouched]) or any(
            not np.array_equal(a[untouched], b[untouched])
            for a, b in zip(after, before, strict=True)
        )
        print(f"{name:<44}{len(ops):>28}{'yes' if changed else 'no':>24}", flush=True)


def _parse_sizes(text: str) -> list[tuple[int, int]]:
    try:
        return [tuple(int(v) for v in item.split("x")) for item in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"`--sizes` must be a list like 10000x128,1000000x32, got {text!r}"
        ) from None


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="10^4 and 10^5 classes only")
    parser.add_argument("--survey", action="store_true", help="which optimizers stay sparse")
    parser.add_argument("--repeats", type=int, default=31, help="timed steps per cell")
    parser.add_argument(
        "--large-repeats", type=int, default=7, help="... of Adam, full softmax above 2e7 entries"
    )
    parser.add_argument("--adam-max-classes", type=int, default=10**6, help="Keras Adam up to")
    parser.add_argument("--full-max-classes", type=int, default=10**6, help="full softmax up to")
    parser.add_argument("--json", default=None, help="write the table as JSON here")
    parser.add_argument(
        "--plot", default=os.path.join(ROOT, "docs", "optimizers_step_time.png"), help="PNG path"
    )
    parser.add_argument(
        "--one-process", action="store_true", help="all sizes in this process (see above)"
    )
    parser.add_argument(
        "--sizes",
        type=_parse_sizes,
        help="classes x dim list, e.g. 10000x32,10000000x32 (default: all of the table)",
    )
    parser.add_argument(
        "--load", nargs="+", metavar="JSON", help="summarize and plot earlier --json files instead"
    )
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure_size(args, *args.child)))
        return
    if args.survey:
        survey()
        return
    print(
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, "
        f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'default')}"
    )
    if args.load:
        rows = [row for path in args.load for row in json.loads(pathlib.Path(path).read_text())]
    else:
        rows = run_table(args)
    summarize(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
