"""MovieLens-100K multi-label job: sampled vs exact training on padded label sets.

Task (``demo.multilabel.examples``): from the bag of a user's last 32 liked
movies (rating >= 4), predict the next group of movies they like, 1 to 8
(``max_true``) per example, split by a global time cut (the last 20% of liked
ratings are the test period). Model: the history's movie embeddings averaged
(mask of the empty slots), one ReLU layer, and a ``SampledSoftmax`` head over
all 1,682 movies with ``num_true = max_true``.

Trainings, same model, data, optimizer and seeds; only the loss changes:
  sampled         SampledSoftmaxLoss(padding_id=-1): each of the n_i labels
                  gets 1/n_i, the padding takes no part.
  full            FullSoftmaxLoss(padding_id=-1): the exact softmax
                  cross-entropy over all movies, same targets.
  repeat_padding  the usual workaround: the padded slots hold the row's first
                  label and SampledSoftmaxLoss() sees a fixed num_true = 8, so
                  the first label gets weight (9 - n_i) / 8 and the sampler
                  counts the copies.
  popularity      (no training) movies ranked by how often they are a
                  training label.

Evaluation, exact over every movie: precision@k, recall@k and nDCG@k
(``tf_sampling.metrics``), and the exact set cross-entropy, on the test
examples (padded with -1). For the sampled trainings, what the learned-unigram
sampler counted: the share of its counts that are padding copies, and the
total-variation distance of its distribution from the real labels'.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import platform
import time

import keras
import numpy as np
import tensorflow as tf

import tf_sampling
from demo.movielens import data as ml
from demo.multilabel import examples as ex
from tf_sampling import layers, losses, metrics
from tf_sampling import nn as tsn

KS = (5, 10, 20)
MODELS = ("sampled", "full", "repeat_padding")
METRICS = {"precision": metrics.PrecisionAtK, "recall": metrics.RecallAtK, "ndcg": metrics.NDCGAtK}


@dataclasses.dataclass
class Config:
    epochs: int = 10
    batch_size: int = 256
    dim: int = 64
    hidden: int = 128
    num_sampled: int = 64
    sampler: str = "learned_unigram"
    learning_rate: float = 2e-3
    ks: tuple[int, ...] = KS


class EpochTimes(keras.callbacks.Callback):
    """Wall seconds of each training epoch."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def build_model(num_movies: int, history: int, max_true: int, config: Config, seed: int):
    """Embedding bag -> ReLU layer -> ``SampledSoftmax`` head; returns ``(model, head)``."""
    keras.utils.set_random_seed(seed)
    ids = keras.Input((history,), dtype="int32", name="history")
    bag = keras.layers.Embedding(num_movies + 1, config.dim, mask_zero=True, name="movies")(ids)
    mean = keras.layers.GlobalAveragePooling1D(name="mean")(bag)  # over the real slots
    hidden = keras.layers.Dense(config.hidden, activation="relu", name="hidden")(mean)
    head = layers.SampledSoftmax(
        num_movies,
        config.num_sampled,
        num_true=max_true,
        sampler=config.sampler,
        seed=seed,
        name="head",
    )
    return keras.Model(ids, head(hidden)), head


def evaluate(model, test: ex.Examples, ks=KS) -> dict:
    """Exact test metrics over every class; the model is recompiled for evaluation."""
    model.compile(
        loss=losses.FullSoftmaxLoss(padding_id=ex.PADDING_ID),
        metrics=[
            cls(k=k, padding_id=ex.PADDING_ID, name=f"{name}@{k}")
            for name, cls in METRICS.items()
            for k in ks
        ],
    )
    scores = model.evaluate(test.history, test.labels, batch_size=1024, verbose=0, return_dict=True)
    result = {"cross_entropy": float(scores.pop("loss"))}
    result.update({name: float(v) for name, v in scores.items()})
    return result


