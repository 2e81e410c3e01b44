"""A learned-unigram candidate sampler whose learned counts are saved state.

TensorFlow's ``tf.random.learned_unigram_candidate_sampler`` keeps its counts
inside the op kernel: they vanish when a ``tf.function`` retraces, when the
seed changes, and are in no checkpoint or SavedModel. ``LearnedUnigramSampler``
holds them in a non-trainable int64 Keras variable instead, so
``tf.train.Checkpoint``, ``model.save("*.keras")`` and SavedModel export save
and restore them, while sampling runs on the same C++ code as
``tf_sampling.ops.learned_unigram_candidate_sampler``.

Design: the variable (shape ``[count_tree_size(range_max)]``, about
``8/7 * range_max``) holds the count tree of the C++ kernel: an 8-ary tree of
64-byte blocks of prefix sums of the counts, level 0 (one entry per class)
first; the base weight 1 per class is implicit, so a fresh sampler is all
zeros. The op ``TfSampling>LearnedUnigramSampleAndUpdate`` takes the
variable's resource handle, and under the variable's lock samples in
O(num_sampled * log R), computes the expected counts in O(batch_size *
num_true), then adds the true classes to the tree in place in O(batch_size *
num_true * log R). No step reads or writes the whole variable: a
read-then-``scatter_add`` design would put the variable in TensorFlow's
copy-on-read mode, after which every read copies the whole tree. Memory is
about ``9.2 * range_max`` bytes.
A second int64 scalar variable holds the position in the Philox random stream
of the op seeds, so randomness is part of the saved state too.
"""

from __future__ import annotations

import warnings

import keras
import tensorflow as tf

from tf_sampling import ops
from tf_sampling._core import checks, label_sets, sampler_args
from tf_sampling.ops import learned_unigram as unigram_ops
from tf_sampling.samplers import base, xla_defaults

__all__ = ["LearnedUnigramSampler", "count_tree_size"]

# Entries per block of the count tree: one 64-byte cache line of int64.
_FANOUT = 8

#: Largest ``range_max`` of a ``LearnedUnigramSampler``: its count tree (about
#: 8/7 entries of 8 bytes per class) must be addressable in bytes as an int64.
MAX_RANGE = 2**59


