"""Sampler study: which candidate sampler, how many samples, sampled softmax or NCE, TAPAS or not.

One command trains the same small next-word model on Penn Treebank once per
(loss, sampler, ``num_sampled``) and scores every run with the **exact** full
softmax on held-out text (PTB's test split)::

    PYTHONPATH=. .venv/bin/python bench/sampler_study.py            # the study (~25 min, 2 CPUs)
    PYTHONPATH=. .venv/bin/python bench/sampler_study.py --quick    # a ~1 min smoke run

The model is a feed-forward n-gram language model (Bengio et al. 2003): the
previous ``--context`` words are embedded, concatenated, passed through one
tanh layer, and the head (``tf_sampling.layers.SampledSoftmax``, ``NCE`` or
``RankSampledSoftmax``) predicts the next word over the 10,000-word vocabulary.
It is cheap enough that ~45 runs fit in half an hour on two CPU cores, and its
head is the same as a large model's.

Every run has the same initial weights (``keras.utils.set_random_seed``), the
same training examples in the same order, the same number of steps and the same
sampler seed; only the loss, the sampler and ``num_sampled`` change. Samplers:

* ``log_uniform``: TensorFlow's default (Zipfian over ids sorted by frequency,
  which PTB's ids are);
* ``uniform``;
* ``unigram``: ``fixed_unigram`` with the training split's counted frequencies
  (distortion 1: the counted distribution itself);
* ``learned_unigram``: this package's op (``LearnedUnigramSampler``), which
  learns the counts from the labels it sees while training.

A full-softmax run (``losses.FullSoftmaxLoss``) of the same model is the
reference. The TAPAS part trains ``RankSampledSoftmax`` (first pass ``M``
learned-unigram candidates, keeps the best ``m``) and compares it with the
plain sampled softmax with the same sampler at ``m`` (the same number of
candidates in the loss) and at ``M`` (the same number drawn) on recall@k and
MRR of the true next word among all 10,000 classes.

Writes ``<output-dir>/results.json`` and ``<output-dir>/sampler_study.png``
(default ``outputs/sampler_study/``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_sampling  # noqa: E402

SAMPLERS = ("log_uniform", "uniform", "unigram", "learned_unigram")
LOSSES = ("sampled_softmax", "nce")
RECALL_KS = (1, 5, 10, 50)


@dataclasses.dataclass
class StudyConfig:
    """Everything that defines the study; the same for every run of it.

    Attributes:
      num_sampled: ``num_sampled`` values of the sampler grid.
      samplers: sampler names (see ``SAMPLERS``).
      losses: ``"sampled_softmax"`` and/or ``"nce"``.
      tapas: ``(M, m)`` pairs: TAPAS draws ``M`` candidates and keeps ``m``.
      train_tokens: training examples (next words) per run, from the start of
        the training split (None: all of it).
      eval_tokens: held-out examples scored (None: the whole test split).
      context: previous words the model sees.
      embedding_dim, hidden_dim: model sizes (``hidden_dim`` is the head's dim).
      batch_size: examples per step.
      learning_rate: Adam's learning rate.
      seed: seed of the weights, the data order and the samplers.
      full_softmax: also train the exact full-softmax reference.
    """

    num_sampled: tuple[int, ...] = (64, 256, 1024, 4096, 8192)
    samplers: tuple[str, ...] = SAMPLERS
    losses: tuple[str, ...] = LOSSES
    tapas: tuple[tuple[int, int], ...] = ((1024, 64), (4096, 256))
    train_tokens: int | None = 200_000
    eval_tokens: int | None = None
    context: int = 3
    embedding_dim: int = 64
    hidden_dim: int = 128
    batch_size: int = 256
    learning_rate: float = 2e-3
    seed: int = 1
    full_softmax: bool = True


QUICK = dict(
    num_sampled=(64, 1024),
    tapas=((1024, 64),),
    train_tokens=10_000,
    eval_tokens=5_000,
)


def ngram_examples(tokens: np.ndarray, context: int) -> tuple[np.ndarray, np.ndarray]:
    """Next-word examples from a token stream.

    Args:
      tokens: int ``[n]`` token ids.
      context: int >= 1, previous tokens per example.

    Returns:
      ``(x, y)``: int32 ``[n - context, context]`` previous words and int32
      ``[n - context]`` next words (``x[i] = tokens[i:i+context]``,
      ``y[i] = tokens[i+context]``).
    """
    tokens = np.asarray(tokens, dtype=np.int32)
    if context < 1 or tokens.shape[0] <= context:
        raise ValueError(
            f"`context` must be >= 1 and below the number of tokens ({tokens.shape[0]}), "
            f"got context={context}."
        )
    windows = np.lib.stride_tricks.sliding_window_view(tokens, context + 1)
    return np.ascontiguousarray(windows[:, :context]), np.ascontiguousarray(windows[:, context])


@dataclasses.dataclass
class StudyData:
    """Training and held-out examples, shared by every run.

    Attributes:
      num_classes: vocabulary size.
      x_train, y_train: int32 ``[n, context]`` / ``[n]``, already in the
        (seeded, shuffled) order every run trains in.
      x_eval, y_eval: held-out examples, in text order.
      unigram_counts: int64 ``[num_classes]`` counts of the whole training
        split (what the ``unigram`` sampler uses).
      source: short description of where the examples come from.
    """

    num_classes: int
    x_train: np.ndarray
    y_train: np.ndarray
    x_eval: np.ndarray
    y_eval: np.ndarray
    unigram_counts: np.ndarray
    source: str


def prepare_data(
    train: np.ndarray,
    held_out: np.ndarray,
    num_classes: int,
    config: StudyConfig,
    source: str,
) -> StudyData:
    """Builds the examples every run uses from token streams.

    Args:
      train: int ``[n_train]`` training token ids in ``[0, num_classes)``.
      held_out: int ``[n_eval]`` held-out token ids.
      num_classes: int, vocabulary size.
      config: the study's configuration (context, token budgets, seed).
      source: description stored in the results.

    Returns:
      StudyData.
    """
    counts = np.bincount(np.asarray(train), minlength=num_classes).astype(np.int64)
    x_train, y_train = ngram_examples(train, config.context)
    order = np.random.default_rng(config.seed).permutation(len(y_train))
    if config.train_tokens is not None:
        order = order[: config.train_tokens]
    x_eval, y_eval = ngram_examples(held_out, config.context)
    if config.eval_tokens is not None:
        x_eval, y_eval = x_eval[: config.eval_tokens], y_eval[: config.eval_tokens]
    return StudyData(
        num_classes=int(num_classes),
        x_train=x_train[order],
        y_train=y_train[order],
        x_eval=x_eval,
        y_eval=y_eval,
        unigram_counts=counts,
        source=source,
    )


def load_ptb_data(config: StudyConfig) -> StudyData:
    """PTB (``demo.language_model.data.load_ptb``): train on the train split, score on test."""
    # The PTB reader is the demo's, in the checkout (demo/ is not part of the wheel).
    root = str(pathlib.Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    from demo.language_model.data import load_ptb  # noqa: PLC0415 - only the PTB study needs it

    corpus = load_ptb()
    return prepare_data(corpus.train, corpus.test, corpus.vocab_size, config, "PTB train -> test")


def sampler_spec(name: str, data: StudyData):
    """The ``sampler`` argument of a head for a study sampler name."""
    if name == "unigram":
        # Every class needs a positive weight: a true class of probability 0
        # would get log Q = -inf in the loss. PTB's training split contains
        # every word of its vocabulary, so this +0 changes nothing there.
        unigrams = np.maximum(data.unigram_counts, 1).astype(np.float64)
        return {"name": "fixed_unigram", "unigrams": unigrams.tolist(), "distortion": 1.0}
    if name not in SAMPLERS:
        raise ValueError(
            f"`sampler` must be one of {SAMPLERS + ('unigram',)}, got sampler={name!r}."
        )
    return name


def build_model(config: StudyConfig, num_classes: int, head: keras.layers.Layer):
    """The n-gram model ending in ``head``, and the model of its hidden features.

    Returns:
      ``(model, features)``: ``model`` maps int ``[batch, context]`` to the
      head's output; ``features`` maps it to the ``[batch, hidden_dim]``
      activations the head consumes.
    """
    inputs = keras.Input((config.context,), dtype="int32")
    embedded = keras.layers.Embedding(num_classes, config.embedding_dim)(inputs)
    hidden = keras.layers.Dense(config.hidden_dim, activation="tanh")(
        keras.layers.Flatten()(embedded)
    )
    return keras.Model(inputs, head(hidden)), keras.Model(inputs, hidden)


def make_head(kind: str, num_classes: int, num_sampled: int, sampler, seed: int, resampled=None):
    """The output layer and its loss for one run.

    Args:
      kind: ``"sampled_softmax"``, ``"nce"``, ``"tapas"`` or ``"full_softmax"``.
      num_classes: int.
      num_sampled: int, candidates drawn per step (TAPAS: first pass).
      sampler: the layer's ``sampler`` argument.
      seed: sampler seed.
      resampled: TAPAS ``num_resampled``.

    Returns:
      ``(layer, loss)``.
    """
    common = dict(num_classes=num_classes, num_sampled=num_sampled, sampler=sampler, seed=seed)
    if kind == "sampled_softmax":
        return tf_sampling.layers.SampledSoftmax(**common), tf_sampling.losses.SampledSoftmaxLoss()
    if kind == "full_softmax":
        return tf_sampling.layers.SampledSoftmax(**common), tf_sampling.losses.FullSoftmaxLoss()
    if kind == "nce":
        return tf_sampling.layers.NCE(**common), tf_sampling.losses.NCELoss()
    if kind == "tapas":
        layer = tf_sampling.layers.RankSampledSoftmax(num_resampled=resampled, **common)
        return layer, tf_sampling.losses.RankSampledSoftmaxLoss()
    raise ValueError(
        "`kind` must be one of 'sampled_softmax', 'nce', 'tapas', 'full_softmax', "
        f"got kind={kind!r}."
    )


def exact_scores(features: keras.Model, head, x, y, batch_size: int = 2048) -> dict:
    """Exact full-softmax cross-entropy, perplexity, recall@k and MRR on ``(x, y)``.

    Every example is scored against all classes: ``logits = head.logits(h)``,
    the cross-entropy is TensorFlow's ``sparse_softmax_cross_entropy_with_logits``
    and the rank of the true class is the number of classes with a strictly
    higher logit (plus one). NCE heads are scored the same way: their logits
    normalised by a softmax.

    Returns:
      dict with ``cross_entropy`` (nats/word), ``perplexity``, ``mrr`` and
      ``recall@k`` for k in ``RECALL_KS``.
    """

    @tf.function
    def score(batch_x, batch_y):
        logits = head.logits(features(batch_x, training=False))
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=batch_y, logits=logits)
        true_logit = tf.gather(logits, batch_y[:, None], batch_dims=1)
        above = tf.reduce_sum(tf.cast(logits > true_logit, tf.int64), axis=1)
        return ce, above

    n = len(y)
    batch_size = min(batch_size, n)
    # Pad to whole batches (one trace); the padding rows are cut off below.
    padded = -(-n // batch_size) * batch_size
    x = np.concatenate([x, np.zeros((padded - n, *x.shape[1:]), x.dtype)])
    y = np.concatenate([y, np.zeros(padded - n, y.dtype)]).astype(np.int64)
    ce_parts, rank_parts = [], []
    for start in range(0, padded, batch_size):
        ce, above = score(
            tf.constant(x[start : start + batch_size]), tf.constant(y[start : start + batch_size])
        )
        ce_parts.append(ce.numpy().astype(np.float64))
        rank_parts.append(above.numpy() + 1)
    ce = np.concatenate(ce_parts)[:n]
    rank = np.concatenate(rank_parts)[:n]
    mean_ce = float(ce.mean())
    out = {"cross_entropy": mean_ce, "perplexity": float(np.exp(mean_ce))}
    out["mrr"] = float(np.mean(1.0 / rank))
    for k in RECALL_KS:
        out[f"recall@{k}"] = float(np.mean(rank <= k))
    return out


def train_run(
    config: StudyConfig,
    data: StudyData,
    kind: str,
    sampler_name: str,
    num_sampled: int,
    resampled: int | None = None,
) -> dict:
    """Trains one model for one pass over ``data.x_train`` and scores it exactly.

    Returns:
      dict: the run's settings, ``train_s``, ``steps``, the final training
      loss, the ``exact_scores`` on the held-out examples, and for the
      learned-unigram sampler ``learned_counts_total`` (the sum of its counts).
    """
    keras.backend.clear_session()
    keras.utils.set_random_seed(config.seed)
    head, loss = make_head(
        kind,
        data.num_classes,
        num_sampled,
        sampler_spec(sampler_name, data),
        config.seed,
        resampled,
    )
    model, features = build_model(config, data.num_classes, head)
    model.compile(keras.optimizers.Adam(config.learning_rate), loss=loss)
    start = time.perf_counter()
    history = model.fit(
        data.x_train,
        data.y_train,
        batch_size=config.batch_size,
        epochs=1,
        shuffle=False,
        verbose=0,
    )
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    scores = exact_scores(features, head, data.x_eval, data.y_eval)
    result = {
        "loss": kind,
        "sampler": sampler_name,
        "num_sampled": int(num_sampled),
        "num_resampled": None if resampled is None else int(resampled),
        "steps": int(-(-len(data.y_train) // config.batch_size)),
        "train_s": round(train_s, 2),
        "eval_s": round(time.perf_counter() - start, 2),
        "final_train_loss": float(history.history["loss"][-1]),
        **scores,
    }
    counts = getattr(head.sampler, "counts", None)
    if callable(counts):
        learned = counts().numpy()
        result["learned_counts_total"] = int(learned.sum())
        result["learned_counts_match_labels"] = bool(
            np.array_equal(learned, np.bincount(data.y_train, minlength=data.num_classes))
        )
    return result


def markov_tokens(num_classes: int, n: int, seed: int, table_seed: int = 1234) -> np.ndarray:
    """A synthetic corpus with a known structure, for tests and ``--nce-check``.

    A first-order Markov chain: with probability 0.7 the next word is one of
    three fixed successors of the current one (drawn once from ``table_seed``,
    so every split shares them), otherwise a Zipf(1.3) draw, so low ids are
    the frequent ones as the log-uniform sampler assumes.

    Returns:
      int64 ``[n]`` token ids in ``[0, num_classes)``.
    """
    successors = np.random.default_rng(table_seed).integers(0, num_classes, size=(num_classes, 3))
    rng = np.random.default_rng(seed)
    tokens = np.empty(n, np.int64)
    tokens[0] = 0
    for i in range(1, n):
        if rng.random() < 0.7:
            tokens[i] = successors[tokens[i - 1], rng.integers(3)]
        else:
            tokens[i] = min(int(rng.zipf(1.3)) - 1, num_classes - 1)
    return tokens


def nce_check(log=print) -> dict:
    """NCE with TensorFlow's ``tf.nn.nce_loss`` against ``tf_sampling.nn.nce_loss``.

    The same tiny model (120 classes, 1-word context, 60 steps of 100
    examples of ``markov_tokens``) is trained in a custom loop with each loss
    on the same sampled values (8 log-uniform candidates per step, seeded),
    then scored by ``exact_scores``. Tells whether a poor NCE perplexity comes
    from NCE or from this package.

    Returns:
      dict: held-out perplexity per variant (``tf``, ``tf_sampling``,
      ``tf_sampling_remove_accidental_hits``, ``tf_non_unique``), and that of
      a uniform guess (the number of classes).
    """
    num_classes, num_sampled = 120, 8
    config = StudyConfig(
        train_tokens=6_000,
        eval_tokens=1_000,
        context=1,
        embedding_dim=16,
        hidden_dim=16,
        batch_size=100,
        learning_rate=1e-2,
    )
    data = prepare_data(
        markov_tokens(num_classes, 7_000, seed=0),
        markov_tokens(num_classes, 1_200, seed=1),
        num_classes,
        config,
        "synthetic Markov chain",
    )
    out = {"uniform_guess": float(num_classes)}
    for variant in ("tf", "tf_sampling", "tf_sampling_remove_accidental_hits", "tf_non_unique"):
        out[variant] = _nce_variant_perplexity(variant, config, data, num_sampled)
        log(f"NCE check: {variant:36s} held-out perplexity {out[variant]:10.3f}")
    return out


def _nce_variant_perplexity(variant: str, config: StudyConfig, data: StudyData, num_sampled: int):
    """Trains ``nce_check``'s model with one NCE variant; its exact held-out perplexity."""
    num_classes = data.num_classes
    keras.utils.set_random_seed(config.seed)
    head, _ = make_head("nce", num_classes, num_sampled, "log_uniform", config.seed)
    _, features = build_model(config, num_classes, head)
    optimizer = keras.optimizers.Adam(config.learning_rate)
    variables = [*features.trainable_variables, head.kernel, head.bias]

    @tf.function
    def step(x, y):
        labels = tf.cast(y[:, None], tf.int64)
        sampled = tf.random.log_uniform_candidate_sampler(
            labels, 1, num_sampled, variant != "tf_non_unique", num_classes, seed=7
        )
        with tf.GradientTape() as tape:
            hidden = features(x, training=True)
            args = (head.kernel, head.bias, labels, hidden, num_sampled, num_classes)
            if variant.startswith("tf_sampling"):
                losses = tf_sampling.nn.nce_loss(
                    *args, sampled_values=sampled, remove_accidental_hits=variant.endswith("hits")
                )
            else:
                losses = tf.nn.nce_loss(*args, sampled_values=sampled)
            loss = tf.reduce_mean(losses)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))

    for start in range(0, len(data.y_train), config.batch_size):
        stop = start + config.batch_size
        step(data.x_train[start:stop], data.y_train[start:stop])
    return exact_scores(features, head, data.x_eval, data.y_eval)["perplexity"]