def sampler_counts_error(head, train_labels: np.ndarray, epochs: int) -> dict:
    """How far the head's learned-unigram counts are from the real training labels.

    Every epoch shows each real label once, so exact counts are ``epochs``
    times the labels' histogram. Returns the share of the counted mass that
    is not a real label (padding copies) and the total-variation distance
    between the two distributions (0 when the sampler saw only real labels).
    """
    counts = np.asarray(head.sampler.counts(), np.float64)
    real = train_labels[train_labels != ex.PADDING_ID]
    expected = epochs * np.bincount(real, minlength=counts.shape[0]).astype(np.float64)
    return {
        "padding_share_of_counts": float((counts.sum() - expected.sum()) / counts.sum()),
        "counts_tv_distance": float(
            0.5 * np.abs(counts / counts.sum() - expected / expected.sum()).sum()
        ),
    }


def train(split: ex.Split, model_name: str, seed: int, config: Config):
    """Trains one model on ``split.train``; returns ``(model, train_loss, epoch_seconds)``."""
    if model_name not in MODELS:
        raise ValueError(f"model_name must be one of {MODELS}, got {model_name!r}.")
    history, max_true = split.train.history.shape[1], split.train.labels.shape[1]
    model, head = build_model(split.num_movies, history, max_true, config, seed)
    labels = split.train.labels
    if model_name == "full":
        loss = losses.FullSoftmaxLoss(padding_id=ex.PADDING_ID)
    elif model_name == "sampled":
        loss = losses.SampledSoftmaxLoss(padding_id=ex.PADDING_ID)
    else:
        loss = losses.SampledSoftmaxLoss()
        labels = ex.repeat_first(labels)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=loss)
    times = EpochTimes()
    history_ = model.fit(
        split.train.history,
        labels,
        batch_size=config.batch_size,
        epochs=config.epochs,
        shuffle=True,
        verbose=0,
        callbacks=[times],
    )
    return model, [float(v) for v in history_.history["loss"]], times.seconds


def run_one(split: ex.Split, model_name: str, seed: int, config: Config) -> dict:
    """Trains one model on ``split.train`` and measures it on ``split.test``."""
    model, train_loss, epoch_seconds = train(split, model_name, seed, config)
    result = {}
    if model_name != "full" and config.sampler == "learned_unigram":
        head = model.get_layer("head")
        result.update(sampler_counts_error(head, split.train.labels, config.epochs))
    result.update(evaluate(model, split.test, config.ks))
    result["train_loss"] = train_loss
    result["epoch_seconds"] = epoch_seconds
    return result


def popularity(split: ex.Split, ks=KS) -> dict:
    """Every test example gets the same ranking: movies by count as a training label."""
    real = split.train.labels[split.train.labels != ex.PADDING_ID]
    counts = np.bincount(real, minlength=split.num_movies).astype(np.float32)
    n = len(split.test.labels)
    labels = tsn.label_set(split.test.labels, padding_id=ex.PADDING_ID)
    result = {}
    for k in ks:
        # Logits = the bias alone: log(count + 1), zero weights and inputs.
        scores = tsn.full_multilabel_metrics(
            tf.zeros([split.num_movies, 1]),
            tf.math.log1p(counts),
            labels,
            tf.zeros([n, 1]),
            k=k,
            num_classes=split.num_movies,
        )
        for name, values in scores.items():
            result[f"{name}@{k}"] = float(tf.reduce_mean(values))
    return result


