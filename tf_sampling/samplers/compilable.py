"""Candidate samplers in plain TensorFlow ops: XLA-compilable, on any device, checkpointable.

TensorFlow's ``tf.random.*_candidate_sampler`` ops have CPU kernels only and
no XLA kernels, so a training step that calls them cannot be compiled with
``tf.function(jit_compile=True)`` (or ``model.compile(jit_compile=True)``).
The samplers here draw from the same distributions with ordinary TensorFlow
ops (stateless Philox random numbers, gathers, scatters, while loops of fixed
shapes), so they run wherever TensorFlow runs, compiled or not:

* ``CompilableLogUniformSampler``: ``P(c) = log((c + 2) / (c + 1)) / log(range_max + 1)``,
  drawn by its closed-form inverse CDF ``floor(exp(u * log(range_max + 1))) - 1``.
* ``CompilableUniformSampler``: ``P(c) = 1 / range_max``.
* ``CompilableFixedUnigramSampler``: ``P(c)`` proportional to ``unigrams[c] ** distortion``
  (zero on the reserved ids), drawn by a binary search of the cumulative weights.
* ``CompilableLearnedUnigramSampler``: ``P(c)`` proportional to ``1 + count(c)``, the
  counts learned from the true classes of earlier calls (sample first, then
  count, TensorFlow's order), kept in an int64 variable and a Fenwick tree of
  them: a draw is ``log2(range_max)`` gathers, an update as many scatter-adds
  per true class; no step touches all ``range_max`` entries.

All of them are Keras layers (``tf_sampling.samplers.get(name, ...,
compilable=True)`` builds them; ``{"name": name, "compilable": True}`` as a
layer's ``sampler``), with ``sample(true_classes, num_true, num_sampled)``
returning the ``(sampled_candidates, true_expected_count,
sampled_expected_count)`` triple of TensorFlow's samplers. Their random state
is two int64 variables, the stream key (the seed) and the number of calls so
far: the draws of call ``n`` are a pure function of ``(key, n)`` (and, for
the learned sampler, of the counts), so the same seed gives the same draws,
and a restored checkpoint, ``.keras`` file or SavedModel resumes the stream
where it was saved. The draws are not TensorFlow's draws (another generator),
only their distribution is.

What is exact
-------------
``unique=False``: each candidate is an independent draw from ``P``, and the
expected counts are ``P(c) * num_sampled``, as TensorFlow's.

``unique=True``: TensorFlow draws with replacement and rejects repeats until
it has ``num_sampled`` distinct classes, in the order they first appeared,
and reports for every class the probability that it appeared in those
``num_tries`` draws, ``-expm1(num_tries * log1p(-P(c)))`` (``P(c) *
num_sampled`` when no draw was rejected). Here the same process runs on
fixed shapes: rounds of ``draws_per_round`` draws with replacement; in each,
the draws that are new (not seen before, found by hashing) are kept in
order until ``num_sampled`` are held, and ``num_tries`` counts the draws up
to the one that completed the set. Rounds repeat (a ``tf.while_loop``) until
the set is complete or 16 rounds have passed; skewed weights (one class
holding nearly all the mass) could otherwise keep a call going for ever.
What is still missing then is drawn with the law that rejecting further
would give it: the remaining classes in order by weighted sampling without
replacement among the classes not held (Gumbel-top-k, one pass over every
class), and for each a geometric number of draws. So the result has
TensorFlow's distribution exactly (not an approximation that stops after a
fixed number of draws), and the expected counts are TensorFlow's formula for
that ``num_tries`` (held in float64: it may pass 2^63). Only float
rounding can differ from TensorFlow's, in the last bits of the float32
results: ``P`` and the expected counts are computed in float64 and rounded
once to float32 (TensorFlow computes them in float32 and sums the
fixed-unigram weights in float32). Compiled or not, the same state gives the
same candidates (the uniforms are made from Philox integer bits, which XLA
and TensorFlow's kernels agree on).

The log-uniform and fixed-unigram draws use float64 uniforms (float32 would
not resolve the rarest classes of a million-class table), so they need a
device with float64 arithmetic (CPUs and GPUs; not TPUs).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from tf_sampling._core import accidental_hits, fixed_unigram_args, label_sets, xla
from tf_sampling._core.checks import INT64_MAX, check_int
from tf_sampling._core.sampler_args import check_counts, check_true_classes
from tf_sampling.samplers import base

__all__ = [
    "assert_true_classes_in_range",
    "CompilableFixedUnigramSampler",
    "CompilableLearnedUnigramSampler",
    "CompilableLogUniformSampler",
    "CompilableSampler",
    "CompilableUniformSampler",
    "expected_count",
    "first_occurrences",
    "get",
    "round_seed",
]

SampledValues = base.SampledValues

# One counter-based generator everywhere: the same (key, counter) gives the
# same bits on CPU and GPU, compiled or not.
_ALG = "philox"


def expected_count(probability, num_tries, num_sampled: int) -> tf.Tensor:
    """TensorFlow's expected count of a class after ``num_tries`` draws, in float32.

    Args:
      probability: float ``[...]`` probability of each class per draw.
      num_tries: int64 or float64 scalar, number of draws taken
        (``num_sampled`` when sampling with replacement).
      num_sampled: int, number of candidates returned.

    Returns:
      tf.Tensor: float32 ``[...]``: ``probability * num_sampled`` if no draw
      was rejected, else ``-expm1(num_tries * log1p(-probability))``
      (computed in float64, TensorFlow computes it in float32: they agree to
      float32 rounding).
    """
    # In float64, rounded once: XLA's and Eigen's float32 expm1/log1p differ
    # in the last bit, their float64 ones almost never by a float32 bit.
    p = tf.cast(probability, tf.float64)
    # float64, not int64: a skewed unique sample may take more than 2^63 tries.
    tries = tf.cast(num_tries, tf.float64)
    inclusion = -tf.math.expm1(tries * tf.math.log1p(-p))
    count = tf.where(tf.equal(tries, float(num_sampled)), p * float(num_sampled), inclusion)
    return tf.cast(count, tf.float32)


# Rejection rounds of a unique call before the rest is drawn directly
# (CompilableSampler._complete_unique): only speed depends on it.
_MAX_ROUNDS = 16

# Round r of a unique call draws with the call's seed plus r in bits 40 and up
# of its counter: distinct seeds while calls stay below 2**40.
_ROUND_SHIFT = 40


def round_seed(seed: tf.Tensor, round_index) -> tf.Tensor:
    """The stateless seed of round ``round_index`` of a unique call with seed ``seed``.

    ``[key, step + round_index * 2**40]``, by integer arithmetic, not
    ``tf.random.experimental.stateless_fold_in``: that op's XLA kernel and
    CPU kernel disagree for keys of 2**32 and more (measured), which made
    compiled and non-compiled draws differ.

    Args:
      seed: int64 ``[2]`` seed ``[key, step]`` of the call.
      round_index: int scalar, the round (0 for the first).

    Returns:
      tf.Tensor: int64 ``[2]``.
    """
    offset = tf.bitwise.left_shift(tf.cast(round_index, tf.int64), _ROUND_SHIFT)
    return seed + tf.stack([tf.constant(0, tf.int64), offset])


def first_occurrences(values: tf.Tensor) -> tf.Tensor:
    """Marks the first occurrence of each value of a 1-D tensor (fixed shape, XLA-friendly).

    Hashing rounds, not a sort (``tf_sampling._core.accidental_hits.occurrences``).

    Args:
      values: int ``[n]``.

    Returns:
      tf.Tensor: bool ``[n]``, True where ``values[i]`` differs from every
      ``values[j]``, ``j < i``.
    """
    return accidental_hits.occurrences(values)


_GOLDEN = 0x9E3779B97F4A7C15


def _mix64(x: tf.Tensor) -> tf.Tensor:
    """SplitMix64's output function on uint64 (a bijection that scatters every bit)."""
    shift = tf.bitwise.right_shift
    x = tf.bitwise.bitwise_xor(x, shift(x, tf.constant(30, tf.uint64)))
    x = x * tf.constant(0xBF58476D1CE4E5B9, tf.uint64)
    x = tf.bitwise.bitwise_xor(x, shift(x, tf.constant(27, tf.uint64)))
    x = x * tf.constant(0x94D049BB133111EB, tf.uint64)
    return tf.bitwise.bitwise_xor(x, shift(x, tf.constant(31, tf.uint64)))


