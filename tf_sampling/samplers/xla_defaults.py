"""The default samplers of the functional losses, and what they draw with under XLA.

``tf_sampling.nn.sampled_softmax_loss`` and ``nce_loss`` sample with
``tf.random.log_uniform_candidate_sampler`` (unique) when no
``sampled_values`` are given, and ``rank_sampled_softmax_loss`` with the
learned-unigram op; none of those has an XLA kernel. Inside
``tf.function(jit_compile=True)`` they take their candidates from the
compilable sampler of the same distribution instead (see
``tf_sampling.samplers.compilable``): same distribution, same
expected-count formula, other random numbers. The losses ask for either
through one hook of the core (``tf_sampling._core.default_sampler``), which
``loss_default`` answers (registered when this module is imported).

A compilable sampler keeps its random stream (a key and a call counter) in
variables, and a functional loss has no object to hold them, so they live
here: one sampler per ``(distribution, num_classes, unique, seeds)``, made
on first use (its variables outside the traced function) and shared by every
call with the same key, compiled functions and retraces alike. Hence:

* each call takes the next draws of that sampler's stream (the counter moves
  once per call): two calls never reuse draws, as with TensorFlow's stateful
  sampler ops;
* the stream key is fixed by the seeds: with an op ``seed`` or a global seed
  (``tf.random.set_seed``), a program that makes the same calls in the same
  order gets the same draws in every run; with neither, the key is random;
* the learned-unigram default learns its counts from every call for the same
  ``num_classes`` in this process (TensorFlow's op learns per graph node).

``clear()`` forgets them (a later call starts new streams; a function traced
before keeps the sampler it captured).

The Keras layers and losses do the same with their sampler objects:
``compilable_twin(sampler)`` gives a built-in sampler's compilable twin (same
distribution and options, made once per sampler object, its stream key from
the layer's seed and the global seed as above), so a model on the default
log-uniform sampler compiles under ``model.compile(jit_compile=True)``.
"""

from __future__ import annotations

import threading
import weakref

import tensorflow as tf

from tf_sampling import ops
from tf_sampling._core import default_sampler as default_sampler_hook
from tf_sampling._core import label_sets, xla
from tf_sampling.samplers import builtin, compilable

__all__ = [
    "clear",
    "compilable_twin",
    "default_sampler",
    "has_compilable_twin",
    "loss_default",
    "not_compilable_message",
    "sample",
]

_SAMPLERS: dict[tuple, compilable.CompilableSampler] = {}
# A built-in sampler object's twin lives as long as the object.
_TWINS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _stream_key(global_seed: int | None, seed: int | None) -> int | None:
    """The sampler's stream key for a global and an op seed (None: random)."""
    if global_seed is None and seed is None:
        return None
    # Two 31-bit fields in a non-negative int63; the marker bits keep
    # (None, s) and (0, s) apart.
    high = 0 if global_seed is None else (int(global_seed) & 0x7FFFFFFF) | 0x80000000
    low = 0 if seed is None else (int(seed) & 0x7FFFFFFF) | 0x80000000
    return ((high << 31) ^ low) & 0x3FFFFFFFFFFFFFFF


def default_sampler(
    name: str, num_classes: int, unique: bool = True, seed: int | None = None
) -> compilable.CompilableSampler:
    """The process-wide compilable sampler a functional loss uses under XLA.

    Args:
      name: ``"log_uniform"`` (sampled softmax, NCE) or ``"learned_unigram"``
        (rank sampled softmax); any name of ``compilable.get``.
      num_classes: int, number of classes.
      unique: bool, sample without replacement.
      seed: Optional int, op-level seed (with the global seed, it fixes the
        stream key).

    Returns:
      CompilableSampler: the same object for the same arguments and global
      seed, until ``clear()``.
    """
    # Only the global seed: without an op seed, get_seed's second value is a
    # per-graph op count, which would change from one trace to the next.
    global_seed, _ = tf.compat.v1.get_seed(None)
    key = (name, int(num_classes), bool(unique), global_seed, seed)
    with _LOCK:
        sampler = _SAMPLERS.get(key)
        if sampler is None:
            # Outside any traced function: the variables belong to no graph,
            # so later traces (and other functions) capture the same ones.
            with tf.init_scope():
                sampler = compilable.get(
                    name, num_classes, unique=unique, seed=_stream_key(global_seed, seed)
                )
            _SAMPLERS[key] = sampler
    return sampler


def sample(
    name: str,
    true_classes: tf.Tensor,
    num_true: int,
    num_sampled: int,
    num_classes: int,
    unique: bool = True,
    seed: int | None = None,
) -> compilable.SampledValues:
    """The next ``(sampled, true_expected_count, sampled_expected_count)`` of a default sampler.

    Args:
      name: distribution name, as in ``default_sampler``.
      true_classes: int ``[batch_size, num_true]`` target classes.
      num_true: int, number of target classes per example.
      num_sampled: int, number of candidates.
      num_classes: int, number of classes.
      unique: bool, sample without replacement.
      seed: Optional int, op-level seed.

    Returns:
      tuple: int64 ``[num_sampled]``, float32 ``[batch_size, num_true]``,
      float32 ``[num_sampled]``, as TensorFlow's samplers.
    """
    sampler = default_sampler(name, num_classes, unique, seed)
    return sampler.sample(true_classes, num_true, num_sampled)


