"""In-batch softmax for two-tower retrieval, with exact hit masking and the logQ correction.

Row ``i`` of the queries ``[B, d]`` scores every candidate column: the ``B``
in-batch candidates (its positive is column ``i``) and, optionally, ``M``
extra negatives shared by all rows (mixed negatives, a cross-batch memory,
other replicas' candidates). Each row's loss is a softmax cross-entropy over
the columns that are kept:

    z[i, j] = <q_i, c_j> / temperature - log p_j        (p_j: when given)
    loss_i  = w_i * (logsumexp_{j kept for row i} z[i, j] - z[i, i])

A column is dropped from row ``i`` (never column ``i`` itself) when it is an
accidental hit (its id equals row ``i``'s positive id), with query ids,
when it is another positive of row ``i``'s query in the batch, and, with
``known_positive_ids``, when its id is in row ``i``'s known positive set (a
variable number per row: e.g. every item the user interacted with). Dropped
columns get an exact ``-inf`` through ``tf.where`` (their softmax weight and
gradient are exactly zero); the kept diagonal keeps every row finite.

Pure TensorFlow: no Keras. The argument checks sit beside the loss.
"""

from __future__ import annotations

import numbers

import tensorflow as tf

from tf_sampling._core.label_sets import LabelSet, label_set, real_mask
from tf_sampling._core.sampled_values import check_expected_counts
from tf_sampling._core.xla import in_xla_context

__all__ = ["in_batch_softmax_loss", "removed_columns"]


# ----------------------------------------------------------------------------
# Argument checks.


def _check_embeddings(value, name: str) -> tf.Tensor:
    tensor = tf.convert_to_tensor(value)
    if not tensor.dtype.is_floating:
        raise TypeError(f"`{name}` must be a floating tensor, got dtype {tensor.dtype.name}.")
    if tensor.shape.rank is not None and tensor.shape.rank != 2:
        raise ValueError(f"`{name}` must have rank 2 ([rows, dim]), got shape {tensor.shape}.")
    return tensor


def _check_vector(value, name: str, length, length_text: str, kind: str) -> tf.Tensor:
    tensor = tf.convert_to_tensor(value)
    if kind == "ids" and not (tensor.dtype.is_integer or tensor.dtype == tf.string):
        raise TypeError(f"`{name}` must be integer or string ids, got dtype {tensor.dtype.name}.")
    if kind == "float" and not (tensor.dtype.is_floating or tensor.dtype.is_integer):
        raise TypeError(f"`{name}` must be real-valued, got dtype {tensor.dtype.name}.")
    if tensor.shape.rank is not None and tensor.shape.rank != 1:
        raise ValueError(f"`{name}` must have shape [{length_text}], got shape {tensor.shape}.")
    static = tensor.shape[0] if tensor.shape.rank == 1 else None
    if isinstance(length, int) and static is not None and static != length:
        raise ValueError(
            f"`{name}` must have shape [{length_text}] = [{length}], got shape {tensor.shape}."
        )
    return tensor


def _check_probability(value, name: str, length, length_text: str) -> tf.Tensor:
    tensor = _check_vector(value, name, length, length_text, "float")
    if in_xla_context():
        # The run-time check gathers the bad values (a dynamic shape XLA cannot compile).
        return tensor
    return check_expected_counts(value if not tf.is_tensor(value) else tensor, name)


def _check_temperature(temperature):
    if isinstance(temperature, bool) or not (
        isinstance(temperature, numbers.Real) or tf.is_tensor(temperature)
    ):
        raise TypeError(f"`temperature` must be a positive number, got {temperature!r}.")
    if isinstance(temperature, numbers.Real) and not (0 < temperature < float("inf")):
        raise ValueError(f"`temperature` must be a positive finite number, got {temperature!r}.")
    return temperature


def _same_id_dtype(a: tf.Tensor, b: tf.Tensor, name_a: str, name_b: str):
    """Ids compared with each other must both be strings or both integers (cast to int64)."""
    if (a.dtype == tf.string) != (b.dtype == tf.string):
        raise TypeError(
            f"`{name_a}` ({a.dtype.name}) and `{name_b}` ({b.dtype.name}) must both be "
            "strings or both integers."
        )
    if a.dtype != tf.string:
        return tf.cast(a, tf.int64), tf.cast(b, tf.int64)
    return a, b