def _open_uniform(seed: tf.Tensor, n: int) -> tf.Tensor:
    """``n`` float64 uniforms in the open interval (0, 1) for an int64 ``[2]`` seed.

    SplitMix64 from a start that mixes both seed words: a few fused
    elementwise ops, where another Philox generator would add about a
    second of XLA compile time to every step that contains it, for a path
    that rarely runs (``CompilableSampler._complete_unique``).
    """
    words = tf.bitcast(tf.cast(seed, tf.int64), tf.uint64)
    golden = tf.constant(_GOLDEN, tf.uint64)
    start = _mix64(words[0] * golden + _mix64(words[1] + golden))
    index = tf.cast(tf.range(1, n + 1, dtype=tf.int64), tf.uint64)
    bits = _mix64(start + index * golden)
    whole = tf.cast(tf.bitwise.right_shift(bits, tf.constant(11, tf.uint64)), tf.float64)
    return (whole + 0.5) * (2.0**-53)


def _mark(size: int, classes: tf.Tensor, keep: tf.Tensor) -> tf.Tensor:
    """bool ``[size]``: True at ``classes[i]`` for every ``i`` with ``keep[i]`` (fixed shape)."""
    index = tf.where(keep, classes, tf.zeros_like(classes))[:, None]
    hits = tf.tensor_scatter_nd_max(tf.zeros([size], tf.int32), index, tf.cast(keep, tf.int32))
    return hits > 0


