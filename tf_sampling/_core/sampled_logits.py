"""The one private core every sampled loss goes through.

Given the class table, the labels and the inputs, it samples (or takes the
caller's) candidate classes and returns the logits of the true and the sampled
classes, corrected exactly as TensorFlow's ``_compute_sampled_logits`` does.
Differences from TensorFlow's core, all invisible in the numbers:

* it computes in float32 (float64 if any operand is float64), so float16 and
  bfloat16 inputs or weights work and give a float32-accurate loss;
* accidental hits get ``-FLT_MAX`` once, never twice (TF's sum reaches
  ``-inf`` when a row repeats a true class);
* sharded tables are gathered shard by shard (see ``sharding``).
"""

from __future__ import annotations

import tensorflow as tf

from tf_sampling._core import (
    accidental_hits,
    checks,
    default_sampler,
    loss_args,
    sampler_args,
    sharding,
    xla,
)
from tf_sampling._core.sampled_values import check_sampled_values

# The masking value TF uses, whatever the compute dtype.
_FLOAT32_MIN = float(tf.float32.min)

# Up to this many sampled classes, fewer and simpler kernels run fastest; above
# it, fused ones do (measured with bench/bench_losses.py on CPU).
SMALL_NUM_SAMPLED = 256


# Under XLA, the gradient of the sampled rows contracts the logits' gradient
# over its major (batch) axis; XLA's CPU dot runs that transposed operand 1.6
# to 1.8x slower than TensorFlow's kernel, while row-major dots run faster
# (bench/bench_compiled.py --pieces). Off: XLA's own dot (for the benchmark).
XLA_TRANSPOSED_BACKWARD = True


def _opaque_transpose(t: tf.Tensor) -> tf.Tensor:
    """``tf.transpose(t)`` materialized: XLA cannot fold it into the consumer dot.

    Both branches are the same transpose, so the value is ``t``'s transpose
    whatever the (data-dependent) predicate, NaNs included; the conditional
    only hides the transpose from XLA's transpose folding (a speed matter
    only: were XLA to see through it, the result would be the same).
    """
    corner = t[:1, :1]
    return tf.cond(
        tf.reduce_all(tf.equal(corner, corner)), lambda: tf.transpose(t), lambda: tf.transpose(t)
    )


@tf.custom_gradient
def _xla_logits_matmul(x: tf.Tensor, sampled_w: tf.Tensor):
    """``x @ sampled_w^T`` whose gradient of ``sampled_w`` is a row-major dot (for XLA)."""

    def grad(upstream):
        return tf.matmul(upstream, sampled_w), tf.matmul(_opaque_transpose(upstream), x)

    return tf.matmul(x, sampled_w, transpose_b=True), grad


def compute_dtype(*dtypes: tf.DType) -> tf.DType:
    """The dtype sampled logits are computed in: float64 if any operand is, else float32."""
    return tf.float64 if tf.float64 in dtypes else tf.float32