def has_compilable_twin(sampler) -> bool:
    """Whether ``sampler`` can run in an XLA-compiled step, itself or through its twin.

    True for the compilable samplers and for the built-in (``tf.random``)
    sampler objects; False for the learned-unigram sampler on the C++ op and
    for custom objects.
    """
    return bool(getattr(sampler, "compilable", False)) or isinstance(
        sampler, builtin.CandidateSampler
    )


def not_compilable_message(sampler, owner: str) -> str:
    """Says why ``sampler`` cannot run under XLA and what to use instead.

    Args:
      sampler: A sampler for which ``has_compilable_twin`` is False.
      owner: Who holds it, e.g. ``"SampledSoftmax 'head'"``.

    Returns:
      str: the message (for a warning or an error).
    """
    if getattr(sampler, "sampler_name", None) == "learned_unigram":
        why = "keeps its counts in a C++ op's state, which XLA cannot compile"
        fix = (
            "use sampler={'name': 'learned_unigram', 'compilable': True} (the same distribution "
            "in plain TensorFlow ops, its counts in variables)"
        )
    else:
        why = "is not one of tf_sampling's samplers"
        fix = "use a compilable sampler, e.g. sampler={'name': 'log_uniform', 'compilable': True}"
    return (
        f"{owner} cannot run in an XLA-compiled step (jit_compile=True): its sampler "
        f"{type(sampler).__name__} {why}, so Keras trains this model without XLA. To compile "
        f"it, {fix}."
    )


def compilable_twin(sampler) -> compilable.CompilableSampler:
    """The sampler to draw with in an XLA-compiled step.

    A compilable sampler is returned as it is. A built-in sampler object
    (``tf.random``'s ops have no XLA kernels) gets its twin: the compilable
    sampler of the same distribution and options, made on first use outside
    any traced function and kept for the object's lifetime, so every step
    continues one stream. Its key comes from the object's seed and the
    global seed (random when neither is set), as for ``default_sampler``.

    Args:
      sampler: A sampler object.

    Returns:
      CompilableSampler.

    Raises:
      TypeError: ``sampler`` has no compilable twin (the learned-unigram
        sampler on the C++ op, custom objects); the message names the fix.
    """
    if getattr(sampler, "compilable", False):
        return sampler
    if not isinstance(sampler, builtin.CandidateSampler):
        raise TypeError(not_compilable_message(sampler, "This loss"))
    with _LOCK:
        twin = _TWINS.get(sampler)
        if twin is None:
            global_seed, _ = tf.compat.v1.get_seed(None)
            options = {k: v for k, v in sampler.sampler_options().items() if k != "unique"}
            with tf.init_scope():
                twin = compilable.get(
                    sampler.sampler_name,
                    sampler.range_max,
                    unique=sampler.unique,
                    seed=_stream_key(global_seed, sampler.seed),
                    **options,
                )
            _TWINS[sampler] = twin
    return twin


def clear() -> None:
    """Forgets the default samplers: the next call of each key starts a new stream."""
    with _LOCK:
        _SAMPLERS.clear()


def loss_default(
    name: str,
    true_classes: tf.Tensor,
    num_true: int,
    num_sampled: int,
    num_classes: int,
    seed: int | None = None,
) -> compilable.SampledValues:
    """A functional loss's default unique sample: TensorFlow's op, or under XLA its twin.

    Args:
      name: ``"log_uniform"`` (``tf.random.log_uniform_candidate_sampler``) or
        ``"learned_unigram"`` (``tf_sampling.ops.learned_unigram_candidate_sampler``).
      true_classes: int64 ``[batch_size, num_true]`` target classes (checked).
      num_true, num_sampled, num_classes: ints (checked).
      seed: Optional int, op-level seed.

    Returns:
      tuple: int64 ``[num_sampled]``, float32 ``[batch_size, num_true]``,
      float32 ``[num_sampled]``.
    """
    if xla.in_xla_context():
        # The compilable samplers take ragged / label_set true classes themselves.
        return sample(name, true_classes, num_true, num_sampled, num_classes, True, seed)
    op = {
        "log_uniform": tf.random.log_uniform_candidate_sampler,
        "learned_unigram": ops.learned_unigram_candidate_sampler,
    }[name]
    if label_sets.is_label_set(true_classes):
        return _real_labels_only(op, true_classes, num_true, num_sampled, num_classes, seed)
    return op(
        true_classes=true_classes,
        num_true=num_true,
        num_sampled=num_sampled,
        unique=True,
        range_max=num_classes,
        seed=seed,
    )


def _real_labels_only(op, true_classes, num_true, num_sampled, num_classes, seed):
    """``op`` on the real labels of a ragged / label_set batch, as ``[n_real, 1]``.

    The padding never reaches the op (a learned-unigram op would count it);
    the real labels' expected counts go back to their slots, a padded slot
    gets 1 (never read by the losses).
    """
    dense, mask = label_sets.padded_with_mask(true_classes, num_true)
    positions = tf.where(mask)
    real = tf.reshape(tf.gather_nd(dense, positions), [-1, 1])
    sampled, real_expected, sampled_expected = op(
        true_classes=real,
        num_true=1,
        num_sampled=num_sampled,
        unique=True,
        range_max=num_classes,
        seed=seed,
    )
    true_expected = tf.tensor_scatter_nd_update(
        tf.ones(tf.shape(dense), real_expected.dtype), positions, real_expected[:, 0]
    )
    return sampled, true_expected, sampled_expected


# The losses in tf_sampling._core find their default sampler through this hook.
default_sampler_hook.register(loss_default)