def assert_true_classes_in_range(true_classes: tf.Tensor, range_max: int) -> tf.Tensor:
    """Checks int64 ``true_classes`` against ``[0, range_max)``, in TensorFlow's words.

    TensorFlow's samplers say "`true_candidate` out of range [0, R), received
    c"; the message here starts the same and then names the argument. Eagerly
    the first bad entry is quoted with its position; in a graph one assert
    op quotes the worst id.

    Args:
      true_classes: int64 ``[batch_size, num_true]``.
      range_max: int, number of classes.

    Returns:
      tf.Tensor: ``true_classes``, available once the check has passed.

    Raises:
      tf.errors.InvalidArgumentError: an id outside ``[0, range_max)``.
    """
    if tf.executing_eagerly():
        values = true_classes.numpy()
        bad = np.argwhere((values < 0) | (values >= range_max))
        if bad.size:
            row, column = (int(i) for i in bad[0])
            value = int(values[row, column])
            raise tf.errors.InvalidArgumentError(
                None,
                None,
                f"`true_candidate` out of range [0, {range_max}), received {value}: "
                f"`true_classes` must be class ids in [0, range_max={range_max}), got "
                f"true_classes[{row}, {column}] = {value}.",
            )
        return true_classes
    # As unsigned, a negative id wraps to a huge value: one max finds the
    # worst id at either end, and bitcast back it is the value to quote.
    worst = tf.reduce_max(tf.bitcast(tf.reshape(true_classes, [-1]), tf.uint64))
    message = tf.strings.format(
        f"`true_candidate` out of range [0, {range_max}), received {{}}: `true_classes` must "
        f"be class ids in [0, range_max={range_max})",
        tf.bitcast(worst, tf.int64),
    )
    check = tf.debugging.Assert(worst < range_max, [message], summarize=1)
    with tf.control_dependencies([check]):
        return tf.identity(true_classes)