def summarize(runs: dict, ks=KS) -> dict:
    summary = {}
    for name, seeds in runs.items():
        entry = {}
        keys = [f"{m}@{k}" for m in METRICS for k in ks]
        keys += ["cross_entropy"] if "cross_entropy" in seeds[0] else []
        keys += [k for k in ("padding_share_of_counts", "counts_tv_distance") if k in seeds[0]]
        for key in keys:
            values = np.array([r[key] for r in seeds])
            entry[key] = {
                "mean": float(values.mean()),
                "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            }
        if "epoch_seconds" in seeds[0]:
            # Epoch 1 includes tracing; the median of the later ones is the steady cost.
            later = [s for r in seeds for s in (r["epoch_seconds"][1:] or r["epoch_seconds"])]
            entry["epoch_seconds_median"] = float(np.median(later))
            entry["first_epoch_seconds_mean"] = float(
                np.mean([r["epoch_seconds"][0] for r in seeds])
            )
        summary[name] = entry
    return summary


def table(summary: dict, ks=KS) -> str:
    """A Markdown table of the summary (mean over seeds; ± std where more than one)."""
    cols = [f"{m}@{k}" for m in METRICS for k in ks]
    heads = [
        c.replace("precision", "P").replace("recall", "R").replace("ndcg", "nDCG") for c in cols
    ]
    lines = [
        "| model | " + " | ".join(heads) + " | test CE | padding in sampler counts | s/epoch |",
        "|---" + "|---:" * (len(cols) + 3) + "|",
    ]
    for name, entry in summary.items():
        cells = []
        for c in cols + ["cross_entropy"]:
            if c not in entry:
                cells.append("-")
                continue
            value = f"{entry[c]['mean']:.4f}"
            if entry[c]["std"] > 0:
                value += f" ± {entry[c]['std']:.4f}"
            cells.append(value)
        share = entry.get("padding_share_of_counts")
        cells.append(f"{100 * share['mean']:.1f}%" if share is not None else "-")
        seconds = entry.get("epoch_seconds_median")
        cells.append(f"{seconds:.2f}" if seconds is not None else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Config()
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--dim", type=int, default=defaults.dim)
    parser.add_argument("--hidden", type=int, default=defaults.hidden)
    parser.add_argument("--num-sampled", type=int, default=defaults.num_sampled)
    parser.add_argument("--sampler", default=defaults.sampler)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--max-true", type=int, default=8)
    parser.add_argument("--history", type=int, default=32)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default="docs/multilabel_movielens.json")
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 epochs (a smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs = 1, 2
    config = Config(
        args.epochs,
        args.batch_size,
        args.dim,
        args.hidden,
        args.num_sampled,
        args.sampler,
        args.learning_rate,
    )
    start = time.perf_counter()
    ratings = ml.load_ratings(args.data_dir)
    split = ex.build(
        ratings.user,
        ratings.movie,
        ratings.rating,
        ratings.timestamp,
        ratings.num_movies,
        max_true=args.max_true,
        history=args.history,
    )
    n_train, n_test = split.train.num_true, split.test.num_true
    print(
        f"[multilabel] {len(n_train)} train / {len(n_test)} test examples, "
        f"{ratings.num_movies} classes, labels per example: train mean {n_train.mean():.2f}, "
        f"test mean {n_test.mean():.2f} (1 to {args.max_true})",
        flush=True,
    )
    runs = {"popularity": [popularity(split)]}
    for name in args.models:
        runs[name] = []
        for seed in range(args.seeds):
            run = run_one(split, name, seed, config)
            runs[name].append(run)
            print(
                f"[multilabel] {name:15s} seed {seed}: P@10 {run['precision@10']:.4f} "
                f"R@10 {run['recall@10']:.4f} nDCG@10 {run['ndcg@10']:.4f} "
                f"({np.sum(run['epoch_seconds']):.1f} s)",
                flush=True,
            )
    summary = summarize(runs)
    report = {
        "protocol": {
            "data": f"MovieLens-100K from recbole {ml.RECBOLE_VERSION}",
            "task": "last <= history liked movies -> the next burst of liked movies",
            "liked": "rating >= 4",
            "burst_gap_seconds": 60,
            "max_true": args.max_true,
            "history": args.history,
            "split": "global time cut at the 0.8 quantile of liked-rating timestamps",
            "cutoff_timestamp": split.cutoff,
            "train_examples": len(n_train),
            "test_examples": len(n_test),
            "labels_per_example_histogram": {
                "train": np.bincount(n_train, minlength=args.max_true + 1)[1:].tolist(),
                "test": np.bincount(n_test, minlength=args.max_true + 1)[1:].tolist(),
            },
            "classes": ratings.num_movies,
            "config": dataclasses.asdict(config),
            "optimizer": f"Adam({args.learning_rate})",
            "seeds": args.seeds,
        },
        "summary": summary,
        "runs": runs,
        "machine": {
            "platform": platform.platform(),
            "cpus": len(os.sched_getaffinity(0)),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "tf_sampling": tf_sampling.__version__,
            "wall_seconds": time.perf_counter() - start,
        },
    }
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(table(summary))
    print(f"[multilabel] wrote {out} ({report['machine']['wall_seconds']:.0f} s)")
    return 0
