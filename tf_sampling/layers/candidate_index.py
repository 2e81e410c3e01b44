"""``CandidateIndex``: exact top-k retrieval over a whole candidate table, in bounded memory.

A two-tower model scores a query against a candidate by a dot product of
their embeddings. The index holds the candidates' embeddings ``[N, dim]`` and
their ids (int64 or string) and returns, for each query, the ``k`` best
candidates over all ``N``, exactly: the same ids and scores as
``tf.math.top_k(queries @ embeddings^T, k)`` (ties to the lower position), but
scanned in row blocks (``tf_sampling._core.block_top_k``), so the
``[queries, N]`` score matrix never exists.

Memory, beyond the table:

* **Building** (``index``, ``index_from_dataset``) writes each batch into the
  preallocated table in place: one batch of embeddings at a time, never a
  second table. Rebuilding with the same ``N`` reuses the table; with another
  ``N`` the old one is freed first. The id lookup for exclusions adds 12 bytes
  per candidate.
* **Searching** holds a block of scores ``[queries, chunk_size]`` and, with
  bfloat16/float16 storage, a float32 copy of a block of rows.

While a rebuild runs (or after one failed), searches raise an error instead
of mixing two tables.
"""

from __future__ import annotations

import numbers

import keras
import numpy as np
import tensorflow as tf

from tf_sampling._core import checks, loss_args
from tf_sampling._core.block_top_k import (
    STORAGE_DTYPES,
    auto_chunk_size,
    auto_parallel_iterations,
    block_top_k,
)
from tf_sampling._core.candidate_keys import excluded_pairs, sorted_keys

# Rows written per step by `index(embeddings)`.
DEFAULT_WRITE_BATCH = 65536


def _storage_dtype(value) -> tf.DType:
    try:
        dtype = tf.as_dtype(value)
    except TypeError:
        dtype = None
    if dtype not in STORAGE_DTYPES:
        raise ValueError(
            "`storage_dtype` must be 'float32', 'bfloat16' or 'float16', got "
            f"storage_dtype={value!r}."
        )
    return dtype


def _ids_dtype(dtype) -> tf.DType:
    """int64 for integer ids, string for strings; anything else is a TypeError."""
    dtype = tf.as_dtype(dtype)
    if dtype == tf.string:
        return tf.string
    if dtype.is_integer:
        return tf.int64
    raise TypeError(f"`ids` must be integers or strings, got dtype {dtype.name}.")


def _as_ids(ids, count: int) -> tf.Tensor:
    """``ids`` as an int64 or string tensor ``[count]``."""
    if isinstance(ids, (tf.RaggedTensor, tf.SparseTensor)):
        raise TypeError(f"`ids` must be a dense [N] tensor, got {type(ids).__name__}.")
    if not tf.is_tensor(ids):
        array = np.asarray(ids)
        if array.dtype.kind in "USO":
            array = array.astype(bytes)
        ids = tf.convert_to_tensor(array)
    ids = tf.cast(ids, _ids_dtype(ids.dtype))
    if ids.shape.rank != 1 or ids.shape[0] != count:
        raise ValueError(
            f"`ids` must have shape [{count}] (one id per embedding), got shape {ids.shape}."
        )
    return ids