class CompilableSampler(base.Sampler, keras.layers.Layer):
    """Base of the compilable samplers: random state, the unique rounds, expected counts.

    Subclasses define ``draw(seed, n)`` (``n`` independent int64 draws) and
    ``probability(classes)`` (float64 ``P(c)`` of int64 classes), and may
    override ``_after_sample(true_classes)`` (state updates after a call).

    Args:
      range_max: int >= 1, number of classes; candidates are in ``[0, range_max)``.
      unique: bool, whether the ``num_sampled`` candidates of one call are distinct.
      seed: Optional int, key of the random stream; None draws one at random
        (kept in the state, so a restored sampler still continues its stream).
      draws_per_round: Optional int, draws per round of a unique call
        (default ``max(2 * num_sampled, 64)``); only speed depends on it.
      **kwargs: ``keras.layers.Layer`` arguments (``name``, ...).

    Attributes:
      key: int64 scalar variable, the stream key.
      step: int64 scalar variable, the number of calls so far.
    """

    compilable = True
    option_names = ("draws_per_round",)

    def __init__(
        self,
        range_max: int,
        unique: bool = True,
        seed: int | None = None,
        draws_per_round: int | None = None,
        **kwargs,
    ):
        kwargs.pop("trainable", None)  # The state is never trained.
        super().__init__(trainable=False, **kwargs)
        self._set_sampler_options(range_max, unique, seed)
        self.draws_per_round = (
            None if draws_per_round is None else check_int(draws_per_round, "draws_per_round")
        )
        self.supports_jit = True
        key = self.seed if self.seed is not None else random.SystemRandom().getrandbits(62)
        self.key = self._state_weight(
            "stream_key", lambda shape, dtype=None: tf.constant(key, tf.int64)
        )
        self.step = self._state_weight("stream_step", "zeros")
        self.built = True

    def _state_weight(self, name: str, initializer, shape=(), dtype="int64"):
        return self.add_weight(
            shape=shape,
            initializer=initializer,
            dtype=dtype,
            trainable=False,
            autocast=False,
            name=name,
        )

    def build(self, input_shape=None):
        """No-op: the state is created in ``__init__``."""
        self.built = True

    # ---------------------------------------------------------------- sampling
    # Static Python control flow only: nothing for AutoGraph to convert.
    @tf.autograph.experimental.do_not_convert
    def sample(self, true_classes, num_true: int, num_sampled: int) -> SampledValues:
        """Draws ``num_sampled`` candidates for a batch.

        Args:
          true_classes: int ``[batch_size, num_true]`` target classes in
            ``[0, range_max)``; or a variable number per row (a
            ``tf.RaggedTensor``, not compilable, or
            ``tf_sampling.nn.label_set(...)``, compilable), whose padding is
            never counted and gets true expected count 1.
          num_true: int >= 1, number of target classes per example.
          num_sampled: int >= 1, number of candidates.

        Returns:
          tuple: ``sampled_candidates`` int64 ``[num_sampled]``,
          ``true_expected_count`` float32 ``[batch_size, num_true]``,
          ``sampled_expected_count`` float32 ``[num_sampled]``; gradients stopped.

        Raises:
          TypeError: non-integer ``num_true``, ``num_sampled`` or ``true_classes``.
          ValueError: ``num_true``/``num_sampled`` < 1, more unique samples
            than classes that can be drawn, or ``true_classes`` of another shape.
          tf.errors.InvalidArgumentError: (when run, not compiled) a true
            class outside ``[0, range_max)``, with TensorFlow's words
            ("`true_candidate` out of range"). Compiled by XLA, which drops
            run-time checks, its ``true_expected_count`` is NaN instead.
        """
        num_true, num_sampled = self._check_call(num_true, num_sampled)
        real = None
        if label_sets.is_label_set(true_classes):
            # Padding: looked up as class 0, never counted, expected count 1.
            true_classes, real = label_sets.padded_with_mask(true_classes, num_true)
            true_classes = tf.where(real, true_classes, tf.zeros([], tf.int64))
        true_classes = check_true_classes(true_classes, num_true)
        # Compiled by XLA, an assert cannot stop the step (XLA drops it): a
        # true class out of range then gets a NaN expected count, so its loss
        # is NaN, never a plausible number.
        compiled = xla.in_xla_context()
        if compiled:
            valid = (true_classes >= 0) & (true_classes < self.range_max)
            lookup = tf.where(valid, true_classes, tf.zeros_like(true_classes))
        else:
            true_classes = self._check_true_classes(true_classes)
            lookup = true_classes
        seed = self._next_seed()
        if self.unique:
            sampled, num_tries = self._draw_unique(seed, num_sampled)
        else:
            sampled = self.draw(seed, num_sampled)
            num_tries = tf.constant(num_sampled, tf.int64)
        true_expected = expected_count(self.probability(lookup), num_tries, num_sampled)
        if compiled:
            true_expected = tf.where(valid, true_expected, tf.constant(np.nan, tf.float32))
        sampled_expected = expected_count(self.probability(sampled), num_tries, num_sampled)
        if real is not None:
            true_expected = tf.where(real, true_expected, tf.ones([], true_expected.dtype))
            # -1 is skipped by every update (an invalid class).
            true_classes = tf.where(real, true_classes, tf.constant(-1, tf.int64))
        self._after_sample(true_classes)
        return tuple(tf.stop_gradient(t) for t in (sampled, true_expected, sampled_expected))

    def call(self, true_classes, num_true: int, num_sampled: int) -> SampledValues:
        """Same as ``sample``."""
        return self.sample(true_classes, num_true, num_sampled)

    def _next_seed(self) -> tf.Tensor:
        # The counter moves once per call, whatever the call draws.
        step = self.step.value.assign_add(1) - 1
        return tf.stack([tf.convert_to_tensor(self.key.value), step])

    def _draw_unique(self, seed: tf.Tensor, num_sampled: int) -> tuple[tf.Tensor, tf.Tensor]:
        """TensorFlow's rejection process on fixed shapes (see the module docstring)."""
        per_round = self.draws_per_round or max(2 * num_sampled, 64)
        # Unfilled slots hold -1, which no draw equals.
        found = tf.fill([num_sampled], tf.constant(-1, tf.int64))

        def body(found, num_found, num_tries, round_index, first_round=False):
            draws = self.draw(round_seed(seed, round_index), per_round)
            if first_round:  # Nothing held yet: only the draws to deduplicate.
                new = first_occurrences(draws)
            else:
                # The held classes come first, so a draw repeating one is not new.
                new = first_occurrences(tf.concat([found, draws], 0))[num_sampled:]
            rank = tf.cumsum(tf.cast(new, tf.int32))  # 1-based rank among the new draws
            needed = num_sampled - num_found
            keep = new & (rank <= needed)
            # Kept draws go to slots num_found + rank - 1; the others to a spare
            # slot past the end, dropped afterwards.
            slots = tf.where(keep, num_found + rank - 1, num_sampled)
            found = tf.tensor_scatter_nd_update(tf.concat([found, [-1]], 0), slots[:, None], draws)[
                :num_sampled
            ]
            num_new = rank[-1]
            # The draw that completed the set is the first of rank `needed`.
            tries = tf.where(
                num_new >= needed,
                tf.reduce_sum(tf.cast(rank < needed, tf.int64)) + 1,
                tf.constant(per_round, tf.int64),
            )
            return (
                found,
                tf.minimum(num_found + num_new, num_sampled),
                num_tries + tries,
                round_index + 1,
            )

        # The first round, outside the loop, usually completes the set: the
        # loop then ends at once.
        first = body(
            found,
            tf.constant(0, tf.int32),
            tf.constant(0, tf.int64),
            tf.constant(0, tf.int32),
            first_round=True,
        )
        found, num_found, num_tries, _ = tf.while_loop(
            lambda found, num_found, num_tries, round_index: (
                (num_found < num_sampled) & (round_index < _MAX_ROUNDS)
            ),
            body,
            first,
        )
        # Skewed weights can leave too little mass outside the held classes
        # for rejection to end: the rest is drawn from that mass directly.
        return tf.cond(
            num_found < num_sampled,
            lambda: self._complete_unique(seed, found, num_found, num_tries, num_sampled),
            lambda: (found, tf.cast(num_tries, tf.float64)),
        )

    def _complete_unique(self, seed, found, num_found, num_tries, num_sampled: int):
        """Completes a unique sample whose rejection rounds ran out, with the law of going on.

        Given the classes held, rejection sampling picks the next new class
        with probability proportional to ``P`` among the classes not held,
        after a number of draws that is geometric with success probability
        ``1 - P(held)`` and independent of which class it is. So the rest of
        the sample, in order, is a weighted draw without replacement from the
        classes not held (Gumbel-top-k of ``log P``: exactly that law), and
        ``num_tries`` grows by one geometric count per new class. One pass
        over all ``range_max`` classes; taken only after ``_MAX_ROUNDS``
        rounds left the set incomplete.

        Args:
          seed: int64 ``[2]`` seed of the call.
          found: int64 ``[num_sampled]``, the held classes then -1s.
          num_found: int32 scalar, how many are held.
          num_tries: int64 scalar, the draws made so far.
          num_sampled: int, the sample size.

        Returns:
          tuple: int64 ``[num_sampled]`` candidates (the held ones first, in
          order) and float64 ``num_tries`` (it may pass 2^63).
        """
        classes = tf.range(self.range_max, dtype=tf.int64)
        p = self.probability(classes)
        held_slot = tf.range(num_sampled) < num_found
        held = _mark(self.range_max, found, held_slot)
        # Gumbel noise for every class, then a uniform per new class for its
        # geometric number of draws.
        uniforms = _open_uniform(round_seed(seed, _MAX_ROUNDS), self.range_max + num_sampled)
        gumbel = -tf.math.log(-tf.math.log(uniforms[: self.range_max]))
        keys = tf.where(held | (p <= 0), tf.constant(-np.inf, tf.float64), tf.math.log(p) + gumbel)
        _, order = tf.math.top_k(keys, k=num_sampled, sorted=True, index_type=tf.int64)
        # Slot i >= num_found takes the (i - num_found)-th new class.
        position = tf.range(num_sampled) - num_found
        sampled = tf.where(held_slot, found, tf.gather(order, tf.maximum(position, 0)))
        # Weight held before each new class: the held classes and the new
        # ones before it (summed directly, never as 1 minus the rest).
        needed = num_sampled - num_found
        is_new = tf.range(num_sampled) < needed
        p_new = tf.where(is_new, tf.gather(p, order), tf.zeros([num_sampled], tf.float64))
        zeros = tf.zeros_like(p)
        held_before = tf.reduce_sum(tf.where(held, p, zeros)) + tf.cumsum(p_new, exclusive=True)
        # Weight not held before each new class: itself, the new ones after
        # it and the classes never picked.
        never = tf.reduce_sum(
            tf.where(_mark(self.range_max, sampled, tf.ones([num_sampled], tf.bool)), zeros, p)
        )
        free_before = never + tf.cumsum(p_new, reverse=True)
        log_reject = tf.where(
            held_before < 0.5, tf.math.log(held_before), tf.math.log1p(-free_before)
        )
        # Geometric draws: 1 + floor(log(u) / log(reject)).
        u = uniforms[self.range_max :]
        tries = 1.0 + tf.math.floor(tf.math.log(u) / log_reject)
        # Nothing held yet: the first draw is new.
        tries = tf.where(held_before > 0, tries, tf.ones_like(tries))
        tries = tf.where(is_new, tries, tf.zeros_like(tries))
        return sampled, tf.cast(num_tries, tf.float64) + tf.reduce_sum(tries)

    def _uniform(self, seed: tf.Tensor, n: int) -> tf.Tensor:
        # From 53 random bits: XLA's float uniforms differ from TensorFlow's
        # kernel, its integer bits do not, so the draws are the same compiled or not.
        bits = tf.random.stateless_uniform(
            [n], seed=seed, dtype=tf.uint64, minval=None, maxval=None, alg=_ALG
        )
        return tf.cast(tf.bitwise.right_shift(bits, tf.constant(11, tf.uint64)), tf.float64) * (
            2.0**-53
        )

    def draw(self, seed: tf.Tensor, n: int) -> tf.Tensor:
        """``n`` independent draws (with replacement) for a stateless seed; no state changes.

        ``sample`` makes its candidates from these: call ``k`` uses the seed
        ``[key, k]`` (``unique=False``) or, for round ``r`` of a unique call,
        ``round_seed([key, k], r)``.

        Args:
          seed: int64 ``[2]`` stateless seed.
          n: int, number of draws.

        Returns:
          tf.Tensor: int64 ``[n]`` classes in ``[0, range_max)``.
        """
        raise NotImplementedError

    def probability(self, classes: tf.Tensor) -> tf.Tensor:
        """The probability of each class per draw (from the current state).

        Args:
          classes: int64 ``[...]`` classes in ``[0, range_max)``.

        Returns:
          tf.Tensor: float64 ``[...]``.
        """
        raise NotImplementedError

    def _check_true_classes(self, true_classes: tf.Tensor) -> tf.Tensor:
        """Run-time checks of the true classes when not compiled: ids in ``[0, range_max)``."""
        return assert_true_classes_in_range(true_classes, self.range_max)

    def _after_sample(self, true_classes: tf.Tensor) -> None:
        """State updates after a call (none for the fixed distributions)."""
        return None

    # ---------------------------------------------------------------- config
    def sampler_options(self) -> dict:
        """The distribution's own options (what ``tf_sampling.samplers.serialize`` stores)."""
        options = super().sampler_options()
        if self.draws_per_round is not None:
            options["draws_per_round"] = self.draws_per_round
        return options

    def get_config(self) -> dict:
        """Returns the constructor arguments (the random state is weights, not config)."""
        config = super().get_config()
        config.pop("trainable", None)
        config.update(range_max=self.range_max, seed=self.seed, **self.sampler_options())
        return config


