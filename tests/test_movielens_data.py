"""demo/movielens/data.py: the loader reads good files and rejects a truncated or corrupted one by name."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest

from demo.movielens import data as ml

RATINGS = ["1\t10\t4\t881250949", "2\t20\t3\t891717742", "1\t30\t5\t878887116", "3\t10\t1\t1"]
MOVIES = ["10\tToy Story\t1995\tAnimation", "20\tHeat\t1995\tAction", "30\tHeat\t1995\tCrime"]
USERS = ["1\t24\tM\ttechnician\t85711", "2\t53\tF\tother\t94043", "3\t23\tM\twriter\t32067"]


def _write(tmp_path, ratings=RATINGS, movies=MOVIES, users=USERS):
    """Small synthetic files in the release's format, and specs that fit them."""
    release = {}
    for key, rows in (("ratings", ratings), ("movies", movies), ("users", users)):
        spec = ml.RELEASE[key]
        text = "\n".join([spec.header, *rows]) + "\n"
        (tmp_path / spec.name).write_text(text)
        release[key] = dataclasses.replace(
            spec, rows=len(rows), sha256=hashlib.sha256(text.encode()).hexdigest()
        )
    return release


def test_loads_good_files(tmp_path):
    release = _write(tmp_path)
    data = ml.load(tmp_path, release)
    assert data.titles == ["Heat (1995)", "Toy Story (1995)"]
    np.testing.assert_array_equal(data.movie_title, [1, 0, 0])  # two movies share "Heat (1995)"
    np.testing.assert_array_equal(data.title, [1, 0, 0, 1])
    np.testing.assert_array_equal(data.user, [0, 1, 0, 2])
    assert data.num_users == 3


def test_truncated_file_is_named(tmp_path):
    release = _write(tmp_path)
    path = tmp_path / "ml-100k.inter"
    path.write_text("\n".join(path.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(ml.DataError, match=r"ml-100k\.inter: truncated.*3 rows, expected 4"):
        ml.load(tmp_path, release)


def test_corrupted_file_is_named(tmp_path):
    release = _write(tmp_path)
    path = tmp_path / "ml-100k.item"
    path.write_text(path.read_text().replace("Heat", "Hext", 1))  # same rows, other bytes
    with pytest.raises(ml.DataError, match=r"ml-100k\.item: corrupted \(SHA-256"):
        ml.load(tmp_path, release)


def test_broken_rows_and_headers_are_named(tmp_path):
    release = _write(tmp_path, users=[*USERS[:2], "3\t23\tM"])
    with pytest.raises(ml.DataError, match=r"ml-100k\.user: corrupted \(line 4 has 3 fields"):
        ml.load(tmp_path, release)
    release = _write(tmp_path)
    path = tmp_path / "ml-100k.user"
    path.write_text("user\n" + "\n".join(USERS) + "\n")
    with pytest.raises(ml.DataError, match=r"ml-100k\.user: corrupted \(header"):
        ml.load(tmp_path, release)


def test_missing_file_and_real_release_counts_are_named(tmp_path):
    release = _write(tmp_path)
    # The real release's row counts reject the small files, naming the first one read.
    with pytest.raises(ml.DataError, match=r"ml-100k\.inter: truncated.*expected 100000"):
        ml.load(tmp_path)
    (tmp_path / "ml-100k.user").unlink()
    with pytest.raises(FileNotFoundError, match=r"ml-100k\.user: missing.*setup\.sh movielens"):
        ml.load(tmp_path, release)


def test_unknown_ids_in_ratings_are_named(tmp_path):
    release = _write(tmp_path, ratings=[*RATINGS[:3], "3\t99\t1\t1"])
    with pytest.raises(ml.DataError, match=r"ml-100k\.inter: corrupted \(id 99"):
        ml.load(tmp_path, release)