def fewer_samples_ratios(runs: list[dict], loss: str, reference: str = "uniform") -> dict:
    """For each sampler: how many fewer samples it needs to match ``reference``.

    For every grid value ``n`` of the reference sampler, the smallest grid
    value ``n'`` at which the sampler's perplexity is at most the reference's
    at ``n``; the ratio ``n / n'`` (None when no grid value reaches it). The
    grid limits the resolution to its steps.
    """
    table = {}
    for run in runs:
        if run["loss"] == loss:
            table.setdefault(run["sampler"], {})[run["num_sampled"]] = run["perplexity"]
    ref = table.get(reference, {})
    out = {}
    for name, by_n in table.items():
        if name == reference:
            continue
        ratios = {}
        for n, ref_ppl in sorted(ref.items()):
            reached = [m for m, ppl in sorted(by_n.items()) if ppl <= ref_ppl]
            ratios[str(n)] = None if not reached else n / reached[0]
        out[name] = ratios
    return out


def run_study(config: StudyConfig, data: StudyData, log=print) -> dict:
    """Runs every training of the study and returns the results (what the JSON holds)."""
    results = {
        "config": dataclasses.asdict(config),
        "data": {
            "source": data.source,
            "num_classes": data.num_classes,
            "train_examples": int(len(data.y_train)),
            "eval_examples": int(len(data.y_eval)),
        },
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "runs": [],
    }
    plan = []
    if config.full_softmax:
        plan.append(("full_softmax", "log_uniform", 1, None))
    for loss in config.losses:
        for sampler in config.samplers:
            for n in config.num_sampled:
                plan.append((loss, sampler, n, None))
    for big, small in config.tapas:
        plan.append(("tapas", "learned_unigram", big, small))
    for n in sorted({n for pair in config.tapas for n in pair} - set(config.num_sampled)):
        # The plain sampled-softmax runs TAPAS is compared with.
        plan.append(("sampled_softmax", "learned_unigram", n, None))
    start = time.perf_counter()
    for i, (loss, sampler, n, resampled) in enumerate(plan):
        if n >= data.num_classes and loss != "full_softmax":
            log(f"[{i + 1}/{len(plan)}] skip {loss} {sampler} {n}: not below num_classes")
            continue
        run = train_run(config, data, loss, sampler, n, resampled)
        results["runs"].append(run)
        log(
            f"[{i + 1}/{len(plan)}] {loss:15s} {sampler:15s} n={n:5d}"
            + (f" m={resampled:4d}" if resampled else "       ")
            + f"  ppl {run['perplexity']:8.2f}  MRR {run['mrr']:.4f}  R@10 {run['recall@10']:.4f}"
            + f"  train {run['train_s']:6.1f}s  ({time.perf_counter() - start:6.0f}s total)"
        )
    results["total_s"] = round(time.perf_counter() - start, 1)
    results["fewer_samples_than_uniform"] = {
        loss: fewer_samples_ratios(results["runs"], loss) for loss in config.losses
    }
    results["tapas_comparison"] = tapas_comparison(results["runs"], config)
    return results


