"""Training and timing of one demo run: ``model.fit``, per-epoch exact validation, test.

Wall time is measured per epoch around training only: the exact-softmax
validation done after every epoch (for the perplexity-vs-time curve) is timed
separately and never counted as training time.
"""

from __future__ import annotations

import dataclasses
import time

import keras
import numpy as np

from tf_sampling.demo import model as lm


@dataclasses.dataclass
class EpochRecord:
    """What one training epoch took and reached.

    Attributes:
        epoch: 1-based epoch number.
        train_seconds: Wall time of the epoch's training steps.
        tokens_per_second: Training tokens of the epoch divided by ``train_seconds``.
        cumulative_train_seconds: Training wall time since the start of the run.
        train_loss: Mean training loss that Keras reports (sampled or exact).
        valid_perplexity: Exact full-softmax validation perplexity after the epoch.
    """

    epoch: int
    train_seconds: float
    tokens_per_second: float
    cumulative_train_seconds: float
    train_loss: float
    valid_perplexity: float


@dataclasses.dataclass
class RunResult:
    """Everything measured in one run (one head).

    Attributes:
        head: ``"sampled"`` or ``"full"``.
        train_tokens_per_epoch: Target tokens seen per epoch.
        initial_valid_perplexity: Exact validation perplexity before training.
        epochs: One record per epoch.
        valid_perplexity: Exact validation perplexity at the end.
        test_perplexity: Exact test perplexity at the end.
        eval_seconds: Wall time of all the exact evaluations of the run.
        num_params: Trainable parameters of the model.
    """

    head: str
    train_tokens_per_epoch: int
    initial_valid_perplexity: float
    epochs: list[EpochRecord]
    valid_perplexity: float = float("nan")
    test_perplexity: float = float("nan")
    eval_seconds: float = 0.0
    num_params: int = 0

    @property
    def train_seconds(self) -> float:
        """Total training wall time."""
        return sum(e.train_seconds for e in self.epochs)

    @property
    def mean_epoch_seconds(self) -> float:
        """Mean training wall time per epoch."""
        return self.train_seconds / max(1, len(self.epochs))

    @property
    def tokens_per_second(self) -> float:
        """Training throughput over the whole run."""
        total = self.train_tokens_per_epoch * len(self.epochs)
        return total / self.train_seconds if self.train_seconds > 0 else float("nan")

    def to_dict(self) -> dict:
        """A JSON-ready dictionary, derived numbers included."""
        out = dataclasses.asdict(self)
        out.update(
            train_seconds=self.train_seconds,
            mean_epoch_seconds=self.mean_epoch_seconds,
            tokens_per_second=self.tokens_per_second,
        )
        return out


class _EpochTimer(keras.callbacks.Callback):
    """Times each epoch's training, then evaluates exactly on validation (untimed)."""

    def __init__(self, result: RunResult, valid: tuple[np.ndarray, np.ndarray]):
        super().__init__()
        self._result = result
        self._valid = valid
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        seconds = time.perf_counter() - self._start
        loss = float((logs or {}).get("loss", float("nan")))
        eval_start = time.perf_counter()
        ppl = lm.exact_perplexity(self.model, *self._valid)
        self._result.eval_seconds += time.perf_counter() - eval_start
        done = self._result.epochs[-1].cumulative_train_seconds if self._result.epochs else 0.0
        tokens = self._result.train_tokens_per_epoch
        self._result.epochs.append(
            EpochRecord(
                epoch=epoch + 1,
                train_seconds=seconds,
                tokens_per_second=tokens / seconds,
                cumulative_train_seconds=done + seconds,
                train_loss=loss,
                valid_perplexity=ppl,
            )
        )
        if logs is not None:
            # Shown by the Keras progress bar, which runs after this callback.
            logs["train_seconds"] = seconds
            logs["exact_valid_ppl"] = ppl


def train_and_evaluate(
    head: str,
    config: lm.ModelConfig,
    train: tuple[np.ndarray, np.ndarray],
    valid: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    epochs: int,
    batch_size: int,
    seed: int,
    unigram_counts: np.ndarray | None = None,
    verbose: int = 1,
) -> RunResult:
    """Builds, trains (``model.fit``) and exactly evaluates one language model.

    ``keras.utils.set_random_seed(seed)`` is called first, so two runs with the
    same seed share their initial body weights and their batch order.

    Args:
        head: ``"sampled"`` or ``"full"``.
        config: Model and optimizer settings.
        train: ``(inputs, targets)`` training windows, each ``[num_windows, T]``.
        valid: Validation windows, as ``train``.
        test: Test windows, as ``train``.
        epochs: Passes over ``train``.
        batch_size: Windows per step.
        seed: Global seed of the run.
        unigram_counts: Class counts ``[V]`` for the ``fixed_unigram`` sampler.
        verbose: 1 for Keras progress bars, 0 for silence.

    Returns:
        The measurements of the run.
    """
    keras.utils.set_random_seed(seed)
    model = lm.build_language_model(config, head, unigram_counts=unigram_counts, seed=seed)
    result = RunResult(
        head=head,
        train_tokens_per_epoch=int(train[0].size),
        initial_valid_perplexity=float("nan"),
        epochs=[],
        num_params=int(sum(np.prod(w.shape) for w in model.trainable_weights)),
    )
    start = time.perf_counter()
    result.initial_valid_perplexity = lm.exact_perplexity(model, *valid)
    result.eval_seconds += time.perf_counter() - start
    model.fit(
        *train,
        batch_size=batch_size,
        epochs=epochs,
        shuffle=True,
        verbose=verbose,
        callbacks=[_EpochTimer(result, valid)],
    )
    start = time.perf_counter()
    result.valid_perplexity = result.epochs[-1].valid_perplexity
    result.test_perplexity = lm.exact_perplexity(model, *test)
    result.eval_seconds += time.perf_counter() - start
    return result
