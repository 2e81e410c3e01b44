"""Convergence of the PTB demo's default model with Keras' Adam and with LazyAdam variants.

The model is the demo's default, built by the demos' one model builder
(``demo.language_model.model.build_network``, head ``"sampled"``):
``Embedding(10000, 256)``, one ``LSTM(256)``, a ``tf_sampling.layers.SampledSoftmax``
head with 512 log-uniform samples, ``SampledSoftmaxLoss``, learning rate 4e-3, ``clipnorm``
5, batch 128 windows of 35 tokens (``lm_windows``, shuffled), Keras' default
initializers. Every optimizer starts from the same seed (so the same initial
weights and batch order) and only the optimizer differs:

* ``adam``: ``keras.optimizers.Adam`` (densifies the sparse gradients; its
  ``v`` takes the sum of the squared slices of a repeated row);
* ``adam_summed``: Keras' Adam on gradients whose repeated rows are summed
  first (Adam of the dense gradient), a diagnostic;
* ``lazy_adam``: ``LazyAdam(second_moment="summed")`` (TF-Addons' lazy updates,
  repeated rows summed; LazyAdam's default until issue 22);
* ``lazy_adam_catch_up``: the same with ``catch_up=True``, flushed before every
  evaluation;
* ``lazy_adam_per_lookup``: ``LazyAdam(second_moment="per_lookup")``;
* ``lazy_adam_per_lookup_catch_up``: both options.

Perplexities are exact: ``exp`` of the mean cross-entropy of the full softmax
over all 10,000 words, computed here with ``tf.nn.sparse_softmax_cross_entropy_with_logits``
on the hidden states and the head's table. Results go to a JSON file.

Usage:
  python bench/bench_lazy_convergence.py --epochs 4 --out /tmp/conv.json
  python bench/bench_lazy_convergence.py --epochs 1 --max-train-tokens 300000 \
      --optimizers adam lazy_adam_catch_up
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from demo.language_model import data  # noqa: E402
from demo.language_model import model as lm  # noqa: E402
from tf_sampling import optimizers  # noqa: E402

VARIANTS = (
    "adam",
    "adam_summed",
    "lazy_adam",
    "lazy_adam_catch_up",
    "lazy_adam_per_lookup",
    "lazy_adam_per_lookup_catch_up",
)


class SummedAdam(keras.optimizers.Adam):
    """Diagnostic: Keras' Adam fed gradients whose duplicate indices are summed first.

    That is Adam of the dense gradient (TF1's sparse Adam); Keras 3's own Adam
    squares the slices before summing them, i.e. ``v`` gets ``sum_i g_i**2``.
    """

    def apply(self, grads, trainable_variables=None):
        grads = [
            optimizers.sum_duplicates(g) if isinstance(g, tf.IndexedSlices) else g for g in grads
        ]
        return super().apply(grads, trainable_variables)


def build_model(vocab_size: int, args, seed: int) -> keras.Model:
    """The demo's default sampled-softmax language model (uncompiled)."""
    config = lm.ModelConfig(
        vocab_size=vocab_size,
        embedding_dim=args.embedding_dim,
        hidden_dim=args.hidden_dim,
        num_sampled=args.num_sampled,
        sampler="log_uniform",
    )
    return lm.build_network(config, "sampled", seed=seed)


def make_optimizer(variant: str, args) -> keras.optimizers.Optimizer:
    kwargs = {"learning_rate": args.learning_rate, "clipnorm": args.clipnorm}
    if variant == "adam":
        return keras.optimizers.Adam(**kwargs)
    if variant == "adam_summed":
        return SummedAdam(**kwargs)
    # Named explicitly: "lazy_adam" and "lazy_adam_catch_up" are the "summed" runs.
    kwargs["second_moment"] = "per_lookup" if "per_lookup" in variant else "summed"
    return optimizers.LazyAdam(catch_up=variant.endswith("catch_up"), **kwargs)


def exact_perplexity(model: keras.Model, inputs: np.ndarray, targets: np.ndarray) -> float:
    """exp(mean full-softmax cross-entropy) over every target, with TF's own op."""
    encoder = keras.Model(model.input, model.get_layer(lm.HIDDEN_LAYER).output)
    head = model.get_layer(lm.OUTPUT_LAYER)
    weights, biases = tf.convert_to_tensor(head.kernel), tf.convert_to_tensor(head.bias)

    @tf.function
    def nll_sum(x, y):
        hidden = encoder(x, training=False)
        flat = tf.reshape(hidden, [-1, hidden.shape[-1]])
        logits = tf.matmul(flat, weights, transpose_b=True) + biases
        labels = tf.reshape(y, [-1])
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        return tf.reduce_sum(tf.cast(losses, tf.float64))

    total = 0.0
    for start in range(0, len(inputs), 64):
        total += float(nll_sum(inputs[start : start + 64], targets[start : start + 64]))
    return math.exp(total / targets.size)


class EpochLog(keras.callbacks.Callback):
    """Times each epoch and records the exact validation perplexity (untimed)."""

    def __init__(self, valid, flush: bool, record: dict):
        super().__init__()
        self.valid, self.flush, self.record = valid, flush, record
        self.start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.record["epoch_seconds"].append(time.perf_counter() - self.start)
        if self.flush:
            self.model.optimizer.flush()
        self.record["valid_ppl"].append(exact_perplexity(self.model, *self.valid))
        self.record["train_loss"].append(float((logs or {}).get("loss", float("nan"))))
        print(f"  epoch {epoch + 1}: {self.record}", flush=True)


def run(variant: str, corpus, windows, args) -> dict:
    keras.utils.set_random_seed(args.seed)
    model = build_model(corpus.vocab_size, args, args.seed)
    optimizer = make_optimizer(variant, args)
    model.compile(optimizer=optimizer, loss=lm.head_loss("sampled"))
    record = {"variant": variant, "epoch_seconds": [], "valid_ppl": [], "train_loss": []}
    flush = variant.endswith("catch_up")
    model.fit(
        *windows["train"],
        batch_size=args.batch_size,
        epochs=args.epochs,
        shuffle=True,
        verbose=0,
        callbacks=[EpochLog(windows["valid"], flush, record)],
    )
    if flush:
        optimizer.flush()
    record["test_ppl"] = exact_perplexity(model, *windows["test"])
    record["mean_epoch_seconds"] = float(np.mean(record["epoch_seconds"]))
    print(f"{variant}: test ppl {record['test_ppl']:.2f}", flush=True)
    return record


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--optimizers",
        nargs="+",
        choices=VARIANTS,
        default=["adam", "lazy_adam", "lazy_adam_per_lookup"],
    )
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--max-train-tokens", type=int, default=None)
    parser.add_argument("--max-eval-tokens", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seq-len", type=int, default=35)
    parser.add_argument("--embedding-dim", type=int, default=256)
    parser.add_argument("--hidden-dim", type=int, default=256)
    parser.add_argument("--num-sampled", type=int, default=512)
    parser.add_argument("--learning-rate", type=float, default=4e-3)
    parser.add_argument("--clipnorm", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--out", default="lazy_convergence.json")
    args = parser.parse_args(argv)

    corpus = data.load_ptb()
    windows = {
        "train": data.lm_windows(corpus.train, args.seq_len, args.max_train_tokens),
        "valid": data.lm_windows(corpus.valid, args.seq_len, args.max_eval_tokens),
        "test": data.lm_windows(corpus.test, args.seq_len, args.max_eval_tokens),
    }
    results = {"settings": vars(args), "runs": []}
    for variant in args.optimizers:
        results["runs"].append(run(variant, corpus, windows, args))
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    reference = next((r for r in results["runs"] if r["variant"] == "adam"), None)
    for r in results["runs"]:
        ratio = r["test_ppl"] / reference["test_ppl"] if reference else float("nan")
        print(f"{r['variant']:>28}: test ppl {r['test_ppl']:8.2f}  vs adam {ratio:.4f}")


if __name__ == "__main__":
    main()
