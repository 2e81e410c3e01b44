"""``learned_unigram_candidate_sampler`` on this package's C++ op, and the ops of its saved twin.

Same signature, outputs and semantics as
``tf.random.learned_unigram_candidate_sampler`` (the same seed even gives the
same draws), with checked arguments, O((batch_size * num_true + num_sampled) *
log(range_max)) work per call and ``range_max`` up to 2^63 - 1.

``sample_and_update``, ``tree_to_counts`` and ``counts_to_tree`` wrap the ops
that ``tf_sampling.samplers.LearnedUnigramSampler`` runs on its count-tree
variable (the tree's layout: ``custom_ops/cc/kernels/count_tree.h``).
"""

from __future__ import annotations

import tensorflow as tf

from tf_sampling._core import sampler_args
from tf_sampling.ops import _loader

__all__ = [
    "counts_to_tree",
    "learned_unigram_candidate_sampler",
    "sample_and_update",
    "tree_to_counts",
]


def op_seeds(seed: int | None) -> tuple[int, int]:
    """Returns the two op seeds for ``seed``, as TensorFlow's samplers pick them.

    Args:
      seed: Optional op-level seed.

    Returns:
      tuple: ``(seed, seed2)`` from ``tf.compat.v1.get_seed`` (global and op
      seed), ``0`` for unset; both 0 means non-deterministic.
    """
    seed1, seed2 = tf.compat.v1.get_seed(seed)
    return int(seed1 or 0), int(seed2 or 0)


