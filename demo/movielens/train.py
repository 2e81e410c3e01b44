"""TFRS basic_retrieval on MovieLens-100K and its variants, several seeds each; JSON and PNG.

The protocol of TensorFlow Recommenders' basic_retrieval tutorial: query =
user id, candidate = movie title, an 80/20 random split with a fixed seed
(42), 32-dimensional embedding towers, batches of 8192 shuffled once (TFRS
caches the shuffled batches, so every epoch replays that order), Adagrad 0.1,
3 epochs, the in-batch softmax loss summed over the batch; metric: the
fraction of test pairs whose movie is among the user's top 100 of all 1,682
movies (TFRS's published figure: about 0.233). The seed of a run sets the
towers' initialization, the batch order and the negative draws; the split
stays fixed.

Variants, each one change from the baseline (plain in-batch softmax, as TFRS):
  hits_removed       accidental hits removed
  logq               logQ correction from the streaming frequency estimator
  mixed_negatives    + uniform draws from the title corpus as extra negatives
  memory             + cross-batch memory of the last 8192 candidates (one batch)
  same_query_masked  the user's other positives in the batch are not negatives
  all                all of the above (mixed negatives corrected by their own
                     expected count)
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import time

import keras
import numpy as np
import tensorflow as tf

import tf_sampling
from demo.movielens import data as ml
from tf_sampling.layers import (
    CorpusNegativeSampler,
    InBatchSoftmaxRetrieval,
    retrieval_top_k_accuracy,
)

SPLIT_SEED = 42
PUBLISHED_TOP_100 = 0.233
KS = (1, 5, 10, 50, 100)

VARIANTS = {
    "baseline": {"remove_accidental_hits": False},
    "hits_removed": {"remove_accidental_hits": True},
    "logq": {"remove_accidental_hits": False, "logq_correction": True},
    "mixed_negatives": {"remove_accidental_hits": False, "mixed": 1024},
    "memory": {"remove_accidental_hits": False, "memory_size": 8192},
    "same_query_masked": {"remove_accidental_hits": False, "mask_same_query": True},
    "all": {
        "remove_accidental_hits": True,
        "logq_correction": True,
        "mixed": 1024,
        "memory_size": 8192,
        "mask_same_query": True,
    },
}


class TwoTower(keras.Model):
    """User tower and title tower (one embedding table each), joined by the retrieval layer."""

    def __init__(self, num_users, num_titles, dim, options, seed):
        super().__init__()
        options = dict(options)
        mixed = options.pop("mixed", 0)
        # One spare row each, as TFRS's StringLookup out-of-vocabulary row.
        self.user_tower = keras.layers.Embedding(num_users + 1, dim, name="user_tower")
        self.title_tower = keras.layers.Embedding(num_titles + 1, dim, name="title_tower")
        if options.get("memory_size"):
            options["embedding_dim"] = dim
        if options.get("logq_correction"):
            # Arrivals per batch: alpha 0.1 settles within the 30 steps of this job.
            options.setdefault("estimator_learning_rate", 0.1)
            options.setdefault("estimator_buckets", 1 << 14)
        self.retrieval = InBatchSoftmaxRetrieval(reduction="sum", name="retrieval", **options)
        self.sampler = CorpusNegativeSampler(num_titles, mixed, seed=seed) if mixed else None

    def call(self, inputs, training=None):
        users, titles = inputs["user"], inputs["title"]
        extra = {}
        if self.sampler is not None:
            negatives, expected = self.sampler()
            extra = dict(
                extra_negative_embeddings=self.title_tower(negatives),
                extra_negative_ids=negatives,
                extra_negative_sampling_probability=(
                    expected if self.retrieval.logq_correction else None
                ),
            )
        return self.retrieval(
            self.user_tower(users),
            self.title_tower(titles),
            candidate_ids=titles,
            query_ids=users,
            training=training,
            **extra,
        )


def split(data: ml.MovieLens):
    order = np.random.default_rng(SPLIT_SEED).permutation(len(data.user))
    cut = int(0.8 * len(order))
    return order[:cut], order[cut:]


def run_one(data, train_rows, test_rows, variant, seed, args) -> dict:
    keras.utils.set_random_seed(seed)
    model = TwoTower(data.num_users, len(data.titles), args.dim, VARIANTS[variant], seed)
    model.compile(optimizer=keras.optimizers.Adagrad(args.learning_rate))
    # Shuffled once, then the same batches every epoch (TFRS's shuffle().batch().cache()).
    rows = train_rows[np.random.default_rng(seed).permutation(len(train_rows))]
    dataset = tf.data.Dataset.from_tensor_slices(
        {"user": data.user[rows], "title": data.title[rows]}
    ).batch(args.batch_size)
    start = time.perf_counter()
    history = model.fit(dataset, epochs=args.epochs, verbose=0, shuffle=False)
    train_s = time.perf_counter() - start
    queries = model.user_tower(data.user[test_rows]).numpy()
    corpus = model.title_tower(data.movie_title).numpy()
    accuracy = retrieval_top_k_accuracy(
        queries, corpus, data.title[test_rows], ks=KS, candidate_ids=data.movie_title
    )
    return {
        "top_k": {str(k): v for k, v in accuracy.items()},
        "loss": [float(x) for x in history.history["loss"]],
        "train_seconds": train_s,
    }


def summarize(results: dict) -> dict:
    base = np.array([r["top_k"]["100"] for r in results["baseline"]])
    summary = {}
    for name, runs in results.items():
        top = np.array([r["top_k"]["100"] for r in runs])
        entry = {
            "top_100_mean": float(top.mean()),
            "top_100_std": float(top.std(ddof=1)) if len(top) > 1 else 0.0,
            "top_k_mean": {str(k): float(np.mean([r["top_k"][str(k)] for r in runs])) for k in KS},
        }
        if name != "baseline":
            diff = float(top.mean() - base.mean())
            entry["diff_vs_baseline"] = diff
            entry["beats_baseline_by_2_std"] = bool(
                len(base) > 1 and diff > 2 * float(base.std(ddof=1))
            )
        summary[name] = entry
    return summary


def plot(summary: dict, path: pathlib.Path, seeds: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary)
    means = [summary[n]["top_100_mean"] for n in names]
    stds = [summary[n]["top_100_std"] for n in names]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(names, means, yerr=stds, capsize=4, color="#4C72B0")
    ax.axhline(PUBLISHED_TOP_100, color="#C44E52", ls="--", label="TFRS published (0.233)")
    ax.set_ylabel("test top-100 accuracy")
    ax.set_title(f"MovieLens-100K retrieval, TFRS protocol (mean ± std, {seeds} seeds)")
    ax.set_ylim(0, max(m + s for m, s in zip(means, stds, strict=True)) * 1.15)
    ax.legend(loc="lower right")
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="TFRS basic_retrieval and variants.")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8192)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default="docs/movielens_retrieval.json")
    parser.add_argument("--plot", default="docs/movielens_retrieval.png")
    args = parser.parse_args(argv)
    if "baseline" not in args.variants:
        args.variants.insert(0, "baseline")
    data = ml.load(args.data_dir)
    train_rows, test_rows = split(data)
    results = {}
    start = time.perf_counter()
    for variant in args.variants:
        results[variant] = []
        for seed in range(args.seeds):
            run = run_one(data, train_rows, test_rows, variant, seed, args)
            results[variant].append(run)
            print(
                f"[movielens] {variant:18s} seed {seed}: top-100 {run['top_k']['100']:.4f} "
                f"(train {run['train_seconds']:.1f} s)",
                flush=True,
            )
    summary = summarize(results)
    report = {
        "protocol": {
            "data": f"MovieLens-100K from recbole {ml.RECBOLE_VERSION}",
            "split_seed": SPLIT_SEED,
            "train": len(train_rows),
            "test": len(test_rows),
            "corpus_rows": len(data.movie_title),
            "titles": len(data.titles),
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "embedding_dim": args.dim,
            "optimizer": f"Adagrad({args.learning_rate})",
            "seeds": args.seeds,
            "published_top_100": PUBLISHED_TOP_100,
            "beats_rule": "variant mean - baseline mean > 2 * baseline std (ddof=1)",
        },
        "variants": {name: VARIANTS[name] for name in results},
        "summary": summary,
        "runs": results,
        "machine": {
            "platform": platform.platform(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "tf_sampling": tf_sampling.__version__,
            "wall_seconds": time.perf_counter() - start,
        },
    }
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    if args.plot:
        plot(summary, pathlib.Path(args.plot), args.seeds)
    for name, entry in summary.items():
        extra = ""
        if name != "baseline":
            extra = f"  diff {entry['diff_vs_baseline']:+.4f} beats>2std: {entry['beats_baseline_by_2_std']}"
        print(
            f"[movielens] {name:18s} top-100 {entry['top_100_mean']:.4f} ± "
            f"{entry['top_100_std']:.4f}{extra}"
        )
    print(f"[movielens] wrote {out}" + (f" and {args.plot}" if args.plot else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