def _compute_dtype(*tensors: tf.Tensor) -> tf.DType:
    # float16/bfloat16 logits lose the softmax's small terms: compute in float32.
    return tf.float64 if any(t.dtype == tf.float64 for t in tensors) else tf.float32


# ----------------------------------------------------------------------------
# Masking.


def _first_match(equal: tf.Tensor, size) -> tf.Tensor:
    """For each column of a bool ``[K, N]`` matrix, the first row that is True (``K`` if none)."""
    rows = tf.range(tf.shape(equal)[0])[:, None]
    return tf.reduce_min(tf.where(equal, rows, size), axis=0)


def _matches(
    positive_ids: tf.Tensor | None,
    column_ids: tf.Tensor | None,
    query_ids: tf.Tensor | None,
    column_query_ids: tf.Tensor | None,
) -> tf.Tensor | None:
    """``removed_columns`` with the diagonal left in (every rule matches it)."""
    if column_ids is None and column_query_ids is None:
        return None
    if column_query_ids is None:
        if in_xla_context():
            drop = tf.equal(positive_ids[:, None], column_ids[None, :])
        else:
            # Compare small int32 codes: a third of the int64 (or string) comparison's time.
            code = tf.unique(column_ids).idx
            drop = tf.equal(code[: tf.shape(positive_ids)[0], None], code[None, :])
    elif column_ids is None:
        drop = tf.equal(query_ids[:, None], column_query_ids[None, :])
    else:
        # Each (query, candidate) pair of the P positive columns is named by the
        # first column holding its query and the first holding its candidate;
        # a [P, P] table marks the pairs present. Row i drops column j when
        # the pair (its query, column j's item) is marked. Everything is
        # [B, N] or [P, N]: the cost of the logits, no [B, B, N] product.
        num_pairs = tf.shape(column_query_ids)[0]
        num_rows = tf.shape(query_ids)[0]
        query_rep = _first_match(
            tf.equal(column_query_ids[:, None], column_query_ids[None, :]), num_pairs
        )  # [P]: first positive column with the same query
        item_rep = _first_match(
            tf.equal(column_ids[:num_pairs, None], column_ids[None, :]), num_pairs
        )  # [N]: first positive column with the same item (P if none)
        pairs = tf.stack([query_rep, item_rep[:num_pairs]], axis=1)
        table = tf.scatter_nd(pairs, tf.ones([num_pairs], tf.int32), [num_pairs, num_pairs + 1])
        rows = tf.gather(table, query_rep[:num_rows])  # [B, P + 1]; column P: no such item
        drop = tf.gather(rows, item_rep, axis=1) > 0
    return drop


def removed_columns(
    positive_ids: tf.Tensor | None,
    column_ids: tf.Tensor | None,
    query_ids: tf.Tensor | None,
    column_query_ids: tf.Tensor | None,
) -> tf.Tensor | None:
    """Which columns each row drops: accidental hits and the query's other positives.

    Columns ``0..B-1`` are the in-batch candidates (row ``i``'s positive is
    column ``i``, never dropped); the first ``P >= B`` columns carry a query id
    (the in-batch ones, then any extra columns that are another device's
    positives). With ``B`` rows and ``N`` columns:

    * ids only: ``[i, j]`` is dropped when ``column_ids[j] == positive_ids[i]``.
    * query ids only: when column ``j < P`` belongs to row ``i``'s query.
    * both: when the pair ``(query_ids[i], column_ids[j])`` is one of the
      ``P`` (query, candidate) pairs of the batch, i.e. column ``j`` holds an
      item that row ``i``'s query has as a positive in this batch (this
      includes the accidental hits).

    Args:
      positive_ids: ``[B]`` ids of the rows' positives, or None.
      column_ids: ``[N]`` ids of every column (its first ``B`` are
        ``positive_ids``), or None.
      query_ids: ``[B]`` query ids of the rows, or None.
      column_query_ids: ``[P]`` query ids of the first ``P`` columns (its
        first ``B`` are ``query_ids``), or None.

    Returns:
      tf.Tensor: bool ``[B, N]`` (True: drop), with a False diagonal; None
      when neither ids nor query ids are given.
    """
    drop = _matches(positive_ids, column_ids, query_ids, column_query_ids)
    if drop is None:
        return None
    return drop & ~tf.eye(tf.shape(drop)[0], tf.shape(drop)[1], dtype=tf.bool)