class _CandidateTable(tf.Module):
    """The index's variables: embeddings, ids, the sorted id keys, and the finished count.

    Every variable has a dynamic first dimension, so a rebuild with another
    ``N`` keeps the same variables (and the functions traced on them).
    """

    def __init__(self, dim: int, storage_dtype: tf.DType, ids_dtype: tf.DType):
        super().__init__(name="candidate_table")
        self.dim, self.storage_dtype, self.ids_dtype = dim, storage_dtype, ids_dtype

        def empty(shape, dtype, name):
            return tf.Variable(
                tf.zeros([0, *shape[1:]], dtype),
                shape=tf.TensorShape(shape),
                trainable=False,
                name=name,
            )

        self.embeddings = empty([None, dim], storage_dtype, "embeddings")
        self.ids = empty([None], ids_dtype, "ids")
        self.keys = empty([None], tf.int64, "sorted_keys")
        self.key_rows = empty([None], tf.int32, "sorted_key_rows")
        # N once a build finished, 0 while one runs or after one failed.
        self.count = tf.Variable(tf.constant(0, tf.int64), trainable=False, name="count")
        self._allocate = tf.function(
            self._allocate_fn, input_signature=[tf.TensorSpec([], tf.int32)]
        )
        self._write = tf.function(
            self._write_fn,
            input_signature=[
                tf.TensorSpec([], tf.int32),
                tf.TensorSpec([None, dim], storage_dtype),
                tf.TensorSpec([None], ids_dtype),
            ],
        )

    def rows(self) -> int:
        # The variable's own shape op: no read of the table.
        return int(tf.shape(self.embeddings)[0])

    def _allocate_fn(self, n):
        # Created inside the function, the new buffers have no other owner, so
        # the variables adopt them rather than copy; `Empty` leaves the
        # embeddings' pages untouched until a batch is written there.
        self.embeddings.assign(
            tf.raw_ops.Empty(shape=tf.stack([n, self.dim]), dtype=self.storage_dtype, init=False)
        )
        self.ids.assign(tf.zeros(tf.reshape(n, [1]), self.ids_dtype))

    def _write_fn(self, start, embeddings, ids):
        # The raw op, not `variable[a:b].assign`: that one also reads the
        # variable, and a live read makes the update copy the whole table.
        end = tf.reshape(start + tf.shape(embeddings)[0], [1])
        begin = tf.reshape(start, [1])
        for variable, value in ((self.embeddings, embeddings), (self.ids, ids)):
            tf.raw_ops.ResourceStridedSliceAssign(
                ref=variable.handle, begin=begin, end=end, strides=[1], value=value
            )

    def resize(self, n: int) -> None:
        """Makes room for ``n`` rows (contents undefined), freeing the old rows first."""
        self.count.assign(0)
        if self.rows() == n:
            return
        self.embeddings.assign(tf.zeros([0, self.dim], self.storage_dtype))
        self.ids.assign(tf.zeros([0], self.ids_dtype))
        self._allocate(tf.constant(n, tf.int32))

    def write(self, start: int, embeddings: tf.Tensor, ids: tf.Tensor) -> None:
        self._write(tf.constant(start, tf.int32), embeddings, ids)

    def finish(self, n: int) -> None:
        """Sorts the id keys (for exclusions) and marks the table complete."""
        # A slice update leaves a variable copying itself on every read (so
        # that sparse updates need not copy it): a whole table per search.
        # Nothing reads it while it is built, so reads may alias it again.
        for variable in (self.embeddings, self.ids):
            tf.raw_ops.DisableCopyOnRead(resource=variable.handle)
        keys, rows = sorted_keys(self.ids.read_value())
        self.keys.assign(keys)
        self.key_rows.assign(rows)
        self.count.assign(n)


def embed_with(tower, features):
    """``features`` through a tower: the candidate tower of a build, the query model of serving.

    A Keras layer or model runs in inference mode (``training=False``), any
    other callable as it is; None returns ``features`` themselves.
    """
    if tower is None:
        return features
    if isinstance(tower, keras.layers.Layer):
        return tower(features, training=False)
    return tower(features)


