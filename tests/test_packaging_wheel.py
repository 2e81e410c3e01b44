"""The wheel end to end: `python -m build --wheel --no-isolation`, then install it elsewhere.

Builds the op with Bazel (a cache hit right after `scripts/setup.sh`), so it is marked slow.
The fresh venv sees the running environment's TensorFlow (not its tf_sampling) through a
`.pth` file instead of downloading one: what is checked is the wheel (its tag, its files, that pip installs it with
no index and so fetches no TensorFlow, that the installed copy imports and runs the op), not
pip's TensorFlow.
"""

import email.parser
import pathlib
import subprocess
import sys
import sysconfig
import textwrap
import zipfile

import pytest
from packaging.requirements import Requirement

from tests.conftest import ROOT
from tf_sampling import version

pytestmark = pytest.mark.slow


def _run(cmd, **kwargs):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kwargs)
    assert out.returncode == 0, f"{cmd}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> pathlib.Path:
    pytest.importorskip("build", reason="`build` comes with the test extra (scripts/setup.sh)")
    outdir = tmp_path_factory.mktemp("dist")
    _run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(outdir)],
        cwd=ROOT,
    )
    (built,) = outdir.glob("*.whl")
    return built


def test_wheel_is_platform_tagged_and_holds_the_op(wheel):
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    assert wheel.name == f"tf_sampling-{version.__version__}-py3-none-{platform}.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        dist_info = f"tf_sampling-{version.__version__}.dist-info"
        wheel_file = archive.read(f"{dist_info}/WHEEL").decode()
        metadata = email.parser.Parser().parsestr(archive.read(f"{dist_info}/METADATA").decode())
    assert "tf_sampling/ops/_tf_sampling_ops.so" in names
    assert "tf_sampling/_tf_version_check.py" in names
    # The library only: the demos stay in the checkout (issue 23).
    assert not [n for n in names if n.startswith("demo/") or "/demo/" in n], sorted(names)
    assert "Root-Is-Purelib: false" in wheel_file
    assert f"Tag: py3-none-{platform}" in wheel_file
    for line in metadata.get_all("Requires-Dist"):
        req = Requirement(line)
        if req.name in version.TF_DISTRIBUTION_NAMES:
            assert req.marker is not None and not req.marker.evaluate({"extra": ""}), line


def test_wheel_installs_into_a_fresh_venv_and_runs_the_op(wheel, tmp_path):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    site = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
    ).stdout.strip()
    # This environment's TensorFlow, Keras, NumPy..., visible after the venv's own
    # site-packages, but not its installed tf_sampling (pip would take it as installed).
    view = tmp_path / "parent_site_packages"
    view.mkdir()
    for entry in pathlib.Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.lower().replace("-", "_").startswith("tf_sampling"):
            (view / entry.name).symlink_to(entry)
    (pathlib.Path(site) / "parent_env.pth").write_text(f"{view}\n")
    # --no-index: had the wheel required a TensorFlow that is not there, pip would fail here.
    _run([str(python), "-m", "pip", "install", "-q", "--no-index", str(wheel)])
    code = textwrap.dedent(
        """
        import sys
        import tensorflow as tf
        import tf_sampling
        from tf_sampling.ops import _loader

        assert tf_sampling.__file__.startswith(sys.argv[1]), tf_sampling.__file__
        assert str(_loader.library_path()).startswith(sys.argv[1]), _loader.library_path()
        ids, true_count, sampled_count = tf_sampling.ops.learned_unigram_candidate_sampler(
            tf.constant([[1], [3]], tf.int64), num_true=1, num_sampled=4, unique=True,
            range_max=10, seed=7)
        assert tf_sampling.ops.is_loaded()
        ids = sorted(ids.numpy().tolist())
        assert len(set(ids)) == 4 and 0 <= ids[0] and ids[-1] < 10, ids
        assert true_count.shape == (2, 1) and sampled_count.shape == (4,)
        print("ok", tf.version.VERSION)
        """
    )
    # Outside the source tree, so only the installed copy can be imported.
    out = _run([str(python), "-c", code, site], cwd=tmp_path)
    assert out.stdout.split()[0] == "ok"