@base.register
@keras.saving.register_keras_serializable(package="tf_sampling")
class CompilableLogUniformSampler(CompilableSampler):
    """Log-uniform (Zipfian) sampler, the distribution of ``tf.random.log_uniform_candidate_sampler``.

    ``P(c) = log((c + 2) / (c + 1)) / log(range_max + 1)``, drawn as
    ``floor(exp(u * log(range_max + 1))) - 1`` for a float64 uniform ``u``
    (the inverse CDF, TensorFlow's method). See ``CompilableSampler`` for
    the arguments.
    """

    sampler_name = "log_uniform"

    def draw(self, seed, n):
        log_range = np.log1p(float(self.range_max))
        values = tf.math.floor(tf.math.exp(self._uniform(seed, n) * log_range)) - 1.0
        # exp can round up to range_max + 1 for u just below 1.
        return tf.clip_by_value(tf.cast(values, tf.int64), 0, self.range_max - 1)

    def probability(self, classes):
        c = tf.cast(classes, tf.float64)
        return tf.math.log1p(1.0 / (c + 1.0)) / np.log1p(float(self.range_max))


@base.register
@keras.saving.register_keras_serializable(package="tf_sampling")
class CompilableUniformSampler(CompilableSampler):
    """Uniform sampler, the distribution of ``tf.random.uniform_candidate_sampler``.

    ``P(c) = 1 / range_max``. See ``CompilableSampler`` for the arguments.
    """

    sampler_name = "uniform"

    def draw(self, seed, n):
        return tf.random.stateless_uniform(
            [n], seed=seed, minval=0, maxval=self.range_max, dtype=tf.int64, alg=_ALG
        )

    def probability(self, classes):
        return tf.fill(tf.shape(classes), tf.constant(1.0 / self.range_max, tf.float64))