def _known_positive_sets(value, batch) -> tuple[tf.Tensor, tf.Tensor | None, int | None]:
    """``known_positive_ids`` as int64 ``[B, K]`` ids, their real-slot mask (None: all real), padding id.

    Takes the package's label-set forms (``label_sets``): a ``tf.RaggedTensor``
    ``[B, (n_i)]``, a :class:`LabelSet` (``label_set(padded, padding_id=...,
    mask=...)``) or a dense ``[B, K]`` tensor whose every slot is real.
    ``allow_empty`` is not consulted: an empty set masks nothing extra.
    """
    name = "known_positive_ids"
    if isinstance(value, tf.RaggedTensor):
        if value.ragged_rank != 1 or value.shape.rank != 2:
            raise ValueError(
                f"`{name}` must be a [B, (n_i)] ragged tensor (one ragged dimension), got shape "
                f"{value.shape} with ragged_rank {value.ragged_rank}."
            )
        dtype = value.dtype
    elif isinstance(value, LabelSet):
        dtype = value.labels.dtype
    else:
        if isinstance(value, tf.SparseTensor):
            raise TypeError(
                f"`{name}` must be a dense, ragged or label_set tensor, got a SparseTensor."
            )
        value = tf.convert_to_tensor(value)
        dtype = value.dtype
    if not dtype.is_integer:
        raise TypeError(
            f"`{name}` must hold integer ids (strings: compare int64 keys, as the Keras layer "
            f"does), got dtype {dtype.name}."
        )
    if isinstance(value, tf.RaggedTensor):
        value = label_set(value)
    elif not isinstance(value, LabelSet):
        value = LabelSet(value, None, None, True)
    ids = value.labels
    if ids.shape.rank is not None and ids.shape.rank != 2:
        raise ValueError(f"`{name}` must have shape [B, K] (padded ids), got shape {ids.shape}.")
    rows = ids.shape[0] if ids.shape.rank == 2 else None
    if isinstance(batch, int) and rows is not None and rows != batch:
        raise ValueError(
            f"`{name}` must have one row per query: {batch} (the batch size of "
            f"`query_embeddings`), got shape {ids.shape}."
        )
    return tf.cast(ids, tf.int64), real_mask(value), value.padding_id