def learned_unigram_candidate_sampler(
    true_classes,
    num_true: int,
    num_sampled: int,
    unique: bool,
    range_max: int,
    seed: int | None = None,
    name: str | None = None,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Samples classes from a unigram distribution learned during training.

    A drop-in for ``tf.random.learned_unigram_candidate_sampler``, running this
    package's C++ op ``TfSampling>LearnedUnigramCandidateSampler``. As in
    TensorFlow, each op instance (one per graph node, or per eager kernel)
    keeps its own counts: every class starts with weight 1 and gains 1 per
    occurrence in ``true_classes``, added *after* the call's sampling. Those
    counts are not saved by checkpoints; for state you own (checkpoints,
    ``.keras`` files, SavedModel), use
    ``tf_sampling.samplers.learned_unigram.LearnedUnigramSampler``.

    With ``unique=True`` the candidates are drawn by rejection sampling and the
    expected counts are the inclusion probabilities given the number of draws
    ``n`` it took: ``1 - (1 - p)^n`` (``p * num_sampled`` when no draw was
    rejected); otherwise ``p * num_sampled``. After 1024 * num_sampled
    rejection draws, the rest of a unique sample is drawn from the classes not
    yet picked, with the same law (see docs/learned_unigram.md), so a call
    always ends.

    Args:
      true_classes: int64 ``[batch_size, num_true]`` target classes in
        ``[0, range_max)``.
      num_true: int >= 1, number of target classes per example.
      num_sampled: int >= 1, number of classes to sample.
      unique: bool, whether to sample without replacement.
      range_max: int >= 1, number of classes.
      seed: Optional int, op-level seed (combined with the global seed by
        ``tf.compat.v1.get_seed``, as TensorFlow does).
      name: Optional name of the op.

    Returns:
      namedtuple: ``sampled_candidates`` int64 ``[num_sampled]``,
      ``true_expected_count`` float32 ``[batch_size, num_true]``,
      ``sampled_expected_count`` float32 ``[num_sampled]``.

    Raises:
      TypeError: a non-integer argument or ``true_classes`` dtype, or a
        non-bool ``unique``.
      ValueError: an argument < 1, ``range_max`` or ``num_true`` past 2^63 - 1,
        ``num_sampled`` past 2^31 - 1, ``num_sampled > range_max`` with
        ``unique``, or ``true_classes`` not ``[batch_size, num_true]``.
      tf.errors.InvalidArgumentError: (when run) a true class outside
        ``[0, range_max)``, or true classes that would take the total weight
        ``range_max + sum(counts)`` past 2^63 - 1 (the call then changes
        nothing).
      OpLibraryError: the compiled op library is missing or stale.
    """
    num_true, num_sampled, unique, range_max, seed = sampler_args.check_sampler_args(
        num_true, num_sampled, unique, range_max, seed
    )
    true_classes = sampler_args.check_true_classes(true_classes, num_true)
    seed1, seed2 = op_seeds(seed)
    library = _loader.load_op_library()
    # A namedtuple (sampled_candidates, true_expected_count,
    # sampled_expected_count), like TensorFlow's.
    return library.tf_sampling_learned_unigram_candidate_sampler(
        true_classes=true_classes,
        num_true=num_true,
        num_sampled=num_sampled,
        unique=unique,
        range_max=range_max,
        seed=seed1,
        seed2=seed2,
        name=name,
    )


def sample_and_update(
    tree: tf.Variable,
    offset: tf.Variable,
    true_classes,
    num_true: int,
    num_sampled: int,
    unique: bool,
    range_max: int,
    seed: int | None = None,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Samples from the counts held in ``tree``, then adds ``true_classes`` to them in place.

    Op ``TfSampling>LearnedUnigramSampleAndUpdate``: under the variables'
    locks it samples as :func:`learned_unigram_candidate_sampler` does, from
    the counts in ``tree``, with the random stream of the op seeds at
    position ``offset``; then it adds the true classes to ``tree`` and
    advances ``offset``. O((batch_size * num_true + num_sampled) *
    log(range_max)); the tree is never copied.

    Args:
      tree: int64 resource variable ``[count_tree_size(range_max)]``, the count tree.
      offset: int64 scalar resource variable, the position in the random stream.
      true_classes: int64 ``[batch_size, num_true]`` target classes in ``[0, range_max)``.
      num_true, num_sampled, unique, range_max, seed: As
        :func:`learned_unigram_candidate_sampler`.

    Returns:
      tuple: ``sampled_candidates`` int64 ``[num_sampled]``,
      ``true_expected_count`` float32 ``[batch_size, num_true]``,
      ``sampled_expected_count`` float32 ``[num_sampled]``.

    Raises:
      TypeError, ValueError: As :func:`learned_unigram_candidate_sampler`.
      tf.errors.InvalidArgumentError: (when run) a true class outside
        ``[0, range_max)``, a total weight past 2^63 - 1, or a tree that is
        not one of ``range_max`` classes; the variables are then unchanged.
      OpLibraryError: the compiled op library is missing or stale.
    """
    num_true, num_sampled, unique, range_max, seed = sampler_args.check_sampler_args(
        num_true, num_sampled, unique, range_max, seed
    )
    true_classes = sampler_args.check_true_classes(true_classes, num_true)
    seed1, seed2 = op_seeds(seed)
    library = _loader.load_op_library()
    return library.tf_sampling_learned_unigram_sample_and_update(
        tree=tree.handle,
        offset=offset.handle,
        true_classes=true_classes,
        num_true=num_true,
        num_sampled=num_sampled,
        unique=unique,
        range_max=range_max,
        seed=seed1,
        seed2=seed2,
    )


def tree_to_counts(tree, range_max: int) -> tf.Tensor:
    """Decodes a count tree into per-class counts (op ``TfSampling>LearnedUnigramTreeToCounts``).

    Args:
      tree: int64 ``[count_tree_size(range_max)]`` count tree (a tensor).
      range_max: int >= 1, number of classes.

    Returns:
      int64 ``[range_max]``, O(range_max) work.

    Raises:
      OpLibraryError: the compiled op library is missing or stale.
    """
    return _loader.load_op_library().tf_sampling_learned_unigram_tree_to_counts(
        tree, range_max=range_max
    )


def counts_to_tree(counts: tf.Tensor, range_max: int) -> tf.Tensor:
    """Encodes per-class counts as a count tree (op ``TfSampling>LearnedUnigramCountsToTree``).

    Args:
      counts: int64 ``[range_max]`` non-negative counts (checked by the op when run).
      range_max: int >= 1, number of classes.

    Returns:
      int64 ``[count_tree_size(range_max)]``.

    Raises:
      tf.errors.InvalidArgumentError: (when run) a negative count, a total
        past 2^63 - 1 - range_max, or a length other than ``range_max``.
      OpLibraryError: the compiled op library is missing or stale.
    """
    return _loader.load_op_library().tf_sampling_learned_unigram_counts_to_tree(
        counts, range_max=range_max
    )