def _binary_search_steps(n: int) -> int:
    """Halvings that shrink an interval of ``n`` positions to one."""
    return max(1, int(n).bit_length())


@base.register
@keras.saving.register_keras_serializable(package="tf_sampling")
class CompilableFixedUnigramSampler(CompilableSampler):
    """Fixed-unigram sampler, the distribution of ``tf.random.fixed_unigram_candidate_sampler``.

    ``P(c)`` is proportional to ``float32(unigrams[c - num_reserved_ids]) **
    distortion`` (zero for the first ``num_reserved_ids`` classes). A draw is
    a float64 uniform times the total weight, located in the cumulative
    weights by a binary search of ``log2(range_max)`` gathers (XLA's
    ``searchsorted`` compares every draw with every entry). The weights and
    their cumulative sums are non-trainable float64 variables.

    Args:
      range_max: int, number of classes.
      unigrams: Optional sequence of ``range_max - num_reserved_ids`` counts
        or probabilities.
      vocab_file: Optional path of a counts file (last comma-separated field
        of each line), read now: it must exist when the sampler is built.
      distortion: float, exponent of the weights.
      num_reserved_ids: int, leading class ids never sampled.
      unique, seed, draws_per_round, **kwargs: as in ``CompilableSampler``.

    Raises:
      ValueError, TypeError: as ``tf_sampling.samplers.FixedUnigramSampler``,
        and a ``vocab_file`` that cannot be read now.
    """

    sampler_name = "fixed_unigram"
    option_names = (
        "unigrams",
        "vocab_file",
        "distortion",
        "num_reserved_ids",
        *CompilableSampler.option_names,
    )

    def __init__(
        self,
        range_max: int,
        unigrams: Sequence[float] | None = None,
        vocab_file: str | None = None,
        distortion: float = 1.0,
        num_reserved_ids: int = 0,
        unique: bool = True,
        seed: int | None = None,
        draws_per_round: int | None = None,
        **kwargs,
    ):
        # Checked (and the file read) before any state is made.
        options = fixed_unigram_args.check_fixed_unigram(
            range_max, unigrams, vocab_file, distortion, num_reserved_ids, require_file=True
        )
        super().__init__(range_max, unique, seed, draws_per_round, **kwargs)
        self.unigrams = options.unigrams
        self.vocab_file = options.vocab_file
        self.distortion = options.distortion
        self.num_reserved_ids = options.num_reserved_ids
        self.num_drawable = options.num_drawable
        with np.errstate(over="ignore", under="ignore"):
            weights = np.power(np.asarray(options.values, np.float32), np.float32(self.distortion))
        weights = np.concatenate([np.zeros(self.num_reserved_ids), weights.astype(np.float64)])
        cumulative = np.cumsum(weights)
        self._total = float(cumulative[-1])
        # The last class of positive weight: rounding of u * total must not
        # push a draw past it.
        self._last_drawable = int(np.flatnonzero(weights > 0)[-1])
        self.weights_table = self._state_weight(
            "unigram_weights", _constant(weights), shape=(range_max,), dtype="float64"
        )
        self.cumulative = self._state_weight(
            "cumulative_weights", _constant(cumulative), shape=(range_max,), dtype="float64"
        )

    def _check_sample_size(self, num_sampled: int) -> None:
        super()._check_sample_size(num_sampled)
        fixed_unigram_args.check_drawable(num_sampled, self.unique, self.num_drawable)

    def draw(self, seed, n):
        target = self._uniform(seed, n) * self._total
        table = self.cumulative.value
        # Smallest index whose cumulative weight exceeds the target.
        low = tf.zeros([n], tf.int64)
        high = tf.fill([n], tf.constant(self.range_max, tf.int64))
        for _ in range(_binary_search_steps(self.range_max)):
            middle = (low + high) // 2
            right = tf.gather(table, tf.minimum(middle, self.range_max - 1)) <= target
            low = tf.where(right, middle + 1, low)
            high = tf.where(right, high, middle)
        return tf.minimum(low, self._last_drawable)

    def probability(self, classes):
        return tf.gather(self.weights_table.value, classes) / self._total

    def sampler_options(self) -> dict:
        options = super().sampler_options()
        options.update(
            unigrams=self.unigrams,
            vocab_file=self.vocab_file,
            distortion=self.distortion,
            num_reserved_ids=self.num_reserved_ids,
        )
        return options