def compute_sampled_logits(
    weights,
    biases,
    labels,
    inputs,
    num_sampled: int,
    num_classes: int,
    num_true: int = 1,
    sampled_values=None,
    subtract_log_q: bool = True,
    remove_accidental_hits: bool = False,
    partition_strategy: str = "mod",
    seed: int | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Computes the logits of the true and the sampled classes.

    Args:
      weights: ``[num_classes, dim]`` table (tensor, variable, list of shards,
        ``PartitionedVariable`` or ``ShardedVariable``).
      biases: ``[num_classes]`` table, sharded like ``weights``.
      labels: integer ``[batch_size, num_true]`` (or ``[batch_size]`` when
        ``num_true`` is 1) target classes.
      inputs: float ``[batch_size, dim]`` activations (float16, bfloat16,
        float32 or float64).
      num_sampled: int, number of classes sampled per batch.
      num_classes: int, number of classes.
      num_true: int, number of target classes per example.
      sampled_values: Optional ``(sampled [num_sampled], true_expected_count
        [batch_size, num_true], sampled_expected_count [num_sampled])``; the
        counts may be of any shape that broadcasts to those (e.g.
        ``[batch_size, 1]`` true counts), and must be positive and finite.
        Default: draws from ``tf.random.log_uniform_candidate_sampler`` (unique).
      subtract_log_q: Whether to subtract the log expected counts.
      remove_accidental_hits: Whether to mask sampled classes that equal one of
        the example's true classes.
      partition_strategy: ``"mod"`` or ``"div"`` for sharded tables.
      seed: Op-level seed of the default sampler.

    Returns:
      tuple: ``true_logits [batch_size, num_true]`` and ``sampled_logits
      [batch_size, num_sampled]``, both in :func:`compute_dtype`, where
      ``num_sampled`` is the length of the given candidates when it differs
      (TensorFlow ignores ``num_sampled`` then; a warning says so). Under XLA,
      the rows of out-of-range labels (all rows, for out-of-range candidates)
      are NaN: the asserts that catch them elsewhere are dropped there.
    """
    num_true = checks.check_int(num_true, "num_true")
    num_classes = checks.check_int(num_classes, "num_classes")
    num_sampled = loss_args.check_num_sampled(
        num_sampled, num_classes, unique=sampled_values is None
    )
    loss_args.check_partition_strategy(partition_strategy)
    remove_accidental_hits = checks.check_flag(remove_accidental_hits, "remove_accidental_hits")
    seed = sampler_args.check_seed(seed)
    inputs = loss_args.check_inputs(inputs)
    weight_table, bias_table = sharding.class_tables(
        weights, biases, inputs, num_classes, partition_strategy
    )
    batch_size = loss_args.static_or_dynamic_batch_size(inputs)
    labels = loss_args.normalize_labels(
        labels, num_true, num_classes, batch_size, check_range=False
    )

    if sampled_values is None:
        # TensorFlow's log-uniform sampler, or under XLA (where it has no
        # kernel) the compilable one of the same distribution.
        sampled, true_expected, sampled_expected = default_sampler.sampled_values(
            "log_uniform", labels, num_true, num_sampled, num_classes, seed
        )
    else:
        sampled, true_expected, sampled_expected = check_sampled_values(
            sampled_values, num_sampled, num_true, num_classes, batch_size, subtract_log_q
        )
    sampled = tf.stop_gradient(tf.cast(sampled, tf.int64))
    # The candidates' length wins over `num_sampled` (TensorFlow's rule).
    num_sampled = sampled.shape[0] if sampled.shape[0] is not None else num_sampled
    # Checked after sampling: the sampler only reads the labels' values, so it
    # need not wait for the check; the lookups below do.
    labels = checks.assert_in_range(labels, num_classes, "labels")

    dtype = compute_dtype(inputs.dtype, weight_table.dtype)
    x = tf.cast(inputs, dtype)
    if xla.in_xla_context():
        # The range asserts are dropped here: rows with a bad label (and every
        # row, for a bad candidate) become NaN instead of a plausible loss,
        # and the lookups read row 0 for the bad ids.
        bad_rows = xla.out_of_range_rows(labels, num_classes)
        bad_sampled = (sampled < 0) | (sampled >= num_classes)
        bad_rows |= tf.reduce_any(bad_sampled)
        x = xla.nan_rows(x, bad_rows)
        labels = tf.where((labels < 0) | (labels >= num_classes), tf.zeros([], tf.int64), labels)
        sampled = tf.where(bad_sampled, tf.zeros([], tf.int64), sampled)
    labels_flat = tf.reshape(labels, [-1])
    # Separate lookups for true and sampled ids: measured faster than one
    # lookup of the concatenated ids split apart (no concat, split, or
    # concatenated gradient); the gradient code still joins the two into
    # one IndexedSlices per table, eagerly and in graphs.
    true_w = tf.cast(weight_table.gather(labels_flat), dtype)
    sampled_w = tf.cast(weight_table.gather(sampled), dtype)
    true_b = tf.cast(bias_table.gather(labels_flat), dtype)
    sampled_b = tf.cast(bias_table.gather(sampled), dtype)

    if num_true == 1:
        true_dots = tf.reduce_sum(x * true_w, axis=1, keepdims=True)
    else:
        dim = weight_table.row_shape[0]
        true_w = tf.reshape(true_w, [-1, num_true, dim if dim is not None else tf.shape(true_w)[1]])
        true_dots = tf.reduce_sum(tf.expand_dims(x, 1) * true_w, axis=2)
    true_offset = tf.reshape(true_b, [-1, num_true])
    sampled_offset = sampled_b
    per_example_log_q = None
    if subtract_log_q:
        # The true counts broadcast against [batch, num_true] (checked: never
        # growing it). The sampled ones are folded into the [num_sampled]
        # offset first: one pass over the [batch, num_sampled] logits instead
        # of two; per-example ones (rank 2, as TF allows) are subtracted after.
        true_offset -= tf.math.log(tf.stop_gradient(tf.cast(true_expected, dtype)))
        sampled_log_q = tf.math.log(tf.stop_gradient(tf.cast(sampled_expected, dtype)))
        if sampled_log_q.shape.rank == 2:
            per_example_log_q = sampled_log_q
        else:
            sampled_offset -= sampled_log_q
    true_logits = true_dots + true_offset
    if XLA_TRANSPOSED_BACKWARD and accidental_hits.in_xla_context():
        sampled_logits = _xla_logits_matmul(x, sampled_w)
    else:
        sampled_logits = tf.matmul(x, sampled_w, transpose_b=True)
    if num_sampled <= SMALL_NUM_SAMPLED:
        sampled_logits += sampled_offset
    else:
        # bias_add lets grappler fuse it into the matmul (slower on tiny shapes).
        sampled_logits = tf.nn.bias_add(sampled_logits, sampled_offset)
    if per_example_log_q is not None:
        sampled_logits -= per_example_log_q

    if remove_accidental_hits and accidental_hits.in_xla_context():
        # TF's op has no XLA kernel: the same hits as a [batch, num_sampled]
        # mask of plain ops, and the same penalty (slower than TF's op when not
        # compiled, bench/bench_compiled.py; XLA fuses it into the logits).
        hits = accidental_hits.accidental_hit_mask(labels, sampled, num_true)
        sampled_logits += tf.where(hits, tf.constant(_FLOAT32_MIN, dtype), tf.constant(0.0, dtype))
    elif remove_accidental_hits:
        # TF's CPU op finds the (row, position) pairs in O(batch * num_true); a
        # class sampled twice is masked at its last position only, as in TF.
        rows, positions, _ = tf.nn.compute_accidental_hits(labels, sampled, num_true=num_true)
        hit_index = tf.stack([rows, tf.cast(positions, tf.int32)], 1)
        # Adding a huge negative keeps the gradient an identity. Scatter-min,
        # unlike TF's add, cannot reach -inf when a row repeats a true class.
        penalty = tf.tensor_scatter_nd_min(
            tf.zeros_like(sampled_logits),
            hit_index,
            tf.fill(tf.shape(rows), tf.constant(_FLOAT32_MIN, dtype)),
        )
        sampled_logits += penalty
    return true_logits, sampled_logits
