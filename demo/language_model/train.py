"""Training and timing of one demo run: ``model.fit``, per-epoch exact validation, test.

Wall time is measured per epoch around training only: the exact-softmax
validation done after every epoch (for the perplexity-vs-time curve) is timed
separately and never counted as training time.

A stateful model is fed its windows in order (``shuffle=False``), its LSTM
states are zeroed at the start of every epoch (and by every evaluation), and
the learning rate can decay per epoch as in Zaremba et al.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import keras
import numpy as np

from demo.language_model import model as lm


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
        learning_rate: The optimizer's learning rate during the epoch.
        test_perplexity: Exact test perplexity after the epoch, if asked for
            (``test_every_epoch``; NaN otherwise).
    """

    epoch: int
    train_seconds: float
    tokens_per_second: float
    cumulative_train_seconds: float
    train_loss: float
    valid_perplexity: float
    learning_rate: float = float("nan")
    test_perplexity: float = float("nan")


@dataclasses.dataclass
class RunResult:
    """Everything measured in one run (one head).

    Attributes:
        head: ``"sampled"``, ``"full"`` or ``"adaptive"``.
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


def decayed_learning_rate(base: float, epoch: int, decay: float, decay_after: int) -> float:
    """Zaremba et al.'s schedule: ``base * decay ** max(epoch - decay_after, 0)``.

    Args:
        base: Learning rate of the first epochs.
        epoch: 1-based epoch number.
        decay: Factor applied once per epoch after ``decay_after`` (1.0: constant).
        decay_after: Number of epochs at the base rate.

    Returns:
        The learning rate of ``epoch``.
    """
    return base * decay ** max(epoch - decay_after, 0)


class _EpochStart(keras.callbacks.Callback):
    """At each epoch's start: zero carried LSTM states, set the decayed learning rate."""

    def __init__(self, decay: float, decay_after: int):
        super().__init__()
        self._decay = decay
        self._decay_after = decay_after
        self._base: float | None = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        lm.reset_states(self.model)
        optimizer = self.model.optimizer
        if self._base is None:
            self._base = float(optimizer.learning_rate)
        if self._decay != 1.0:
            optimizer.learning_rate = decayed_learning_rate(
                self._base, epoch + 1, self._decay, self._decay_after
            )


class _EpochTimer(keras.callbacks.Callback):
    """Times each epoch's training, then evaluates exactly on validation (untimed)."""

    def __init__(
        self,
        result: RunResult,
        valid: tuple[np.ndarray, np.ndarray],
        on_epoch: Callable[[RunResult], None] | None = None,
        test: tuple[np.ndarray, np.ndarray] | None = None,
    ):
        super().__init__()
        self._result = result
        self._valid = valid
        self._test = test
        self._on_epoch = on_epoch
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        seconds = time.perf_counter() - self._start
        loss = float((logs or {}).get("loss", float("nan")))
        learning_rate = float(self.model.optimizer.learning_rate)
        eval_start = time.perf_counter()
        ppl = lm.exact_perplexity(self.model, *self._valid)
        # A long run stopped early still has a test figure for its last epoch.
        test_ppl = (
            float("nan") if self._test is None else lm.exact_perplexity(self.model, *self._test)
        )
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
                learning_rate=learning_rate,
                test_perplexity=test_ppl,
            )
        )
        if self._on_epoch is not None:
            self._on_epoch(self._result)
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
    lr_decay: float = 1.0,
    lr_decay_after: int = 0,
    on_epoch: Callable[[RunResult], None] | None = None,
    test_every_epoch: bool = False,
) -> RunResult:
    """Builds, trains (``model.fit``) and exactly evaluates one language model.

    ``keras.utils.set_random_seed(seed)`` is called first, so two runs with the
    same seed share their initial weights and their batch order. A stateful
    ``config`` trains on the windows in the given order (build them with
    :func:`demo.language_model.data.stream_windows` and ``config.batch_size``),
    with the LSTM states zeroed at every epoch's start; a stateless one shuffles
    the windows every epoch.

    Args:
        head: One of ``model.HEADS``: ``"sampled"``, ``"full"`` or ``"adaptive"``.
        config: Model and optimizer settings.
        train: ``(inputs, targets)`` training windows, each ``[num_windows, T]``.
        valid: Validation windows, as ``train``.
        test: Test windows, as ``train``.
        epochs: Passes over ``train``.
        batch_size: Windows per step.
        seed: Global seed of the run.
        unigram_counts: Training class counts ``[V]`` (the ``fixed_unigram`` sampler, the
            adaptive head's cutoffs).
        verbose: 1 for Keras progress bars, 0 for silence.
        lr_decay: Learning-rate factor per epoch after ``lr_decay_after`` epochs.
        lr_decay_after: Epochs at the initial learning rate.
        on_epoch: Called with the partial result after every epoch's validation.
        test_every_epoch: Also evaluate on ``test`` after every epoch (untimed).

    Returns:
        The measurements of the run.
    """
    if config.stateful and batch_size != config.batch_size:
        raise ValueError(
            f"`batch_size` must equal the stateful model's batch size {config.batch_size}, got "
            f"batch_size={batch_size}."
        )
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
        # Stateful: window k of every row must follow window k - 1 of the same row.
        shuffle=not config.stateful,
        verbose=verbose,
        callbacks=[
            _EpochStart(lr_decay, lr_decay_after),
            _EpochTimer(result, valid, on_epoch, test if test_every_epoch else None),
        ],
    )
    start = time.perf_counter()
    result.valid_perplexity = result.epochs[-1].valid_perplexity
    result.test_perplexity = lm.exact_perplexity(model, *test)
    result.eval_seconds += time.perf_counter() - start
    return result