def _column_codes(column_ids: tf.Tensor, ids: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """int32 codes: equal ids get one code, ids no column holds get ``N``; ``[N]`` and ``ids``' shape.

    Outside XLA from ``tf.unique`` (the columns' ids come first, so their
    codes are the ``< N`` ones); under XLA, which has no ``Unique``, a code is
    the index of the first column holding the id, found by a stable sort.
    """
    num_columns = tf.shape(column_ids, out_type=tf.int32)[0]
    values = tf.concat([column_ids, tf.reshape(ids, [-1])], 0)
    if not in_xla_context():
        code = tf.unique(values, out_idx=tf.int32).idx
    else:
        order = tf.argsort(values, stable=True)  # a run of equal ids: its columns first
        ordered = tf.gather(values, order)
        starts = tf.concat([[True], ordered[1:] != ordered[:-1]], 0)
        run = tf.cumsum(tf.cast(starts, tf.int32)) - 1
        total = tf.shape(values)[0]
        first = tf.math.unsorted_segment_min(order, run, total)
        code_sorted = tf.minimum(tf.gather(first, run), num_columns)
        code = tf.scatter_nd(order[:, None], code_sorted, [total])
    slot_code = tf.minimum(tf.reshape(code[num_columns:], tf.shape(ids)), num_columns)
    return code[:num_columns], slot_code


def _known_positive_drop(ids: tf.Tensor, real: tf.Tensor | None, column_ids: tf.Tensor):
    """bool ``[B, N]``: column ``j``'s id is a real entry of row ``i`` of int64 ``ids [B, K]``.

    A bool table ``[N + 1 codes, B rows]`` of each row's entries, code-major
    so that reading it at the columns' codes gathers whole rows (a
    per-element gather along axis 1 costs about twice the gather and
    transpose); ids no column holds, and padded slots, go to the spare last
    code. No ``[B, N, K]`` comparison.
    """
    num_columns = tf.shape(column_ids, out_type=tf.int32)[0]
    shape = tf.shape(ids, out_type=tf.int32)
    column_code, slot_code = _column_codes(column_ids, ids)
    if real is not None:
        slot_code = tf.where(real, slot_code, num_columns)
    row = tf.broadcast_to(tf.range(shape[0])[:, None], shape)
    index = tf.reshape(tf.stack([slot_code, row], axis=2), [-1, 2])
    table = tf.tensor_scatter_nd_update(
        tf.zeros([num_columns + 1, shape[0]], tf.bool), index, tf.ones(tf.shape(index)[:1], tf.bool)
    )
    return tf.transpose(tf.gather(table, column_code))


def _softmax_loss_on_diagonal(logits: tf.Tensor, drop, diagonal_in_drop: bool) -> tf.Tensor:
    """``logsumexp`` of each row's kept columns minus its diagonal logit, with its exact gradient.

    ``drop`` (bool ``[B, N]`` or None) marks the columns left out; when
    ``diagonal_in_drop``, it also marks the diagonal, which is always kept:
    the diagonal enters as a separate term (no ``[B, N]`` identity built).
    Dropped columns get an exact ``-inf`` (``tf.where``): ``exp(-inf) = 0`` in
    the sum and in the gradient, and the kept diagonal keeps each row's
    maximum finite. The gradient is written out (``softmax - onehot``) to
    spare the passes over ``[B, N]`` that differentiating the ops would make.
    """
    inf = tf.constant(float("inf"), logits.dtype)

    @tf.custom_gradient
    def loss_fn(z):
        positive = tf.linalg.diag_part(z)
        masked = z
        if drop is not None:
            if drop.shape.rank == 2 and drop.shape[0] == 1 or in_xla_context():
                masked = tf.where(drop, -inf, z)
            else:
                # Same-shape Select: much faster on CPU than broadcasting a scalar.
                masked = tf.raw_ops.Select(condition=drop, x=tf.fill(tf.shape(z), -inf), y=z)
        top = tf.reduce_max(masked, axis=1)
        if diagonal_in_drop:
            top = tf.maximum(top, positive)
        top = tf.stop_gradient(top)
        exps = tf.exp(masked - top[:, None])
        total = tf.reduce_sum(exps, axis=1)
        own = tf.exp(positive - top)  # the diagonal's term
        if diagonal_in_drop:
            total = total + own
        loss = top + tf.math.log(total) - positive

        def grad(upstream):
            scale = upstream / total
            dz = exps * scale[:, None]
            # d loss_i / d z_ii = softmax_ii - 1
            return tf.linalg.set_diag(dz, own * scale - upstream)

        return loss, grad

    return loss_fn(logits)


# ----------------------------------------------------------------------------
# The loss.


def in_batch_softmax_loss(
    query_embeddings,
    candidate_embeddings,
    *,
    candidate_ids=None,
    candidate_sampling_probability=None,
    extra_negative_embeddings=None,
    extra_negative_ids=None,
    extra_negative_sampling_probability=None,
    extra_negative_query_ids=None,
    extra_negative_mask=None,
    query_ids=None,
    known_positive_ids=None,
    temperature=1.0,
    sample_weight=None,
    name: str = "in_batch_softmax_loss",
) -> tf.Tensor:
    """Per-example in-batch softmax loss of a two-tower model (positive of row ``i``: column ``i``).

    ``z[i, j] = <q_i, c_j> / temperature - log p_j`` over the columns
    ``[candidates (B), extra negatives (M)]``; ``loss_i = w_i *
    (logsumexp_j z[i, j] - z[i, i])`` with the dropped columns left out
    exactly (see :func:`removed_columns`). Half-precision inputs are computed
    in float32; the gradient is the exact one of this formula (zero for every
    dropped column). Runs eagerly, in ``tf.function`` and under
    ``jit_compile=True`` (integer ids there; the run-time probability check
    is skipped under XLA).

    Args:
      query_embeddings: float ``[B, d]``.
      candidate_embeddings: float ``[B, d]``; row ``i`` is row ``i``'s positive.
      candidate_ids: Optional int or string ``[B]``: ids of the candidates.
        When given, a column whose id equals row ``i``'s positive id (other
        than column ``i``) is removed from row ``i``.
      candidate_sampling_probability: Optional ``[B]`` (> 0): how likely each
        candidate is to be a column (e.g. a streaming estimate of its expected
        count per batch); its log is subtracted from the column's logit
        (the logQ correction, Yi et al. 2019).
      extra_negative_embeddings: Optional float ``[M, d]`` negatives shared by
        all rows.
      extra_negative_ids: ``[M]`` ids of the extra negatives; required with
        extra negatives when ``candidate_ids`` is given (so hits are removed
        there too), not allowed without it.
      extra_negative_sampling_probability: ``[M]`` (> 0); required with extra
        negatives exactly when ``candidate_sampling_probability`` is given.
      extra_negative_query_ids: Optional ``[M']`` query ids of the first
        ``M' <= M`` extra negatives, when those are positives of other
        queries (e.g. other replicas' in-batch candidates); used with
        ``query_ids``.
      extra_negative_mask: Optional bool ``[M]``: False leaves that extra
        negative out for every row (e.g. an unfilled memory slot).
      query_ids: Optional ``[B]`` query ids. When given, row ``i`` also drops
        every column holding a positive of its query in the batch.
      known_positive_ids: Optional known positive set of each row (e.g.
        every item the user interacted with, ``n_i`` of them): row ``i``
        drops every column ``j != i`` (in-batch or extra) whose id is in its
        set; column ``i`` is always kept, listed or not. Integer ids, in one
        of the label-set forms: a ``tf.RaggedTensor`` ``[B, (n_i)]`` (not
        compilable), ``nn.label_set(padded [B, K], padding_id=..., mask=...)``
        (fixed shapes, compiles under ``jit_compile=True``; padded slots match
        nothing), or a dense ``[B, K]`` tensor whose every slot is real. A row
        with an empty set masks nothing extra (``allow_empty`` is not
        consulted: here the set is optional extra information). Requires
        ``candidate_ids`` (the columns' ids; ``extra_negative_ids`` with
        extra negatives); a column whose id is the ``padding_id`` is an error
        unless ``extra_negative_mask`` leaves it out (checked at run time,
        not under XLA).
      temperature: positive float (or scalar tensor) dividing the scores.
      sample_weight: Optional ``[B]`` weights multiplying each row's loss.
      name: name scope.

    Returns:
      tf.Tensor: ``[B]`` per-example losses, float32 (float64 for float64
      inputs).

    Raises:
      TypeError, ValueError: for arguments of the wrong type, shape or value,
        naming the argument; tf.errors.InvalidArgumentError for a probability
        that is not positive and finite when it is only known at run time.
    """
    with tf.name_scope(name or "in_batch_softmax_loss"):
        queries = _check_embeddings(query_embeddings, "query_embeddings")
        candidates = _check_embeddings(candidate_embeddings, "candidate_embeddings")
        temperature = _check_temperature(temperature)
        batch = queries.shape[0] if queries.shape.rank == 2 else None
        dim = queries.shape[1] if queries.shape.rank == 2 else None
        if candidates.shape.rank == 2:
            for axis, what in ((0, "batch size"), (1, "dim")):
                mine = queries.shape[axis]
                theirs = candidates.shape[axis]
                if mine is not None and theirs is not None and mine != theirs:
                    raise ValueError(
                        f"`candidate_embeddings` must have the {what} of `query_embeddings` "
                        f"({mine}), got shape {candidates.shape}."
                    )
        has_extra = extra_negative_embeddings is not None
        extras = None
        num_extra = None
        if has_extra:
            extras = _check_embeddings(extra_negative_embeddings, "extra_negative_embeddings")
            num_extra = extras.shape[0] if extras.shape.rank == 2 else None
            theirs = extras.shape[1] if extras.shape.rank == 2 else None
            if dim is not None and theirs is not None and theirs != dim:
                raise ValueError(
                    f"`extra_negative_embeddings` must have dim {dim} (the queries'), got "
                    f"shape {extras.shape}."
                )
        else:
            for value, arg in (
                (extra_negative_ids, "extra_negative_ids"),
                (extra_negative_sampling_probability, "extra_negative_sampling_probability"),
                (extra_negative_query_ids, "extra_negative_query_ids"),
                (extra_negative_mask, "extra_negative_mask"),
            ):
                if value is not None:
                    raise ValueError(f"`{arg}` is given without `extra_negative_embeddings`.")
        if has_extra and (candidate_ids is None) != (extra_negative_ids is None):
            given = "candidate_ids" if candidate_ids is not None else "extra_negative_ids"
            raise ValueError(
                f"`{given}` is given without its counterpart: with extra negatives, pass both "
                "`candidate_ids` and `extra_negative_ids` (hits are removed in every column) "
                "or neither."
            )
        if has_extra and (candidate_sampling_probability is None) != (
            extra_negative_sampling_probability is None
        ):
            raise ValueError(
                "With extra negatives, pass both `candidate_sampling_probability` and "
                "`extra_negative_sampling_probability` (every column corrected) or neither; got "
                f"candidate_sampling_probability={'None' if candidate_sampling_probability is None else 'given'}"
                f", extra_negative_sampling_probability="
                f"{'None' if extra_negative_sampling_probability is None else 'given'}."
            )
        if extra_negative_query_ids is not None and query_ids is None:
            raise ValueError("`extra_negative_query_ids` is given without `query_ids`.")
        known = None
        if known_positive_ids is not None:
            if candidate_ids is None:
                raise ValueError(
                    "`known_positive_ids` is given without `candidate_ids`: the known "
                    "positives are matched by the columns' ids; got candidate_ids=None."
                )
            known = _known_positive_sets(known_positive_ids, batch)

        dtype = _compute_dtype(queries, candidates, *([extras] if has_extra else []))
        columns = tf.cast(candidates, dtype)
        if has_extra:
            columns = tf.concat([columns, tf.cast(extras, dtype)], axis=0)
        rows = tf.cast(queries, dtype)
        if not (isinstance(temperature, numbers.Real) and temperature == 1.0):
            rows = rows / tf.cast(temperature, dtype)  # [B, d], not the [B, N] logits

        if candidate_sampling_probability is not None:
            log_p = tf.math.log(
                tf.cast(
                    _check_probability(
                        candidate_sampling_probability,
                        "candidate_sampling_probability",
                        batch,
                        "B",
                    ),
                    dtype,
                )
            )
            if has_extra:
                extra_p = _check_probability(
                    extra_negative_sampling_probability,
                    "extra_negative_sampling_probability",
                    num_extra,
                    "M",
                )
                log_p = tf.concat([log_p, tf.math.log(tf.cast(extra_p, dtype))], 0)
            if not in_xla_context():
                # logits - log p as one more embedding dimension: [q, -1] . [c, log p],
                # so the correction costs no pass over the [B, N] logits (XLA fuses
                # the subtraction instead, and keeps the matmul's aligned width).
                rows = tf.concat([rows, -tf.ones_like(rows[:, :1])], 1)
                columns = tf.concat([columns, log_p[:, None]], 1)
                log_p = None
        else:
            log_p = None
        logits = tf.matmul(rows, columns, transpose_b=True)
        if log_p is not None:
            logits = logits - log_p[None, :]

        positive_ids = column_ids = None
        if candidate_ids is not None:
            positive_ids = _check_vector(candidate_ids, "candidate_ids", batch, "B", "ids")
            column_ids = positive_ids
            if has_extra:
                extra_ids = _check_vector(
                    extra_negative_ids, "extra_negative_ids", num_extra, "M", "ids"
                )
                positive_ids, extra_ids = _same_id_dtype(
                    positive_ids, extra_ids, "candidate_ids", "extra_negative_ids"
                )
                column_ids = tf.concat([positive_ids, extra_ids], 0)
            elif positive_ids.dtype != tf.string:
                positive_ids = column_ids = tf.cast(positive_ids, tf.int64)
        rows_query = column_query = None
        if query_ids is not None:
            rows_query = _check_vector(query_ids, "query_ids", batch, "B", "ids")
            column_query = rows_query
            if extra_negative_query_ids is not None:
                extra_query = _check_vector(
                    extra_negative_query_ids, "extra_negative_query_ids", None, "M'", "ids"
                )
                m_prime = extra_query.shape[0]
                if m_prime is not None and num_extra is not None and m_prime > num_extra:
                    raise ValueError(
                        f"`extra_negative_query_ids` must have at most M = {num_extra} entries, "
                        f"got shape {extra_query.shape}."
                    )
                rows_query, extra_query = _same_id_dtype(
                    rows_query, extra_query, "query_ids", "extra_negative_query_ids"
                )
                column_query = tf.concat([rows_query, extra_query], 0)
            elif rows_query.dtype != tf.string:
                rows_query = column_query = tf.cast(rows_query, tf.int64)

        out = None  # bool [N]: columns left out of every row (masked extra negatives)
        if extra_negative_mask is not None:
            keep = _check_vector(extra_negative_mask, "extra_negative_mask", num_extra, "M", "bool")
            if keep.dtype != tf.bool:
                raise TypeError(
                    f"`extra_negative_mask` must be boolean, got dtype {keep.dtype.name}."
                )
            out = tf.concat([tf.zeros([tf.shape(candidates)[0]], tf.bool), ~keep], 0)

        drop = None
        if known is None or rows_query is not None:
            drop = _matches(positive_ids, column_ids, rows_query, column_query)
        if known is not None:
            if column_ids.dtype == tf.string:
                raise TypeError(
                    "`known_positive_ids` needs integer `candidate_ids` (and "
                    "`extra_negative_ids`), got strings."
                )
            known_ids, real, padding_id = known
            asserts = []
            if not in_xla_context():
                asserts.append(
                    tf.debugging.assert_equal(
                        tf.shape(known_ids)[0],
                        tf.shape(queries)[0],
                        message="`known_positive_ids` must have one row per query (the batch "
                        "size of `query_embeddings`)",
                    )
                )
                if padding_id is not None:
                    # A column left out of every row may hold any id (e.g. an
                    # unfilled memory slot).
                    present = column_ids if out is None else tf.boolean_mask(column_ids, ~out)
                    asserts.append(
                        tf.debugging.assert_none_equal(
                            present,
                            tf.constant(padding_id, tf.int64),
                            message=f"`known_positive_ids`' padding_id={padding_id} is the id of "
                            "a column; pick a padding id that no candidate has",
                        )
                    )
            # Each row's own positive id joins its set: one table gives the
            # accidental hits too, and marks the diagonal (diagonal_in_drop).
            with tf.control_dependencies(asserts):
                known_ids = tf.concat([known_ids, positive_ids[:, None]], 1)
                if real is not None:
                    real = tf.concat([real, tf.ones([tf.shape(real)[0], 1], tf.bool)], 1)
                known_drop = _known_positive_drop(known_ids, real, column_ids)
            drop = known_drop if drop is None else drop | known_drop
        diagonal_in_drop = drop is not None
        if query_ids is not None and candidate_ids is None and has_extra:
            # Query ids cover only the columns that carry one; the rest are kept.
            width = tf.shape(logits)[1] - tf.shape(drop)[1]
            drop = tf.pad(drop, [[0, 0], [0, width]])
        if out is not None:
            drop = out[None, :] if drop is None else drop | out[None, :]
        loss = _softmax_loss_on_diagonal(logits, drop, diagonal_in_drop)
        if sample_weight is not None:
            weight = _check_vector(sample_weight, "sample_weight", batch, "B", "float")
            loss = loss * tf.cast(weight, dtype)
        return loss
