"""A TF 1.x training program running on TensorFlow 2 through ``tf_sampling.compat.v1``.

The graph code below is what a TF 1.x user wrote: placeholders, a
``tf.compat.v1.Session``, class weights from ``get_variable`` with a
``fixed_size_partitioner`` (a ``PartitionedVariable``), and
``tf.contrib.nn.rank_sampled_softmax_loss`` (TAPAS) for training with the full
softmax for evaluation. The only changes from the TF 1.x program are the
imports (``tf`` -> ``tf.compat.v1`` and ``tf.contrib.nn``/``tf.nn`` ->
``tf_sampling.compat.v1``).

The task is synthetic: 16-dimensional features of classes that come in tight
clusters, so that telling a class from its cluster neighbours is the hard
part. The program prints held-out recall@k of the full softmax before and after
training, and ``OK`` when training improved recall@1.

Run::

    python examples/tf1_migration.py            # ~1000 classes, a few seconds
    python examples/tf1_migration.py --tiny     # a smoke run (~1 s of training)
    python examples/tf1_migration.py --loss sampled   # plain sampled softmax
    python examples/tf1_migration.py --tf_sampler     # first pass: TF's own sampler

By default, as in TF 1.x, ``sampled_values=None`` makes the first TAPAS pass use a
learned-unigram sampler: here ``tf_sampling.ops.learned_unigram_candidate_sampler``,
this package's compiled op. ``--tf_sampler`` passes the candidates of TensorFlow's
``tf.compat.v1.nn.learned_unigram_candidate_sampler`` explicitly instead.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np
import tensorflow as tf

# Run from a source checkout without installing.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

# TF 1.x:  import tensorflow as tf
#          tf.contrib.nn.rank_sampled_softmax_loss(...), tf.nn.sampled_softmax_loss(...)
from tf_sampling.compat import v1 as sampling_v1  # noqa: E402

tf1 = tf.compat.v1

FEATURE_DIM = 16
HIDDEN_DIM = 32


def make_data(num_classes: int, num_examples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features ``[n, FEATURE_DIM]`` float32 and labels ``[n, 1]`` int64."""
    rng = np.random.default_rng(seed)
    num_clusters = max(num_classes // 20, 1)
    centers = rng.normal(size=(num_clusters, FEATURE_DIM))
    prototypes = centers[np.arange(num_classes) % num_clusters] + 0.35 * rng.normal(
        size=(num_classes, FEATURE_DIM)
    )
    # Same prototypes for every split: only the draws below depend on the split.
    draw = np.random.default_rng([seed, num_examples])
    labels = draw.integers(0, num_classes, size=num_examples)
    features = prototypes[labels] + 0.15 * draw.normal(size=(num_examples, FEATURE_DIM))
    return features.astype(np.float32), labels[:, None].astype(np.int64)


def build_graph(args: argparse.Namespace) -> dict:
    """The TF 1.x graph: model, sampled training loss, full-softmax evaluation."""
    features = tf1.placeholder(tf.float32, [None, FEATURE_DIM], name="features")
    labels = tf1.placeholder(tf.int64, [None, 1], name="labels")
    temperature = tf1.placeholder_with_default(1.0, [], name="resampling_temperature")

    hidden_w = tf1.get_variable("hidden_w", [FEATURE_DIM, HIDDEN_DIM])
    hidden_b = tf1.get_variable("hidden_b", [HIDDEN_DIM], initializer=tf1.zeros_initializer())
    hidden = tf.matmul(features, hidden_w) + hidden_b

    partitioner = tf1.fixed_size_partitioner(args.num_shards)
    softmax_w = tf1.get_variable(
        "softmax_w", [args.num_classes, HIDDEN_DIM], partitioner=partitioner
    )
    softmax_b = tf1.get_variable(
        "softmax_b",
        [args.num_classes],
        partitioner=partitioner,
        initializer=tf1.zeros_initializer(),
    )

    first_pass = None  # TF 1.x default: a learned-unigram sampler, unique=True
    if args.tf_sampler:
        first_pass = tf1.nn.learned_unigram_candidate_sampler(
            true_classes=labels,
            num_true=1,
            num_sampled=args.num_sampled,
            unique=True,
            range_max=args.num_classes,
            seed=args.seed,
        )
    if args.loss == "rank":
        loss = sampling_v1.contrib.nn.rank_sampled_softmax_loss(
            weights=softmax_w,
            biases=softmax_b,
            labels=labels,
            inputs=hidden,
            num_sampled=args.num_sampled,
            num_resampled=args.num_resampled,
            num_classes=args.num_classes,
            num_true=1,
            sampled_values=first_pass,
            resampling_temperature=temperature,
            remove_accidental_hits=True,
            # "div": the full-softmax evaluation below concatenates the shards
            # in order, so class i must live in row i of the concatenation.
            partition_strategy="div",
        )
    else:
        plain_pass = tf1.nn.learned_unigram_candidate_sampler(
            true_classes=labels,
            num_true=1,
            num_sampled=args.num_resampled,
            unique=True,
            range_max=args.num_classes,
            seed=args.seed,
        )
        loss = sampling_v1.nn.sampled_softmax_loss(
            weights=softmax_w,
            biases=softmax_b,
            labels=labels,
            inputs=hidden,
            num_sampled=args.num_resampled,
            num_classes=args.num_classes,
            sampled_values=plain_pass,
            partition_strategy="div",
        )
    train_op = tf1.train.AdamOptimizer(args.learning_rate).minimize(tf.reduce_mean(loss))

    # Evaluation: the exact softmax over all classes (the PartitionedVariable
    # converts to the concatenation of its shards).
    logits = tf.nn.bias_add(tf.matmul(hidden, softmax_w, transpose_b=True), softmax_b)
    true_logit = tf.gather(logits, labels[:, 0], batch_dims=1)
    rank = tf.reduce_sum(tf.cast(logits > true_logit[:, None], tf.int32), axis=1)
    return dict(
        features=features,
        labels=labels,
        temperature=temperature,
        loss=loss,
        train_op=train_op,
        rank=rank,
        init=tf1.global_variables_initializer(),
    )


def recall_at(ranks: np.ndarray) -> dict[int, float]:
    return {k: float(np.mean(ranks < k)) for k in (1, 5, 10)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="small, short smoke run")
    parser.add_argument("--loss", choices=("rank", "sampled"), default="rank")
    parser.add_argument(
        "--tf_sampler",
        action="store_true",
        help="first TAPAS pass from TensorFlow's learned-unigram sampler",
    )
    parser.add_argument("--num_classes", type=int, default=1000)
    parser.add_argument("--num_shards", type=int, default=4)
    parser.add_argument("--num_sampled", type=int, default=200)
    parser.add_argument("--num_resampled", type=int, default=8)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--learning_rate", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.tiny:
        args.num_classes, args.num_sampled, args.steps = 200, 60, 150

    x_train, y_train = make_data(args.num_classes, 20000, args.seed)
    x_test, y_test = make_data(args.num_classes, 2000, args.seed)
    graph = tf1.Graph()
    with graph.as_default():
        tf1.set_random_seed(args.seed)
        g = build_graph(args)
    rng = np.random.default_rng(args.seed)
    with tf1.Session(graph=graph) as sess:
        sess.run(g["init"])
        test_feed = {g["features"]: x_test, g["labels"]: y_test}
        before = recall_at(sess.run(g["rank"], test_feed))
        for step in range(args.steps):
            idx = rng.integers(0, len(x_train), args.batch_size)
            # Anneal the TAPAS temperature from 2 to 0.5 (ignored by --loss sampled).
            temperature = 2.0 * 0.25 ** (step / max(args.steps - 1, 1))
            sess.run(
                g["train_op"],
                {
                    g["features"]: x_train[idx],
                    g["labels"]: y_train[idx],
                    g["temperature"]: temperature,
                },
            )
        after = recall_at(sess.run(g["rank"], test_feed))
    fmt = " ".join(f"recall@{k}={v:.3f}" for k, v in after.items())
    sampler = "tf" if args.tf_sampler else "tf_sampling"
    print(
        f"loss={args.loss} classes={args.num_classes} shards={args.num_shards} "
        f"steps={args.steps} first_pass_sampler={sampler}"
    )
    print("before: " + " ".join(f"recall@{k}={v:.3f}" for k, v in before.items()))
    print("after:  " + fmt)
    improved = after[1] > before[1]
    print("OK" if improved else "NOT IMPROVED")
    return 0 if improved else 1


if __name__ == "__main__":
    sys.exit(main())