def _constant(values: np.ndarray):
    def initializer(shape, dtype=None):
        return tf.constant(values, dtype or tf.float64, shape=shape)

    return initializer


@base.register
@keras.saving.register_keras_serializable(package="tf_sampling")
class CompilableLearnedUnigramSampler(CompilableSampler):
    """Learned-unigram sampler, the distribution of ``tf.random.learned_unigram_candidate_sampler``.

    ``P(c) = (1 + count(c)) / (range_max + sum(count))``, where ``count(c)``
    is how often ``c`` was a true class of earlier calls. Each call samples,
    then counts its true classes (TensorFlow's order), inside the same step,
    compiled or not. The counts are two int64 variables that checkpoint:
    ``counts`` (one per class, for the probabilities) and ``fenwick`` (a
    Fenwick tree of them: entry ``i`` holds the counts of classes ``(i + 1 -
    lowbit(i + 1), i]``), which makes a draw ``log2(range_max)`` gathers and an
    update as many scatter-adds per true class. Its state is its own: it does
    not share counts with ``tf_sampling.samplers.LearnedUnigramSampler``.

    A true class outside ``[0, range_max)`` raises
    ``tf.errors.InvalidArgumentError`` when not compiled; under XLA the check
    cannot stop the step: such a class is dropped from the counts and its
    expected count is NaN.

    See ``CompilableSampler`` for the arguments.
    """

    sampler_name = "learned_unigram"

    def __init__(
        self,
        range_max: int,
        unique: bool = True,
        seed: int | None = None,
        draws_per_round=None,
        **kwargs,
    ):
        super().__init__(range_max, unique, seed, draws_per_round, **kwargs)
        self._levels = int(self.range_max).bit_length()
        self.counts_table = self._state_weight("counts", "zeros", shape=(self.range_max,))
        self.fenwick = self._state_weight("fenwick", "zeros", shape=(self.range_max,))

    def _total_weight(self) -> tf.Tensor:
        # Prefix sum of all classes: the Fenwick nodes of range_max's one bits.
        nodes, i = [], self.range_max
        while i > 0:
            nodes.append(i - 1)
            i -= i & -i
        counted = tf.reduce_sum(tf.gather(self.fenwick.value, tf.constant(nodes, tf.int64)))
        return counted + self.range_max

    def draw(self, seed, n):
        target = tf.random.stateless_uniform(
            [n], seed=seed, minval=0, maxval=self._total_weight(), dtype=tf.int64, alg=_ALG
        )
        tree = self.fenwick.value
        # Descend the tree: after the steps, `position` classes have a total
        # weight <= target and one more would exceed it.
        position = tf.zeros([n], tf.int64)
        for level in reversed(range(self._levels)):
            width = 1 << level
            child = position + width
            inside = child <= self.range_max
            # The node covers classes [position, child): its counts plus 1 each.
            weight = tf.gather(tree, tf.minimum(child, self.range_max) - 1) + width
            right = inside & (weight <= target)
            position = tf.where(right, child, position)
            target = tf.where(right, target - weight, target)
        return position

    def probability(self, classes):
        count = tf.gather(self.counts_table.value, classes)
        return tf.cast(count + 1, tf.float64) / tf.cast(self._total_weight(), tf.float64)

    def _check_true_classes(self, true_classes):
        # Before any state changes (compiled by XLA there are no checks, and
        # the update skips invalid classes). Counting must leave the total
        # weight an int64, as the C++ op requires.
        true_classes = super()._check_true_classes(true_classes)
        room = INT64_MAX - self._total_weight()
        count = tf.size(true_classes, out_type=tf.int64)
        check = tf.debugging.Assert(
            count <= room,
            [
                "the learned-unigram total weight range_max + sum(counts) plus this call's true "
                "classes would exceed 2^63 - 1; true classes:",
                count,
                "room left:",
                room,
            ],
        )
        with tf.control_dependencies([check]):
            return tf.identity(true_classes)

    def _after_sample(self, true_classes):
        flat = tf.reshape(true_classes, [-1])
        valid = (flat >= 0) & (flat < self.range_max)
        self.counts_table.value.scatter_add(
            tf.IndexedSlices(tf.cast(valid, tf.int64), tf.where(valid, flat, 0))
        )
        # Every Fenwick node on the path up from each class gains 1; nodes
        # past the end (and invalid classes) add 0 to entry 0 instead.
        node = tf.where(valid, flat + 1, self.range_max + 1)
        indices, updates = [], []
        for _ in range(self._levels):
            inside = node <= self.range_max
            indices.append(tf.where(inside, node - 1, 0))
            updates.append(tf.cast(inside, tf.int64))
            node = node + (node & -node)
        self.fenwick.value.scatter_add(
            tf.IndexedSlices(tf.concat(updates, 0), tf.concat(indices, 0))
        )

    def counts(self) -> tf.Tensor:
        """Returns the learned occurrence counts, int64 ``[range_max]``."""
        return tf.convert_to_tensor(self.counts_table.value)

    def set_counts(self, counts) -> None:
        """Replaces the learned counts (e.g. known frequencies); unchanged if the call fails.

        Args:
          counts: non-negative integers (or whole floats) ``[range_max]``.

        Raises:
          TypeError, ValueError, tf.errors.InvalidArgumentError: as
            ``tf_sampling.samplers.LearnedUnigramSampler.set_counts``.
        """
        counts = check_counts(counts, self.range_max)
        # Checked before either variable is assigned: in a graph the values
        # assigned depend on the checks (an assert alone is not ordered
        # before a variable's assignment).
        asserts = [
            tf.debugging.assert_non_negative(
                counts, message="Argument `counts` must be non-negative"
            )
        ]
        counts = tf.ensure_shape(counts, [self.range_max])
        prefix = tf.cumsum(counts)
        # Non-negative counts below 2^63 each: the first partial sum past
        # 2^63 - 1 wraps to a negative int64, so a negative prefix is an overflow.
        limit = INT64_MAX - self.range_max
        fits = tf.reduce_all(prefix >= 0) & (prefix[-1] <= limit)
        message = (
            f"Argument `counts` must sum to at most 2^63 - 1 - range_max = {limit} (the sampler's total "
            f"weight range_max + sum(counts) is an int64; range_max={self.range_max})"
        )
        if tf.executing_eagerly():
            if not bool(fits):
                total = int(np.sum(counts.numpy().astype(object)))
                raise tf.errors.InvalidArgumentError(
                    None,
                    None,
                    f"{message}. Received: sum(counts) = {total}; the counts are unchanged",
                )
        else:
            asserts.append(
                tf.debugging.Assert(
                    fits, [message + ". Received: a sum that overflows or is larger"]
                )
            )
            with tf.control_dependencies(asserts):
                counts, prefix = tf.identity(counts), tf.identity(prefix)
        prefix = tf.concat([tf.zeros([1], tf.int64), prefix], 0)
        node = tf.range(1, self.range_max + 1, dtype=tf.int64)
        fenwick = tf.gather(prefix, node) - tf.gather(prefix, node - (node & -node))
        self.counts_table.assign(counts)
        self.fenwick.assign(fenwick)


def get(name: str, num_classes: int, unique: bool = True, seed: int | None = None, **kwargs):
    """Returns the compilable sampler of a distribution name (``samplers.get(..., compilable=True)``).

    Args:
      name: ``"log_uniform"``, ``"uniform"``, ``"fixed_unigram"`` or ``"learned_unigram"``.
      num_classes: int, number of classes.
      unique: bool, sample without replacement.
      seed: Optional int, stream key.
      **kwargs: options of the sampler (``unigrams``, ``draws_per_round``, ...).

    Returns:
      CompilableSampler: a new sampler.

    Raises:
      ValueError: unknown name or options.
    """
    return base.build(name, num_classes, unique=unique, seed=seed, compilable=True, **kwargs)
