"""CandidateIndex: exact top-k over a candidate table in blocks, its metrics and its SavedModel."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sampling.layers as tsl
from tf_sampling._core import candidate_keys

N, D = 50, 4
BIG = 2**40  # int64 ids beyond int32


def _ints(seed, shape, low=-2, high=3):
    # Small integers: float32 (and bfloat16/float16) products are exact, and
    # many scores tie, so the tie rule is checked too.
    return np.random.default_rng(seed).integers(low, high, size=shape).astype("float32")


def _reference(queries, table, k, ids, exclude=None, padding=-1):
    """NumPy top-k: stable sort of the negated float64 scores (ties to the lower row)."""
    scores = queries.astype(np.float64) @ table.astype(np.float64).T
    out_ids, out_scores = [], []
    for i, row in enumerate(scores):
        kept = np.ones(len(row), bool)
        if exclude is not None:
            kept = ~np.isin(np.asarray(ids), np.asarray(exclude[i], dtype=np.asarray(ids).dtype))
        order = [j for j in np.argsort(-row, kind="stable") if kept[j]][:k]
        got_ids = [ids[j] for j in order] + [padding] * (k - len(order))
        got_scores = [row[j] for j in order] + [-np.inf] * (k - len(order))
        out_ids.append(got_ids)
        out_scores.append(got_scores)
    return np.array(out_ids), np.array(out_scores)


@pytest.mark.parametrize("chunk_size", [7, 10, 16, 48, 64])
@pytest.mark.parametrize("k", [3, 9])
@pytest.mark.parametrize("storage_dtype", ["float32", "bfloat16", "float16"])
def test_top_k_equals_numpy_with_ties_across_chunk_sizes(chunk_size, k, storage_dtype):
    # chunk 48 with k=3 scans in groups of 4 columns (a tail of 2 padded to 4).
    table, queries = _ints(0, (N, D)), _ints(1, (6, D))
    ids = np.arange(N, dtype=np.int64) * 3 + BIG
    index = tsl.CandidateIndex(k=k, chunk_size=chunk_size, storage_dtype=storage_dtype)
    index.index(table, ids, batch_size=13)
    scores, found = index(queries)
    want_ids, want_scores = _reference(queries, table, k, ids)
    assert found.dtype == tf.int64 and scores.dtype == tf.float32
    np.testing.assert_array_equal(found.numpy(), want_ids)
    np.testing.assert_array_equal(scores.numpy(), want_scores)
    # Two blocks in flight: the same result.
    again = index.search(queries, parallel_iterations=2)
    np.testing.assert_array_equal(again[1].numpy(), want_ids)


def test_reduced_precision_storage_scores_the_rounded_table_in_float32():
    rng = np.random.default_rng(2)
    table = rng.normal(size=(N, D)).astype("float32")
    queries = rng.normal(size=(5, D)).astype("float32")
    index = tsl.CandidateIndex(k=6, chunk_size=8, storage_dtype="bfloat16").index(table)
    scores, found = index(queries)
    rounded = tf.cast(tf.cast(table, tf.bfloat16), tf.float32).numpy()
    want_ids, want_scores = _reference(queries, rounded, 6, np.arange(N))
    np.testing.assert_array_equal(found.numpy(), want_ids)
    np.testing.assert_allclose(scores.numpy(), want_scores, rtol=1e-6, atol=1e-6)
    # And it is not the float32 table's answer.
    assert not np.allclose(scores.numpy(), _reference(queries, table, 6, np.arange(N))[1])


@pytest.mark.parametrize("ragged", [False, True], ids=["padded", "ragged"])
def test_exclusions_are_removed_before_the_top_k(ragged):
    table, queries = _ints(3, (N, D)), _ints(4, (4, D))
    ids = np.arange(N, dtype=np.int64) + BIG
    index = tsl.CandidateIndex(k=8, chunk_size=7).index(table, ids)
    best = _reference(queries, table, 8, ids)[0]
    exclude = [
        list(best[0, :3]) + [BIG + 49, 12345],  # 12345 is no candidate: ignored
        [],
        list(best[2, ::2]),
        [BIG + 1, BIG + 1],  # listed twice
    ]
    if ragged:
        given = tf.ragged.constant(exclude, dtype=tf.int64)
    else:
        width = max(map(len, exclude))
        given = np.array([row + [-1] * (width - len(row)) for row in exclude], np.int64)
    scores, found = index(queries, exclude=given)
    want_ids, want_scores = _reference(queries, table, 8, ids, exclude)
    np.testing.assert_array_equal(found.numpy(), want_ids)
    np.testing.assert_array_equal(scores.numpy(), want_scores)
    assert not set(exclude[0]) & set(found.numpy()[0])


def test_fewer_than_k_left_gives_empty_slots_at_the_end():
    table = _ints(5, (6, D))
    index = tsl.CandidateIndex(k=5, chunk_size=4).index(table, ids=np.arange(6) + 10)
    queries = _ints(6, (2, D))
    exclude = [[10, 11, 12, 13], [15]]
    scores, found = index(queries, exclude=tf.ragged.constant(exclude, dtype=tf.int64))
    want_ids, want_scores = _reference(queries, table, 5, np.arange(6) + 10, exclude)
    np.testing.assert_array_equal(found.numpy(), want_ids)
    np.testing.assert_array_equal(scores.numpy(), want_scores)
    assert list(found.numpy()[0, 2:]) == [-1, -1, -1] and np.isneginf(scores.numpy()[0, 2:]).all()


def test_string_ids_duplicates_and_hash_collisions(monkeypatch):
    table, queries = _ints(7, (N, D)), _ints(8, (3, D))
    ids = np.array([f"item-{i % 40}" for i in range(N)])  # rows 40..49 repeat ids 0..9
    exclude = [["item-3", "item-45"], [], ["item-7", "item-8", "item-30"]]
    padded = np.array([row + [""] * (3 - len(row)) for row in exclude])
    want_ids, want_scores = _reference(queries, table, 12, ids, exclude, padding="")
    want_ids = want_ids.astype(bytes)
    # Few hash buckets force collisions: exclusion must still compare the ids.
    for buckets in (None, 3):
        if buckets:
            monkeypatch.setattr(
                candidate_keys,
                "id_keys",
                lambda v, b=buckets: (
                    tf.strings.to_hash_bucket_fast(v, b)
                    if v.dtype == tf.string
                    else tf.cast(v, tf.int64)
                ),
            )
        index = tsl.CandidateIndex(k=12, chunk_size=9).index(table, ids)
        scores, found = index(queries, exclude=padded)
        assert found.dtype == tf.string
        np.testing.assert_array_equal(found.numpy(), want_ids)
        np.testing.assert_array_equal(scores.numpy(), want_scores)
        ragged = index(queries, exclude=tf.ragged.constant(exclude))
        np.testing.assert_array_equal(ragged[1].numpy(), want_ids)


def test_index_from_dataset_with_a_tower_and_reindexing_under_a_traced_function():
    keras.utils.set_random_seed(0)
    features = np.random.default_rng(9).normal(size=(N, 3)).astype("float32")
    tower = keras.Sequential([keras.Input((3,)), keras.layers.Dense(D)])
    ids = np.arange(N, dtype=np.int64) + BIG
    dataset = tf.data.Dataset.from_tensor_slices((ids, features)).batch(16)
    index = tsl.CandidateIndex(k=5, chunk_size=8).index_from_dataset(tower, dataset)
    table = tower(features).numpy()
    queries = np.random.default_rng(10).normal(size=(4, D)).astype("float32")
    want = _reference(queries, table, 5, ids)
    search = tf.function(lambda q: index(q))
    np.testing.assert_array_equal(search(queries)[1].numpy(), want[0])
    np.testing.assert_allclose(search(queries)[0].numpy(), want[1], rtol=1e-5)
    # Rebuilt with fewer candidates (features alone: ids are the positions),
    # the function traced before sees the new table.
    index.index_from_dataset(tower, tf.data.Dataset.from_tensor_slices(features[:20]).batch(6), 20)
    assert index.num_candidates == 20
    want = _reference(queries, table[:20], 5, np.arange(20))
    np.testing.assert_array_equal(search(queries)[1].numpy(), want[0])
    # Rebuilt from embeddings with the same count: written in place.
    index.index(table[::-1][:20].copy())
    want = _reference(queries, table[::-1][:20], 5, np.arange(20))
    np.testing.assert_array_equal(search(queries)[1].numpy(), want[0])


def test_searches_read_the_built_table_without_copying_it():
    # Written in slices, the variables would otherwise copy themselves on
    # every read: twice the table's memory and a pass over it per search.
    index = tsl.CandidateIndex().index(_ints(0, (N, D)), batch_size=7)
    for variable in (index._table.embeddings, index._table.ids):
        first, second = variable.read_value(), variable.read_value()
        address = [np.asarray(t).__array_interface__["data"][0] for t in (first, second)]
        assert address[0] == address[1]


def test_a_failed_rebuild_leaves_the_index_refusing_searches():
    index = tsl.CandidateIndex(k=2).index(_ints(0, (N, D)))
    queries = _ints(1, (2, D))
    search = tf.function(lambda q: index(q))
    search(queries)
    bad = tf.data.Dataset.from_tensor_slices(_ints(0, (N, D))).batch(10)
    with pytest.raises(ValueError, match="expected 60"):
        index.index_from_dataset(None, bad, num_candidates=60)
    with pytest.raises(ValueError, match="holds no candidates"):
        index(queries)
    with pytest.raises(tf.errors.InvalidArgumentError, match="empty or being rebuilt"):
        search(queries)
    index.index(_ints(0, (N, D)))
    np.testing.assert_array_equal(search(queries)[1].numpy(), index(queries)[1].numpy())


def test_bad_inputs_raise_clear_errors():
    table = _ints(0, (N, D))
    index = tsl.CandidateIndex(k=3).index(table)
    with pytest.raises(ValueError, match="width 5 but the candidates have width 4"):
        index(np.zeros((2, 5), "float32"))
    with pytest.raises(TypeError, match="floating-point, got dtype int32"):
        index(np.zeros((2, D), "int32"))
    with pytest.raises(ValueError, match=r"`k` must be <= the number of candidates \(50\)"):
        index(np.zeros((2, D), "float32"), k=N + 1)
    with pytest.raises(ValueError, match="`k` must be an integer >= 1"):
        index(np.zeros((2, D), "float32"), k=0)
    with pytest.raises(TypeError, match="`exclude` holds string ids but the index's ids are int64"):
        index(np.zeros((1, D), "float32"), exclude=[["a"]])
    with pytest.raises(tf.errors.InvalidArgumentError, match="one row per query"):
        index(np.zeros((2, D), "float32"), exclude=[[1]])
    with pytest.raises(ValueError, match="cannot run under XLA"):
        tf.function(lambda q: index(q), jit_compile=True)(np.zeros((1, D), "float32"))
    fresh = tsl.CandidateIndex()
    with pytest.raises(ValueError, match="holds no candidates"):
        fresh(np.zeros((1, D), "float32"))
    with pytest.raises(ValueError, match="empty"):
        fresh.index(np.zeros((0, D), "float32"))
    with pytest.raises(ValueError, match=r"`ids` must have shape \[50\]"):
        fresh.index(table, ids=np.arange(N - 1))
    with pytest.raises(TypeError, match="integers or strings"):
        fresh.index(table, ids=np.linspace(0, 1, N))
    with pytest.raises(TypeError, match="floating-point"):
        fresh.index(table.astype("int32"))
    with pytest.raises(ValueError, match="storage_dtype"):
        tsl.CandidateIndex(storage_dtype="int8")
    with pytest.raises(ValueError, match="holds no candidates"):
        fresh.index_from_dataset(None, tf.data.Dataset.from_tensor_slices(table[:0]).batch(4))
    assert fresh.num_candidates == 0
    # The failed calls changed nothing in the built index.
    np.testing.assert_array_equal(
        index(table[:2])[1].numpy(), _reference(table[:2], table, 3, np.arange(N))[0]
    )


def _numpy_recall(queries, table, ids, true_ids, weights, ks, any_hit, padding=-1):
    found = _reference(queries, table, max(ks), ids)[0]
    out = {}
    for k in ks:
        total = weight = 0.0
        for row, truth, w in zip(found, true_ids, weights, strict=True):
            truth = [t for t in truth if t != padding]
            if not truth:
                continue
            hits = [t in list(row[:k]) for t in truth]
            value = float(any(hits)) if any_hit else sum(hits) / len(truth)
            total += w * value
            weight += w
        out[k] = total / weight
    return out


@pytest.mark.parametrize("metric_class", [tsl.RetrievalRecall, tsl.RetrievalTopKAccuracy])
def test_metrics_equal_numpy_recall_with_sample_weights_in_one_scan(metric_class):
    rng = np.random.default_rng(11)
    table = rng.normal(size=(N, D)).astype("float32")
    ids = np.arange(N, dtype=np.int64) + BIG
    index = tsl.CandidateIndex(chunk_size=16).index(table, ids)
    calls = []
    search = index.search
    index.search = lambda *a, **kw: calls.append(kw["k"]) or search(*a, **kw)
    ks = (1, 3, 10)
    metric = metric_class(index, ks=ks)
    batches = []
    for _ in range(3):
        queries = rng.normal(size=(5, D)).astype("float32")
        truth = rng.choice(ids, size=(5, 3))
        truth[0, 1:] = -1  # one true id, padded
        truth[1] = -1  # no true id: left out
        truth[2, 0] = _reference(queries[2:3], table, 1, ids)[0][0, 0]  # a sure hit
        weights = rng.uniform(0.5, 2.0, size=5)
        metric.update_state(truth, queries, sample_weight=weights)
        batches.append((queries, truth, weights))
    assert calls == [10, 10, 10]  # one scan of max(ks) per batch
    want = _numpy_recall(
        np.concatenate([b[0] for b in batches]), table, ids,
        np.concatenate([b[1] for b in batches]), np.concatenate([b[2] for b in batches]),
        ks, any_hit=metric_class is tsl.RetrievalTopKAccuracy,
    )  # fmt: skip
    got = {k: float(v) for k, v in metric.result().items()}
    assert got.keys() == {f"{metric.name}@{k}" for k in ks}
    for k in ks:
        np.testing.assert_allclose(got[f"{metric.name}@{k}"], want[k], rtol=1e-6)
    # Ragged y_true: the same numbers.
    ragged = metric_class(index, ks=ks)
    for queries, truth, weights in batches:
        rows = [[t for t in row if t != -1] for row in truth]
        ragged.update_state(tf.ragged.constant(rows, dtype=tf.int64), queries, weights)
    for name, value in ragged.result().items():
        np.testing.assert_allclose(float(value), got[name], rtol=1e-6)
    metric.reset_state()
    assert float(metric.result()[f"{metric.name}@1"]) == 0.0
    np.testing.assert_array_equal(index._table.embeddings.numpy(), table)  # untouched


def test_metric_in_model_evaluate_of_a_two_tower_model_with_string_ids():
    keras.utils.set_random_seed(3)
    num_items = 30
    user = keras.Input((), dtype="int64", name="user")
    item = keras.Input((), dtype="int64", name="item")
    user_tower = keras.layers.Embedding(12, D, name="user_tower")
    item_tower = keras.layers.Embedding(num_items, D, name="item_tower")
    query = user_tower(user)
    loss = tsl.InBatchSoftmaxRetrieval(name="retrieval")(
        query, item_tower(item), candidate_ids=item
    )
    model = keras.Model({"user": user, "item": item}, {"loss": loss, "query": query})
    names = np.array([f"item-{i}" for i in range(num_items)]).astype(bytes)
    index = tsl.CandidateIndex().index(item_tower.embeddings.numpy(), ids=names)
    ks = (1, 5, 20)
    model.compile(
        optimizer="sgd",
        loss={"loss": lambda y_true, y_pred: tf.zeros_like(y_pred), "query": None},
        # Keras applies sample_weight to `weighted_metrics` only.
        metrics={"query": [tsl.RetrievalRecall(index, ks=ks, name="recall")]},
        weighted_metrics={"query": [tsl.RetrievalTopKAccuracy(index, ks=ks, name="weighted")]},
    )
    rng = np.random.default_rng(4)
    users, items = rng.integers(0, 12, 24), rng.integers(0, num_items, 24)
    weights = rng.uniform(0.5, 2.0, 24).astype("float32")
    data = tf.data.Dataset.from_tensor_slices(
        (
            {"user": users, "item": items},
            {"loss": np.zeros(24, "float32"), "query": names[items]},
            weights,
        )
    ).batch(8)
    logs = model.evaluate(data, return_dict=True, verbose=0)
    table = item_tower.embeddings.numpy()
    queries = user_tower.embeddings.numpy()[users]
    for weighted in (False, True):
        want = _numpy_recall(
            queries, table, list(names), names[items][:, None],
            weights if weighted else np.ones(24), ks, any_hit=weighted, padding=b"",
        )  # fmt: skip
        for k in ks:
            got = logs[f"weighted@{k}" if weighted else f"recall@{k}"]
            np.testing.assert_allclose(got, want[k], rtol=1e-6)


BLOCK_TF_SAMPLING = (
    "import sys\n"
    "class _Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'tf_sampling' or name.startswith('tf_sampling.'):\n"
    "            raise ImportError('tf_sampling is blocked in this process')\n"
    "sys.meta_path.insert(0, _Block())\n"
)


def test_savedmodel_serves_without_tf_sampling_and_with_saved_model_cli(tmp_path):
    keras.utils.set_random_seed(5)
    features = keras.Input((3,), name="features")
    query_model = keras.Model(features, keras.layers.Dense(D)(features))
    table = np.random.default_rng(12).normal(size=(N, D)).astype("float32")
    ids = np.array([f"c{i}" for i in range(N)])
    index = tsl.CandidateIndex(k=4, chunk_size=16, query_model=query_model).index(table, ids)
    x = np.random.default_rng(13).normal(size=(3, 3)).astype("float32")
    want_scores, want_ids = index(x)
    path = tmp_path / "index"
    tsl.export_candidate_index(index, str(path), single_query_chunk_size=32)
    np.save(tmp_path / "x.npy", x)
    code = BLOCK_TF_SAMPLING + (
        "import json, numpy as np, tensorflow as tf\n"
        f"served = tf.saved_model.load({str(path)!r})\n"
        "x = tf.constant(np.load(sys.argv[1]))\n"
        "batch = served.signatures['serving_default'](features=x)\n"
        "one = served.signatures['serve_single'](features=x[:1])\n"
        "print(json.dumps({'ids': batch['ids'].numpy().astype(str).tolist(),"
        " 'scores': batch['scores'].numpy().tolist(),"
        " 'one': one['ids'].numpy().astype(str).tolist(),"
        " 'imported': any(m.startswith('tf_sampling') for m in sys.modules)}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    served = subprocess.run(
        [sys.executable, "-I", "-c", code, str(tmp_path / "x.npy")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert served.returncode == 0, served.stderr[-3000:]
    result = json.loads(served.stdout.strip().splitlines()[-1])
    assert result["imported"] is False
    assert result["ids"] == want_ids.numpy().astype(str).tolist()
    assert result["one"] == want_ids.numpy()[:1].astype(str).tolist()
    np.testing.assert_allclose(result["scores"], want_scores.numpy(), rtol=1e-5)
    cli = pathlib.Path(sys.executable).with_name("saved_model_cli")
    ran = subprocess.run(
        [
            str(cli), "run", "--dir", str(path), "--tag_set", "serve",
            "--signature_def", "serve_single",
            "--input_exprs", f"features={json.dumps(x[:1].tolist())}",
        ],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    printed = ran.stdout.split("Result for output key ids:")[1].split("Result")[0]
    assert [f"b'{i}'" for i in want_ids.numpy()[0].astype(str)] == printed.replace(
        "[", " "
    ).replace("]", " ").split()