def count_tree_size(range_max: int) -> int:
    """Number of int64 entries of the count tree over ``range_max`` classes.

    Level 0 has one entry per class, level ``l + 1`` one per block of 8
    entries of level ``l``, up to a single block; every level is padded to
    whole blocks (the layout of ``custom_ops/cc/kernels/count_tree.h``).

    Args:
      range_max: int >= 1, number of classes.

    Returns:
      int: the length of ``LearnedUnigramSampler.tree``.
    """
    range_max = checks.check_int(range_max, "range_max")
    size = 0
    entries = range_max
    while True:
        blocks = -(-entries // _FANOUT)
        size += blocks * _FANOUT
        if blocks == 1:
            return size
        entries = blocks


@base.register
@keras.saving.register_keras_serializable(package="tf_sampling")
class LearnedUnigramSampler(base.Sampler, keras.layers.Layer):
    """Learned-unigram candidate sampler with checkpointable counts.

    Samples classes with probability proportional to ``1 + count(class)``,
    where ``count`` is how often the class appeared in the ``true_classes``
    of earlier ``sample`` calls; each call samples first, then counts its
    true classes (TensorFlow's order). The counts live in the non-trainable
    int64 variable ``self.tree`` and the position in the random stream in
    ``self.offset`` (never autocast under mixed precision), so the same seed
    gives the same draws in any fresh sampler, across retraces, and after a
    restore.

    Example::

        sampler = LearnedUnigramSampler(range_max=50_000, unique=True, seed=1)
        sampled, true_expected, sampled_expected = sampler.sample(labels, 1, 64)
        tf.train.Checkpoint(sampler=sampler).save("/tmp/ckpt")  # counts saved

    Works eagerly and in ``tf.function`` / ``model.fit`` (the update is part of
    the traced step). Not XLA-compilable: ``supports_jit`` is False, so Keras
    does not jit a model containing it, and reading it warns once, naming the
    compilable alternative (``{"name": "learned_unigram", "compilable":
    True}``). Restoring a SavedModel that uses it needs
    ``tf_sampling.ops.load_op_library()`` called first.

    Args:
      range_max: int >= 1, number of classes.
      unique: bool, whether the candidates of one call are distinct.
      seed: Optional int, op-level seed (with the global seed, as in
        TensorFlow); the same seeds give the same draws from the same counts.
      **kwargs: ``keras.layers.Layer`` arguments (``name``, ...).

    Raises:
      TypeError, ValueError: invalid ``range_max`` (at most ``MAX_RANGE`` =
        2^59), ``unique`` or ``seed``.
      OpLibraryError: the compiled op library is missing or stale.
    """

    sampler_name = "learned_unigram"

    def __init__(self, range_max: int, unique: bool = True, seed: int | None = None, **kwargs):
        kwargs.pop("trainable", None)  # The counts are never trained.
        super().__init__(trainable=False, **kwargs)
        self._set_sampler_options(range_max, unique, seed)
        checks.check_at_most(
            self.range_max, "range_max", MAX_RANGE, "the count tree holds about 9.2 bytes per class"
        )
        self._warned_about_jit = False
        # Fail now, not in the middle of a training step, if the op is missing.
        ops.load_op_library()
        # The op runs on CPU only; keep its state there even when a GPU exists.
        with tf.device("/CPU:0"):
            self.tree = self.add_weight(
                shape=(count_tree_size(self.range_max),),
                initializer="zeros",
                dtype="int64",
                trainable=False,
                autocast=False,
                name="count_tree",
            )
            # Position in the Philox stream of the op seeds: fresh samplers
            # with the same seed draw the same candidates, and a restored
            # checkpoint resumes the stream where it was saved.
            self.offset = self.add_weight(
                shape=(),
                initializer="zeros",
                dtype="int64",
                trainable=False,
                autocast=False,
                name="philox_offset",
            )
        self.built = True

    def build(self, input_shape=None):
        """No-op: the state is created in ``__init__``."""
        self.built = True

    @property
    def supports_jit(self) -> bool:
        """False: the C++ op has no XLA kernel. Warns once, naming the compilable sampler.

        Keras reads it when a model is compiled with ``jit_compile=True`` (or
        ``"auto"`` on an accelerator) and then trains without XLA.
        """
        if not getattr(self, "_warned_about_jit", True):
            self._warned_about_jit = True
            warnings.warn(
                xla_defaults.not_compilable_message(self, f"LearnedUnigramSampler '{self.name}'"),
                stacklevel=2,
            )
        return False

    @supports_jit.setter
    def supports_jit(self, value) -> None:
        # keras.layers.Layer.__init__ sets True; this sampler never compiles.
        del value

    def sample(
        self, true_classes, num_true: int, num_sampled: int
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Samples from the current learned distribution, then adds true_classes to the counts.

        Args:
          true_classes: int64 (any integer dtype is cast) ``[batch_size,
            num_true]`` target classes in ``[0, range_max)``; or a variable
            number per row: a ``tf.RaggedTensor`` ``[batch_size, (n_i)]``
            (``n_i <= num_true``) or ``tf_sampling.nn.label_set(...)``, whose
            padding is never counted (its true expected count is 1).
          num_true: int >= 1, number of target classes per example.
          num_sampled: int >= 1, number of candidates to draw.

        Returns:
          tuple: ``sampled_candidates`` int64 ``[num_sampled]``,
          ``true_expected_count`` float32 ``[batch_size, num_true]``,
          ``sampled_expected_count`` float32 ``[num_sampled]``, with the
          expected counts of TensorFlow's sampler (see
          ``tf_sampling.ops.learned_unigram_candidate_sampler``). Gradients
          are stopped on all three.

        Raises:
          TypeError: non-integer ``num_true``/``num_sampled`` or
            ``true_classes`` dtype.
          ValueError: ``num_true``/``num_sampled`` < 1, ``num_sampled >
            range_max`` with ``unique``, or ``true_classes`` not ``[batch_size,
            num_true]``.
          tf.errors.InvalidArgumentError: (when run) a true class outside
            ``[0, range_max)``, true classes that would take ``range_max +
            sum(counts)`` past 2^63 - 1, or a count tree that is not one of
            ``range_max`` classes (e.g. restored from a sampler with another
            ``range_max``); the counts are then left unchanged.
        """
        if label_sets.is_label_set(true_classes):
            return self._sample_label_set(true_classes, num_true, num_sampled)
        outputs = unigram_ops.sample_and_update(
            self.tree,
            self.offset,
            true_classes,
            num_true,
            num_sampled,
            self.unique,
            self.range_max,
            self.seed,
        )
        return tuple(tf.stop_gradient(t) for t in outputs)

    def _sample_label_set(self, true_classes, num_true, num_sampled):
        """``sample`` for ragged / padded true classes: only the real ones are counted.

        The op gets the real labels as ``[n, 1]`` (the padding never reaches
        the counts); their expected counts go back to their slots, and a
        padded slot gets 1 (never read by the losses).
        """
        num_true = checks.check_int(num_true, "num_true")
        dense, mask = label_sets.padded_with_mask(true_classes, num_true)
        positions = tf.where(mask)
        real = tf.reshape(tf.gather_nd(dense, positions), [-1, 1])
        sampled, real_expected, sampled_expected = unigram_ops.sample_and_update(
            self.tree, self.offset, real, 1, num_sampled, self.unique, self.range_max, self.seed
        )
        true_expected = tf.tensor_scatter_nd_update(
            tf.ones(tf.shape(dense), real_expected.dtype), positions, real_expected[:, 0]
        )
        return tuple(tf.stop_gradient(t) for t in (sampled, true_expected, sampled_expected))

    def call(self, true_classes, num_true: int, num_sampled: int):
        """Same as ``sample``."""
        return self.sample(true_classes, num_true, num_sampled)

    def counts(self) -> tf.Tensor:
        """Returns the learned occurrence counts (decoded; O(range_max), for inspection).

        Returns:
          tf.Tensor: int64 ``[range_max]``; class ``c`` is sampled with
          probability ``(1 + counts[c]) / (range_max + sum(counts))``.
        """
        return unigram_ops.tree_to_counts(tf.convert_to_tensor(self.tree.value), self.range_max)

    def set_counts(self, counts) -> None:
        """Replaces the learned counts, e.g. to warm-start from known frequencies.

        The counts are left unchanged by a call that fails.

        Args:
          counts: Non-negative tensor-like ``[range_max]`` of any integer
            dtype, or of floats that are all whole numbers; ``range_max +
            sum(counts)`` must be at most 2^63 - 1.

        Raises:
          TypeError: ``counts`` is not numeric (strings, bools).
          ValueError: a static shape other than ``[range_max]``, values that
            are not int64 counts, or (eagerly) a float that is not a finite
            whole number.
          tf.errors.InvalidArgumentError: (when run) a negative count, a sum
            past 2^63 - 1 - range_max, a length other than range_max (for a
            tensor of unknown length), or a bad float in a graph.
        """
        counts = sampler_args.check_counts(counts, self.range_max)
        self.tree.assign(unigram_ops.counts_to_tree(counts, self.range_max))

    def get_config(self) -> dict:
        """Returns the constructor arguments (the counts are weights, not config)."""
        config = super().get_config()
        config.pop("trainable", None)
        config.update({"range_max": self.range_max, "unique": self.unique, "seed": self.seed})
        return config
