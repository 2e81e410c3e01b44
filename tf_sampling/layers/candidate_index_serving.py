"""``export_candidate_index``: a SavedModel from raw query features to the top-k candidates.

The SavedModel holds the query model, the candidate table and ids, and two
signatures built from plain TensorFlow ops (no op of this package, no Python),
so TensorFlow Serving, ``tf.saved_model.load`` in a process without
``tf_sampling``, and ``saved_model_cli run`` all serve it:

* ``serving_default`` (also ``serve``): a batch of queries ``[None, ...]``;
* ``serve_single``: exactly one query ``[1, ...]``, scanned in larger blocks
  (one query's block of scores is small, so fewer, longer blocks cost less).

Both return ``{"ids": [q, k], "scores": float32 [q, k]}``, best first.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_sampling._core import checks, loss_args
from tf_sampling._core.block_top_k import auto_chunk_size
from tf_sampling.layers.candidate_index import CandidateIndex, embed_with


def _input_signature(query_model, index: CandidateIndex, input_signature):
    if input_signature is not None:
        specs = (
            list(input_signature)
            if isinstance(input_signature, (list, tuple))
            else [input_signature]
        )
        if not all(isinstance(s, tf.TensorSpec) for s in specs):
            raise TypeError(f"`input_signature` must hold tf.TensorSpecs, got {input_signature!r}.")
        return specs
    if query_model is None:
        return [tf.TensorSpec([None, index.dim], tf.float32, name="queries")]
    inputs = getattr(query_model, "inputs", None)
    if not inputs:
        raise ValueError(
            "`input_signature` is needed for a query model without symbolic inputs (a "
            f"subclassed model), got query_model={query_model!r}."
        )
    return [
        tf.TensorSpec(t.shape, t.dtype, name=getattr(t, "name", None) or f"input_{i}")
        for i, t in enumerate(inputs)
    ]


def _single(spec: tf.TensorSpec) -> tf.TensorSpec:
    if spec.shape.rank is None or spec.shape.rank == 0:
        raise ValueError(f"Input {spec} needs a batch dimension for the single-query signature.")
    return tf.TensorSpec([1, *spec.shape[1:]], spec.dtype, name=spec.name)


def export_candidate_index(
    index: CandidateIndex,
    filepath: str,
    k: int | None = None,
    query_model=None,
    input_signature=None,
    chunk_size: int | None = None,
    single_query_chunk_size: int | None = None,
    single_query_parallel_iterations: int = 2,
) -> None:
    """Writes a SavedModel serving ``index`` on raw query features.

    Args:
      index: A built ``CandidateIndex`` (its table and ids are saved inside).
      filepath: Directory to write.
      k: int in ``[1, N]`` (default: the index's ``k``).
      query_model: Keras model (or trackable callable) from raw query features
        to query embeddings (default: the index's ``query_model``; None serves
        query embeddings ``[None, dim]`` named ``queries``).
      input_signature: Optional ``tf.TensorSpec`` or list of them, the query
        model's inputs with a ``None`` batch dimension (default: a functional
        model's inputs).
      chunk_size: Optional int, candidates per block of the batch signature
        (default: the index's, or automatic for 1024 queries).
      single_query_chunk_size: Optional int, candidates per block of
        ``serve_single`` (default: automatic for one query).
      single_query_parallel_iterations: int, blocks in flight in
        ``serve_single`` (one query's product and top-k use one core each, so
        two blocks keep two cores busy).

    Raises:
      ValueError, TypeError: an empty index, a bad ``k`` or signature.
    """
    index._require_table()
    k = index.k if k is None else checks.check_int(k, "k")
    if k > index.num_candidates:
        raise ValueError(
            f"`k` must be <= the number of candidates ({index.num_candidates}), got k={k}."
        )
    query_model = index.query_model if query_model is None else query_model
    specs = _input_signature(query_model, index, input_signature)
    single_specs = [_single(s) for s in specs]
    chunk = loss_args.check_chunk_size(chunk_size) or index.chunk_size
    single_chunk = loss_args.check_chunk_size(single_query_chunk_size) or auto_chunk_size(
        1, index.dim, index.storage_dtype
    )
    parallel = checks.check_int(
        single_query_parallel_iterations, "single_query_parallel_iterations"
    )

    def serve(args, chunk_rows, blocks_in_flight):
        features = list(args) if len(args) > 1 else args[0]
        embeddings = embed_with(query_model, features)
        scores, ids = index.search(
            embeddings, k=k, chunk_size=chunk_rows, parallel_iterations=blocks_in_flight
        )
        return {"ids": ids, "scores": scores}

    archive = keras.export.ExportArchive()
    if query_model is not None:
        archive.track(query_model)
    archive.add_variable_collection("candidate_index", index.variables_to_save)
    archive.add_endpoint(
        name="serve",
        fn=lambda *args: serve(args, chunk, None),
        input_signature=specs,
    )
    archive.add_endpoint(
        name="serve_single",
        fn=lambda *args: serve(args, single_chunk, parallel),
        input_signature=single_specs,
    )
    archive.write_out(filepath, verbose=False)