class CandidateIndex(keras.layers.Layer):
    """Exact top-k candidates for each query over a whole candidate table.

    Build it with :meth:`index` (embeddings in memory) or
    :meth:`index_from_dataset` (a candidate tower over a ``tf.data`` dataset),
    then call it on queries. Rebuild it the same way after more training.

    Args:
      query_model: Optional Keras layer/model (or callable) turning the raw
        query features given to ``call`` into query embeddings ``[q, dim]``;
        without one, ``call`` takes the embeddings.
      k: int >= 1, the default number of candidates returned.
      chunk_size: Optional int, candidates per block (default: the largest
        multiple of 128 keeping a block of scores within 2^25 elements, see
        ``tf_sampling._core.block_top_k.auto_chunk_size``).
      storage_dtype: ``"float32"`` (default), ``"bfloat16"`` or ``"float16"``:
        how the embeddings are stored. Reduced precision halves the table and
        the bytes each search reads; scores are still float32 products of the
        float32 queries with the stored (rounded) embeddings.
      padding_id: The id of empty result slots and of padding in a dense
        ``exclude``: default -1 for integer ids, ``""`` for string ids.
      parallel_iterations: Optional int >= 1, blocks scanned at once (each
        holds its block of scores); default 2 when two blocks of scores fit
        in 2^25 elements (e.g. a few queries: one query's product and top-k
        each keep one core busy), else 1.
      **kwargs: Keras ``Layer`` arguments (``name``, ...).

    Call arguments:
      queries: The query model's input, or float query embeddings ``[q, dim]``.
      k: Optional int in ``[1, N]`` (default: the layer's ``k``).
      exclude: Optional per-query ids to leave out before the top-k, e.g. each
        user's training positives: ``[q, e]`` padded with ``padding_id``, or a
        ``tf.RaggedTensor`` ``[q, (e_i)]``. Ids absent from the index are
        ignored. A query with fewer than ``k`` candidates left gets empty
        slots (score -inf, id ``padding_id``) at the end.

    Returns:
      tuple: ``(scores, ids)``, both ``[q, k]``, best first: float32 dot
      products and the candidates' ids (int64 or string).
    """

    def __init__(
        self,
        query_model=None,
        k: int = 10,
        chunk_size: int | None = None,
        storage_dtype="float32",
        padding_id=None,
        parallel_iterations: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if query_model is not None and not callable(query_model):
            raise TypeError(f"`query_model` must be callable, got {query_model!r}.")
        self.query_model = query_model
        self.k = checks.check_int(k, "k")
        self.chunk_size = loss_args.check_chunk_size(chunk_size)
        self.storage_dtype = _storage_dtype(storage_dtype)
        self.parallel_iterations = (
            None
            if parallel_iterations is None
            else checks.check_int(parallel_iterations, "parallel_iterations")
        )
        if padding_id is not None and not isinstance(padding_id, (numbers.Integral, str, bytes)):
            raise TypeError(f"`padding_id` must be an int or a string, got {padding_id!r}.")
        self._padding_id = padding_id
        self._table: _CandidateTable | None = None
        self._num_candidates = 0
        self.built = True

    # ------------------------------------------------------------------ state
    @property
    def num_candidates(self) -> int:
        """The number of candidates indexed (0 before a build finished)."""
        return self._num_candidates

    @property
    def dim(self) -> int | None:
        """The embedding width, once indexed."""
        return None if self._table is None else self._table.dim

    @property
    def ids_dtype(self) -> tf.DType | None:
        """``tf.int64`` or ``tf.string``, once indexed."""
        return None if self._table is None else self._table.ids_dtype

    @property
    def padding_id(self):
        """The id of empty slots (and of padding in a dense ``exclude``)."""
        if self._padding_id is not None:
            return self._padding_id
        return b"" if self.ids_dtype == tf.string else -1

    @property
    def variables_to_save(self) -> list[tf.Variable]:
        """The index's variables (embeddings, ids, sorted keys, count), e.g. for an export."""
        self._require_table()
        t = self._table
        return [t.embeddings, t.ids, t.keys, t.key_rows, t.count]

    def _table_for(self, dim: int, ids_dtype: tf.DType) -> _CandidateTable:
        """The table, (re)created when the width or the id type changes."""
        if ids_dtype == tf.string and isinstance(self._padding_id, numbers.Integral):
            raise TypeError(f"`padding_id` {self._padding_id!r} is an int but the ids are strings.")
        if ids_dtype != tf.string and isinstance(self._padding_id, (str, bytes)):
            raise TypeError(
                f"`padding_id` {self._padding_id!r} is a string but the ids are integers."
            )
        t = self._table
        if t is None or t.dim != dim or t.ids_dtype != ids_dtype:
            self._table = None  # frees the old table before allocating the new one
            self._search_fn = None
            self._table = _CandidateTable(dim, self.storage_dtype, ids_dtype)
        return self._table

    def _require_table(self) -> _CandidateTable:
        if self._table is None or self._num_candidates == 0:
            raise ValueError(
                "The CandidateIndex holds no candidates: call index() or index_from_dataset() "
                "first (a build that failed leaves it empty)."
            )
        return self._table

    # --------------------------------------------------------------- building
    def index(self, embeddings, ids=None, batch_size: int = DEFAULT_WRITE_BATCH):
        """Builds (or rebuilds) the index from candidate embeddings in memory.

        Args:
          embeddings: float ``[N, dim]`` array or tensor, N >= 1. Written into
            the table ``batch_size`` rows at a time (cast to the storage dtype).
          ids: Optional ``[N]`` int or string ids (default: the positions
            0..N-1 as int64).
          batch_size: int, rows written per step.

        Returns:
          CandidateIndex: ``self``.

        Raises:
          ValueError, TypeError: wrong shape or dtype, empty table, or a number
            of ids that differs from the number of embeddings. Nothing changes.
        """
        if not tf.executing_eagerly():
            raise RuntimeError("CandidateIndex.index() runs eagerly, not inside a tf.function.")
        batch_size = checks.check_int(batch_size, "batch_size")
        if isinstance(embeddings, (tf.RaggedTensor, tf.SparseTensor)):
            raise TypeError(f"`embeddings` must be dense, got {type(embeddings).__name__}.")
        if not tf.is_tensor(embeddings) and not isinstance(embeddings, np.ndarray):
            embeddings = np.asarray(embeddings)
        shape = tuple(embeddings.shape)
        if tf.is_tensor(embeddings) and None in shape and len(shape) == 2:
            shape = tuple(int(s) for s in tf.shape(embeddings))  # e.g. another index's table
        dtype = tf.as_dtype(embeddings.dtype)
        if len(shape) != 2 or shape[1] is None or shape[1] < 1:
            raise ValueError(f"`embeddings` must have shape [N, dim], got shape {shape}.")
        if not dtype.is_floating:
            raise TypeError(f"`embeddings` must be floating-point, got dtype {dtype.name}.")
        n, dim = int(shape[0]), int(shape[1])
        if n == 0:
            raise ValueError("`embeddings` is empty (shape [0, dim]): an index needs candidates.")
        ids = tf.range(n, dtype=tf.int64) if ids is None else _as_ids(ids, n)
        table = self._start_build(n, dim, ids.dtype)
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            rows = tf.cast(tf.convert_to_tensor(embeddings[start:stop]), self.storage_dtype)
            table.write(start, rows, ids[start:stop])
        return self._finish_build(n)

    def index_from_dataset(self, candidate_tower, dataset: tf.data.Dataset, num_candidates=None):
        """Builds (or rebuilds) the index by running a candidate tower over a dataset.

        Holds the table and one batch: each batch's embeddings are written
        into the table in place, never concatenated.

        Args:
          candidate_tower: Keras model/layer (called with ``training=False``)
            or callable from a batch of candidate features to float
            embeddings ``[batch, dim]``; None when the dataset yields
            embeddings.
          dataset: ``tf.data.Dataset`` of batches, each ``(ids, features)``
            (ids ``[batch]`` int or string) or ``features`` alone (the ids are
            then the positions 0..N-1).
          num_candidates: Optional int, the total number of candidates. When
            None the dataset is read once more beforehand to count them (the
            tower does not run in that pass).

        Returns:
          CandidateIndex: ``self``.

        Raises:
          ValueError, TypeError: bad elements, an empty dataset, embeddings of
            another width than the first batch's, or a count that differs
            from ``num_candidates``. A failure while writing leaves the index
            empty (searches raise) until a build finishes.
        """
        if not tf.executing_eagerly():
            raise RuntimeError(
                "CandidateIndex.index_from_dataset() runs eagerly, not inside a tf.function."
            )
        if not isinstance(dataset, tf.data.Dataset):
            raise TypeError(f"`dataset` must be a tf.data.Dataset, got {type(dataset).__name__}.")
        if candidate_tower is not None and not callable(candidate_tower):
            raise TypeError(f"`candidate_tower` must be callable or None, got {candidate_tower!r}.")
        spec = dataset.element_spec
        with_ids = isinstance(spec, tuple) and len(spec) == 2
        if with_ids:
            ids_spec = spec[0]
            if not isinstance(ids_spec, tf.TensorSpec) or ids_spec.shape.rank not in (None, 1):
                raise ValueError(
                    "`dataset` elements must be (ids [batch], features) or features; got ids "
                    f"spec {ids_spec}."
                )
            ids_dtype = _ids_dtype(ids_spec.dtype)
        else:
            ids_dtype = tf.int64

        def batch_rows(element):
            first = element[0] if with_ids else tf.nest.flatten(element)[0]
            return tf.cast(tf.shape(first)[0], tf.int64)

        if num_candidates is None:
            n = int(
                dataset.reduce(tf.constant(0, tf.int64), lambda total, e: total + batch_rows(e))
            )
        else:
            n = checks.check_int(num_candidates, "num_candidates")
        if n == 0:
            raise ValueError("`dataset` holds no candidates: an index needs at least one.")

        def embed(features):
            out = tf.convert_to_tensor(embed_with(candidate_tower, features))
            if out.shape.rank != 2 or not out.dtype.is_floating:
                raise ValueError(
                    "The candidate tower must return float embeddings [batch, dim], got "
                    f"{out.dtype.name} {out.shape}."
                )
            return out

        table = None
        start = 0
        for element in dataset:
            ids, features = element if with_ids else (None, element)
            rows = embed(features)
            count = int(tf.shape(rows)[0])
            ids = (
                tf.range(start, start + count, dtype=tf.int64)
                if ids is None
                else tf.cast(ids, tf.int64)
                if ids.dtype != tf.string
                else ids
            )
            if int(tf.shape(ids)[0]) != count:
                self._abandon_build()
                raise ValueError(
                    f"A batch holds {int(tf.shape(ids)[0])} ids but {count} embeddings, at "
                    f"candidate {start}."
                )
            if table is None:
                table = self._start_build(n, int(rows.shape[1]), ids_dtype)
            elif int(rows.shape[1]) != table.dim:
                self._abandon_build()
                raise ValueError(
                    f"Embeddings of width {int(rows.shape[1])} at candidate {start}, but the first "
                    f"batch's width is {table.dim}."
                )
            if start + count > n:
                self._abandon_build()
                raise ValueError(f"`dataset` holds more than num_candidates={n} candidates.")
            table.write(start, tf.cast(rows, self.storage_dtype), ids)
            start += count
        if table is None or start != n:
            self._abandon_build()
            raise ValueError(
                f"`dataset` held {start} candidates, expected {n}"
                + (" (num_candidates)." if num_candidates is not None else " (its first pass).")
            )
        return self._finish_build(n)

    def _start_build(self, n: int, dim: int, ids_dtype: tf.DType) -> _CandidateTable:
        if n >= 2**31:
            raise ValueError(f"An index holds fewer than 2^31 candidates, got {n}.")
        table = self._table_for(dim, ids_dtype)
        self._num_candidates = 0
        table.resize(n)
        return table

    def _abandon_build(self) -> None:
        self._num_candidates = 0
        if self._table is not None:
            self._table.count.assign(0)

    def _finish_build(self, n: int):
        self._table.finish(n)
        self._num_candidates = n
        return self

    # -------------------------------------------------------------- searching
    def _check_queries(self, queries) -> tf.Tensor:
        table = self._require_table()
        if isinstance(queries, (tf.RaggedTensor, tf.SparseTensor)):
            raise TypeError(f"`queries` must be dense, got {type(queries).__name__}.")
        queries = tf.convert_to_tensor(queries)
        if not queries.dtype.is_floating:
            raise TypeError(
                f"Query embeddings must be floating-point, got dtype {queries.dtype.name}."
            )
        if queries.shape.rank is not None and queries.shape.rank != 2:
            raise ValueError(f"Query embeddings must be [q, dim], got shape {queries.shape}.")
        width = queries.shape[-1] if queries.shape.rank is not None else None
        if width is not None and width != table.dim:
            raise ValueError(
                f"Query embeddings have width {width} but the candidates have width {table.dim}."
            )
        return tf.cast(queries, tf.float32)

    def _check_exclude(self, exclude):
        if exclude is None:
            return None
        dtype = self.ids_dtype
        if isinstance(exclude, tf.RaggedTensor):
            values = exclude.flat_values
        else:
            if not tf.is_tensor(exclude):
                array = np.asarray(exclude)
                if array.dtype.kind in "USO":
                    array = array.astype(bytes)
                exclude = tf.convert_to_tensor(array)
            values = exclude
            if exclude.shape.rank != 2:
                raise ValueError(
                    f"`exclude` must be [q, e] ids (or a tf.RaggedTensor), got shape {exclude.shape}."
                )
        if (values.dtype == tf.string) != (dtype == tf.string) or not (
            values.dtype == tf.string or values.dtype.is_integer
        ):
            raise TypeError(
                f"`exclude` holds {values.dtype.name} ids but the index's ids are {dtype.name}."
            )
        return exclude

    def search(
        self,
        query_embeddings,
        k: int | None = None,
        exclude=None,
        chunk_size: int | None = None,
        parallel_iterations: int | None = None,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """The ``k`` best candidates of query embeddings (``call`` without the query model).

        Args:
          query_embeddings: float ``[q, dim]`` (computed in float32).
          k: Optional int in ``[1, N]`` (default: the layer's ``k``).
          exclude: Optional ids to leave out, per query (see the class).
          chunk_size: Optional int overriding the layer's.
          parallel_iterations: Optional int overriding the layer's.

        Returns:
          tuple: float32 scores and ids, ``[q, k]`` each, best first.

        Raises:
          ValueError, TypeError: for bad arguments (naming them).
          tf.errors.InvalidArgumentError: at run time, in a function traced
            earlier, when the index is empty, being rebuilt, or smaller than
            ``k``, or the queries' width differs from the table's.
        """
        queries = self._check_queries(query_embeddings)
        k = self.k if k is None else checks.check_int(k, "k")
        if k > self._num_candidates:
            raise ValueError(
                f"`k` must be <= the number of candidates ({self._num_candidates}), got k={k}."
            )
        chunk = loss_args.check_chunk_size(chunk_size) or self.chunk_size
        if chunk is None:
            chunk = auto_chunk_size(queries.shape[0], self._table.dim, self.storage_dtype)
        if parallel_iterations is not None:
            parallel = checks.check_int(parallel_iterations, "parallel_iterations")
        else:
            parallel = self.parallel_iterations or auto_parallel_iterations(queries.shape[0], chunk)
        exclude = self._check_exclude(exclude)
        if not tf.executing_eagerly():
            return self._scan(queries, k, exclude, chunk, parallel)
        # Eagerly, one traced function per argument kind, not a Python loop.
        if getattr(self, "_search_fn", None) is None:
            self._search_fn = tf.function(self._scan, reduce_retracing=True)
        return self._search_fn(queries, k, exclude, chunk, parallel)

    def _scan(self, queries, k: int, exclude, chunk: int, parallel: int):
        t = self._table
        rows = t.embeddings.read_value()
        count = t.count.read_value()
        n = tf.shape(rows, out_type=tf.int64)[0]
        checks = [
            tf.debugging.assert_equal(
                count,
                n,
                message="The CandidateIndex is empty or being rebuilt: let index() or "
                "index_from_dataset() finish first.",
            ),
            tf.debugging.assert_less_equal(
                tf.constant(k, tf.int64), count, message=f"k={k} exceeds the number of candidates."
            ),
            tf.debugging.assert_equal(
                tf.shape(queries)[1],
                t.dim,
                message=f"Query embeddings must have width {t.dim} (the candidates').",
            ),
        ]
        with tf.control_dependencies(checks):
            queries = tf.identity(queries)
        excluded = None
        ids = t.ids.read_value()
        if exclude is not None:
            q = tf.shape(queries, out_type=tf.int64)[0]
            nrows = (
                exclude.nrows()
                if isinstance(exclude, tf.RaggedTensor)
                else tf.shape(exclude, out_type=tf.int64)[0]
            )
            with tf.control_dependencies(
                [tf.debugging.assert_equal(nrows, q, message="`exclude` needs one row per query.")]
            ):
                q = tf.identity(q)
            excluded = excluded_pairs(
                exclude, self.padding_id, ids, t.keys.read_value(), t.key_rows.read_value()
            )
        scores, positions = block_top_k(queries, rows, k, chunk, excluded, parallel)
        found = tf.gather(ids, tf.maximum(positions, 0))
        padding = tf.fill(tf.shape(found), tf.constant(self.padding_id, ids.dtype))
        return scores, tf.where(positions >= 0, found, padding)

    def call(self, queries, k: int | None = None, exclude=None):
        embeddings = queries if self.query_model is None else self.query_model(queries)
        return self.search(embeddings, k=k, exclude=exclude)

    def compute_output_spec(self, queries, k: int | None = None, exclude=None):
        k = self.k if k is None else k
        batch = tf.nest.flatten(queries)[0].shape[0]
        ids_dtype = "string" if self.ids_dtype == tf.string else "int64"
        return (
            keras.KerasTensor((batch, k), dtype="float32"),
            keras.KerasTensor((batch, k), dtype=ids_dtype),
        )

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            k=self.k,
            chunk_size=self.chunk_size,
            storage_dtype=self.storage_dtype.name,
            padding_id=self._padding_id,
            parallel_iterations=self.parallel_iterations,
        )
        return config