def tapas_comparison(runs: list[dict], config: StudyConfig) -> list[dict]:
    """TAPAS ``(M, m)`` beside plain sampled softmax at ``m`` and at ``M`` (learned unigram)."""
    keys = ("perplexity", "mrr", *(f"recall@{k}" for k in RECALL_KS))

    def find(loss, n, resampled=None):
        for run in runs:
            if (
                run["loss"] == loss
                and run["sampler"] == "learned_unigram"
                and run["num_sampled"] == n
                and run["num_resampled"] == resampled
            ):
                return {k: run[k] for k in keys}
        return None

    return [
        {
            "num_sampled": big,
            "num_resampled": small,
            "tapas": find("tapas", big, small),
            "sampled_softmax_same_kept": find("sampled_softmax", small),
            "sampled_softmax_same_drawn": find("sampled_softmax", big),
        }
        for big, small in config.tapas
    ]


def plot(results: dict, path: pathlib.Path) -> None:
    """Perplexity against ``num_sampled`` (one panel per loss) and the TAPAS comparison."""
    import matplotlib  # noqa: PLC0415 - plotting only

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    runs = results["runs"]
    losses = results["config"]["losses"]
    fig, axes = plt.subplots(1, len(losses) + 1, figsize=(5.2 * (len(losses) + 1), 4.4))
    full = [r["perplexity"] for r in runs if r["loss"] == "full_softmax"]
    for ax, loss in zip(axes, losses, strict=False):
        for sampler in results["config"]["samplers"]:
            points = sorted(
                (r["num_sampled"], r["perplexity"])
                for r in runs
                if r["loss"] == loss and r["sampler"] == sampler and r["num_resampled"] is None
            )
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=sampler)
        if full:
            ax.axhline(full[0], color="k", linestyle="--", label="full softmax")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("num_sampled")
        ax.set_ylabel("exact test perplexity")
        ax.set_title(loss.replace("_", " "))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[-1]
    rows = [row for row in results["tapas_comparison"] if row["tapas"]]
    width = 0.27
    labels = []
    for j, row in enumerate(rows):
        bars = [
            (f"SSM {row['num_resampled']}", row["sampled_softmax_same_kept"]),
            (f"TAPAS {row['num_sampled']}->{row['num_resampled']}", row["tapas"]),
            (f"SSM {row['num_sampled']}", row["sampled_softmax_same_drawn"]),
        ]
        for b, (name, values) in enumerate(bars):
            if values:
                x = j + (b - 1) * width
                ax.bar(x, values["mrr"], width, color=f"C{b}")
                ax.text(x, values["mrr"], name, rotation=90, ha="center", va="bottom", fontsize=7)
        labels.append(f"M={row['num_sampled']}, m={row['num_resampled']}")
    ax.set_xticks(range(len(rows)), labels)
    ax.set_ylabel("MRR of the true next word (exact)")
    ax.set_title("TAPAS vs sampled softmax (learned unigram)")
    tops = [v["mrr"] for row in rows for v in row.values() if isinstance(v, dict) and v]
    ax.set_ylim(0, 1.5 * max(tops, default=1.0))  # room for the bar labels
    fig.suptitle(
        f"{results['data']['source']}: {results['data']['train_examples']:,} training examples, "
        f"1 pass, same seed and order"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_table(results: dict) -> None:
    """Prints perplexity per (loss, sampler) against num_sampled, then the TAPAS rows."""
    runs = results["runs"]
    grid = results["config"]["num_sampled"]
    print("\nexact test perplexity")
    print(f"{'loss':16s}{'sampler':16s}" + "".join(f"{n:>11d}" for n in grid))
    for loss in results["config"]["losses"]:
        for sampler in results["config"]["samplers"]:
            cells = []
            for n in grid:
                found = [
                    r["perplexity"]
                    for r in runs
                    if (r["loss"], r["sampler"], r["num_sampled"], r["num_resampled"])
                    == (loss, sampler, n, None)
                ]
                cells.append(f"{found[0]:11.1f}" if found else f"{'-':>11s}")
            print(f"{loss:16s}{sampler:16s}" + "".join(cells))
    for r in runs:
        if r["loss"] == "full_softmax":
            print(f"{'full softmax':32s}{r['perplexity']:11.1f}")
    print("\nTAPAS vs sampled softmax (learned unigram), exact over all classes")
    print(f"{'run':24s}{'ppl':>9s}{'MRR':>8s}" + "".join(f"{'R@' + str(k):>8s}" for k in RECALL_KS))
    for row in results["tapas_comparison"]:
        for name, values in (
            (f"SSM {row['num_resampled']}", row["sampled_softmax_same_kept"]),
            (f"TAPAS {row['num_sampled']}->{row['num_resampled']}", row["tapas"]),
            (f"SSM {row['num_sampled']}", row["sampled_softmax_same_drawn"]),
        ):
            if values:
                print(
                    f"{name:24s}{values['perplexity']:9.1f}{values['mrr']:8.4f}"
                    + "".join(f"{values[f'recall@{k}']:8.4f}" for k in RECALL_KS)
                )


def _int_list(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v)


def _pairs(text: str) -> tuple[tuple[int, int], ...]:
    pairs = []
    for item in text.split(","):
        if item:
            big, small = item.split(":")
            pairs.append((int(big), int(small)))
    return tuple(pairs)


def parse_args(argv=None) -> tuple[StudyConfig, argparse.Namespace]:
    defaults = StudyConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 2 grid values, 10k training / 5k held-out examples",
    )
    parser.add_argument(
        "--num-sampled", type=_int_list, help="comma-separated grid (default 64,256,1024,4096,8192)"
    )
    parser.add_argument(
        "--samplers", type=lambda s: tuple(s.split(",")), help=f"subset of {','.join(SAMPLERS)}"
    )
    parser.add_argument(
        "--losses", type=lambda s: tuple(s.split(",")), help="subset of sampled_softmax,nce"
    )
    parser.add_argument("--tapas", type=_pairs, help="TAPAS M:m pairs, e.g. 1024:64,4096:256")
    parser.add_argument(
        "--train-tokens",
        type=int,
        help=f"training examples per run (default {defaults.train_tokens:,})",
    )
    parser.add_argument(
        "--eval-tokens", type=int, help="held-out examples scored (default: all of PTB test)"
    )
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--context", type=int)
    parser.add_argument("--embedding-dim", type=int)
    parser.add_argument("--hidden-dim", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--no-full-softmax", action="store_true", help="skip the full-softmax reference run"
    )
    parser.add_argument(
        "--nce-check",
        action="store_true",
        help="only compare TensorFlow's nce_loss with this package's on a tiny synthetic task",
    )
    parser.add_argument("--output-dir", default="outputs/sampler_study")
    args = parser.parse_args(argv)
    options = dict(QUICK) if args.quick else {}
    for field in dataclasses.fields(StudyConfig):
        value = getattr(args, field.name, None)
        if value is not None:
            options[field.name] = value
    if args.no_full_softmax:
        options["full_softmax"] = False
    config = StudyConfig(**options)
    for name in config.samplers:
        if name not in SAMPLERS:
            parser.error(f"`--samplers` must be a subset of {SAMPLERS}, got {name!r}")
    for name in config.losses:
        if name not in LOSSES:
            parser.error(f"`--losses` must be a subset of {LOSSES}, got {name!r}")
    for big, small in config.tapas:
        if not 1 <= small < big:
            parser.error(f"`--tapas` pairs M:m need 1 <= m < M, got {big}:{small}")
    return config, args


def main(argv=None) -> int:
    config, args = parse_args(argv)
    if args.nce_check:
        nce_check()
        return 0
    out = pathlib.Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = load_ptb_data(config)
    print(
        f"{data.source}: {len(data.y_train):,} training / {len(data.y_eval):,} held-out examples, "
        f"{data.num_classes:,} classes; TensorFlow {tf.__version__}, {os.cpu_count()} CPUs",
        flush=True,
    )
    results = run_study(config, data, log=lambda line: print(line, flush=True))
    results["command"] = " ".join(
        ["bench/sampler_study.py", *(argv if argv is not None else sys.argv[1:])]
    )
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    plot(results, out / "sampler_study.png")
    print_table(results)
    print(
        f"\nwrote {out / 'results.json'} and {out / 'sampler_study.png'} ({results['total_s']:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
