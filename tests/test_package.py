"""The package surface: version, imports, registration, lazy op loading."""

import email.message
import email.parser
import pathlib
import re
import runpy
import subprocess
import sys
import sysconfig
import textwrap
import warnings

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from tests.conftest import ROOT
from tf_sampling import version


def test_import_registers_keras_objects_without_loading_the_op():
    """`import tf_sampling` alone lets Keras deserialize our classes; the .so stays unloaded."""
    code = textwrap.dedent(
        """
        import keras
        import tf_sampling
        names = ["SampledSoftmax", "NCE", "RankSampledSoftmax", "SampledSoftmaxLoss", "NCELoss",
                 "RankSampledSoftmaxLoss", "LearnedUnigramSampler", "Perplexity", "TopKAccuracy"]
        missing = [n for n in names if keras.saving.get_registered_object("tf_sampling>" + n) is None]
        assert not missing, missing
        assert not tf_sampling.ops.is_loaded()
        print("ok", tf_sampling.__version__)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["ok", __import__("tf_sampling").__version__]


def test_version_module_declares_supported_tensorflow_range():
    import tensorflow as tf

    from tf_sampling import version

    def key(v):
        return tuple(int(p) for p in v.split(".")[:2])

    assert (
        key(version.MIN_TF_VERSION) <= key(tf.__version__) < key(version.MAX_TF_VERSION_EXCLUSIVE)
    )


# --- Packaging: the wheel, its declared dependencies, the one TensorFlow range ---------------
# Cheap checks only (no Bazel build); tests/test_packaging_wheel.py builds the wheel and installs
# it into a fresh venv.


def _setup_kwargs(monkeypatch) -> dict:
    """Runs setup.py as pip would, but records the arguments instead of building."""
    import setuptools

    captured = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: captured.update(kwargs))
    monkeypatch.chdir(ROOT)
    runpy.run_path(str(ROOT / "setup.py"), run_name="__main__")
    assert captured, "setup.py did not call setuptools.setup"
    return captured


def _range() -> SpecifierSet:
    return SpecifierSet(f">={version.MIN_TF_VERSION},<{version.MAX_TF_VERSION_EXCLUSIVE}")


def test_wheel_is_tagged_for_this_platform_not_any(monkeypatch):
    """The wheel ships a compiled .so: platlib, `py3-none-<platform>`, never `py3-none-any`."""
    kwargs = _setup_kwargs(monkeypatch)
    distclass = kwargs.pop("distclass")
    dist = distclass(kwargs)
    command = dist.get_command_obj("bdist_wheel")
    command.ensure_finalized()
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    assert command.get_tag() == ("py3", "none", platform)
    assert platform != "any"
    assert not command.root_is_pure
    assert dist.has_ext_modules()
    assert "*.so" in kwargs["package_data"]["tf_sampling.ops"]


def _metadata(tmp_path) -> email.message.Message:
    """The METADATA that pip and `python -m build` would write (no op build needed)."""
    code = (
        "import sys, setuptools.build_meta as b; "
        "print(b.prepare_metadata_for_build_wheel(sys.argv[1]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    dist_info = tmp_path / out.stdout.strip().splitlines()[-1]
    return email.parser.Parser().parsestr((dist_info / "METADATA").read_text())


def test_metadata_never_requires_tensorflow_unconditionally(tmp_path):
    """Requires-Dist: every TensorFlow distribution sits behind its own extra, in the range.

    An unconditional `tensorflow` would install a second TensorFlow beside `tensorflow-cpu`.
    """
    metadata = _metadata(tmp_path)
    requirements = [Requirement(r) for r in metadata.get_all("Requires-Dist")]
    extras = set(metadata.get_all("Provides-Extra"))
    assert set(version.TF_EXTRAS) <= extras
    by_extra = {}
    for req in requirements:
        if req.name not in version.TF_DISTRIBUTION_NAMES:
            continue
        assert req.marker is not None, f"unconditional TensorFlow requirement: {req}"
        assert not req.marker.evaluate({"extra": ""}), f"installed without an extra: {req}"
        owners = [e for e in extras if req.marker.evaluate({"extra": e})]
        assert len(owners) == 1, (req, owners)
        by_extra[owners[0]] = req
    assert set(by_extra) == set(version.TF_EXTRAS)
    for extra, distribution in version.TF_EXTRAS.items():
        req = by_extra[extra]
        name, _, rest = distribution.partition("[")
        assert req.name == name
        assert req.extras == ({rest.rstrip("]")} if rest else set())
        assert req.specifier == _range()
    # The non-TensorFlow requirements pull no TensorFlow in either.
    assert {r.name for r in requirements if r.marker is None} == {"keras", "numpy", "absl-py"}


def test_tensorflow_requirement_is_built_from_the_range():
    for distribution in version.TF_EXTRAS.values():
        req = Requirement(version.tensorflow_requirement(distribution))
        assert req.specifier == _range()
    assert Requirement(version.tensorflow_requirement()).name == "tensorflow"
    with pytest.raises(ValueError, match=r"`distribution` must be one of .*got 'tensorflow-gpu'"):
        version.tensorflow_requirement("tensorflow-gpu")


def test_tested_versions_are_the_two_ends_of_the_range():
    from tf_sampling._tf_version_check import parse_version

    oldest, newest = version.TESTED_TF_VERSIONS
    low = parse_version(version.MIN_TF_VERSION)
    high = parse_version(version.MAX_TF_VERSION_EXCLUSIVE)
    assert high[2] == 0 and high[1] > 0, "the exclusive bound is a minor release x.y.0"
    assert parse_version(oldest)[:2] == low[:2]
    assert parse_version(newest)[:2] == (high[0], high[1] - 1)
    assert _range().contains(oldest) and _range().contains(newest)


def _readme() -> str:
    return (ROOT / "README.md").read_text()


def test_readme_states_the_range_of_version_py():
    """Every TensorFlow range the README types equals version.py's, in specifiers and words."""
    from tf_sampling._tf_version_check import parse_version

    text = _readme()
    specs = re.findall(r"tensorflow[\w\-\[\]]*\s*>=\s*([\d.]+)\s*,\s*<\s*([\d.]+)", text)
    assert specs, "README names no TensorFlow requirement"
    for low_text, high_text in specs:
        # ">=2.16,<2.22" is the same range as ">=2.16.0,<2.22.0".
        assert parse_version(low_text) == parse_version(version.MIN_TF_VERSION), low_text
        assert parse_version(high_text) == parse_version(version.MAX_TF_VERSION_EXCLUSIVE)
    low = ".".join(version.MIN_TF_VERSION.split(".")[:2])
    high_major, high_minor = (int(p) for p in version.MAX_TF_VERSION_EXCLUSIVE.split(".")[:2])
    words = re.findall(r"TensorFlow (\d+\.\d+) to (\d+\.\d+)", text)
    assert words, "README does not say the supported range in words"
    assert set(words) == {(low, f"{high_major}.{high_minor - 1}")}
    for tested in version.TESTED_TF_VERSIONS:
        assert tested in text, f"README does not name the tested TensorFlow {tested}"


def test_no_script_types_a_tensorflow_range():
    """setup.py and the scripts read the range from version.py; none writes a specifier."""
    files = [
        ROOT / "setup.py",
        ROOT / "pyproject.toml",
        *(ROOT / "scripts").iterdir(),
        *(ROOT / ".ci").iterdir(),
    ]
    typed = re.compile(r"tensorflow[\w\-\[\]]*\s*[<>=~!]=?\s*\d")
    for path in filter(pathlib.Path.is_file, files):
        text = path.read_text()
        assert not typed.search(text), f"{path.name} types a TensorFlow version range"
        assert version.MIN_TF_VERSION not in text and version.MAX_TF_VERSION_EXCLUSIVE not in text


# --- The import-time TensorFlow check ---------------------------------------------------------


def test_parse_version_reads_release_pre_release_and_nightly_strings():
    from tf_sampling._tf_version_check import parse_version

    assert parse_version("2.21.0") == (2, 21, 0)
    assert parse_version("2.16.0rc1") == (2, 16, 0)
    assert parse_version("2.22.0-dev20250101") == (2, 22, 0)
    assert parse_version("2.17") == (2, 17, 0)
    with pytest.raises(ValueError, match=r"`text` must be a version .*got 'unknown'"):
        parse_version("unknown")


def _newest_supported() -> str:
    major, minor = (int(p) for p in version.MAX_TF_VERSION_EXCLUSIVE.split(".")[:2])
    return f"{major}.{minor - 1}.9"


def _older_than_supported() -> str:
    major, minor = (int(p) for p in version.MIN_TF_VERSION.split(".")[:2])
    return f"{major}.{minor - 1}.1"


def test_check_accepts_both_ends_of_the_window_silently():
    from tf_sampling._tf_version_check import check_tensorflow_version

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_tensorflow_version(version.MIN_TF_VERSION)
        check_tensorflow_version(_newest_supported())
        for tested in version.TESTED_TF_VERSIONS:
            check_tensorflow_version(tested)


def test_check_rejects_an_older_tensorflow_with_the_install_command():
    from tf_sampling._tf_version_check import check_tensorflow_version

    old = _older_than_supported()
    with pytest.raises(ImportError) as info:
        check_tensorflow_version(old)
    message = str(info.value)
    assert f"got TensorFlow {old}" in message
    assert f">={version.MIN_TF_VERSION},<{version.MAX_TF_VERSION_EXCLUSIVE}" in message
    assert version.tensorflow_requirement("tensorflow-cpu") in message
    assert "--no-build-isolation" in message
    with pytest.raises(ImportError, match="cannot read the TensorFlow version 'garbage'"):
        check_tensorflow_version("garbage")


@pytest.mark.parametrize("newer", ["exclusive bound", "nightly"])
def test_check_warns_on_a_newer_tensorflow(newer):
    from tf_sampling._tf_version_check import check_tensorflow_version

    tf_version = version.MAX_TF_VERSION_EXCLUSIVE
    if newer == "nightly":
        tf_version += "-dev20990101"
    with pytest.warns(UserWarning, match=rf"got TensorFlow {re.escape(tf_version)}; some parts"):
        check_tensorflow_version(tf_version)


def test_ensure_reads_the_running_tensorflow_version(monkeypatch):
    import tensorflow as tf

    from tf_sampling import _tf_version_check

    monkeypatch.setattr(tf.version, "VERSION", _older_than_supported())
    with pytest.raises(ImportError, match=rf"got TensorFlow {re.escape(_older_than_supported())}"):
        _tf_version_check.ensure_supported_tensorflow()
    monkeypatch.setattr(tf.version, "VERSION", version.TESTED_TF_VERSIONS[-1])
    _tf_version_check.ensure_supported_tensorflow()


def test_ensure_says_how_to_install_a_missing_tensorflow(monkeypatch):
    from tf_sampling import _tf_version_check

    monkeypatch.setattr(_tf_version_check, "installed_tensorflow_distributions", dict)
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # `import tensorflow` now fails
    with pytest.raises(ImportError, match="needs TensorFlow, which is not installed") as info:
        _tf_version_check.ensure_supported_tensorflow()
    assert version.tensorflow_requirement("tensorflow[and-cuda]") in str(info.value)


def test_ensure_refuses_two_tensorflow_distributions_of_different_versions(monkeypatch):
    from tf_sampling import _tf_version_check

    two = {"tensorflow": "2.21.0", "tensorflow-cpu": "2.16.2"}
    monkeypatch.setattr(_tf_version_check, "installed_tensorflow_distributions", lambda: two)
    with pytest.raises(
        ImportError, match=r"\(tensorflow 2\.21\.0, tensorflow-cpu 2\.16\.2\)"
    ) as info:
        _tf_version_check.ensure_supported_tensorflow()
    assert "pip uninstall tensorflow tensorflow-cpu" in str(info.value)
    same = {"tensorflow": "2.21.0", "tensorflow-cpu": "2.21.0"}
    monkeypatch.setattr(_tf_version_check, "installed_tensorflow_distributions", lambda: same)
    with pytest.warns(UserWarning, match="Several TensorFlow distributions"):
        _tf_version_check.ensure_supported_tensorflow()


def test_installed_tensorflow_distributions_finds_the_running_one():
    import tensorflow as tf

    from tf_sampling._tf_version_check import installed_tensorflow_distributions

    found = installed_tensorflow_distributions()
    assert len(found) == 1, found
    assert list(found.values()) == [tf.version.VERSION]


def test_import_tf_sampling_runs_the_check_first():
    """`import tf_sampling` with an old TensorFlow fails with the check's message."""
    code = textwrap.dedent(
        f"""
        import tensorflow as tf
        tf.version.VERSION = {_older_than_supported()!r}
        import tf_sampling
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode != 0
    assert f"needs TensorFlow >={version.MIN_TF_VERSION}" in out.stderr
    assert "tf_sampling/_tf_version_check.py" in out.stderr


# --- scripts/tf_requirement.py: how setup.sh reaches exactly one TensorFlow -------------------


def _tf_requirement_script() -> dict:
    return runpy.run_path(str(ROOT / "scripts" / "tf_requirement.py"))


@pytest.mark.parametrize(
    "wanted, installed, expected_uninstall, expected_pin",
    [
        ("tensorflow-cpu", {}, [], None),
        ("tensorflow-cpu", {"tensorflow-cpu": "2.16.2"}, [], None),
        ("tensorflow[and-cuda]", {"tensorflow": "2.21.0"}, [], None),
        # Switching build keeps the version...
        ("tensorflow-cpu", {"tensorflow": "2.21.0"}, ["tensorflow"], "tensorflow-cpu==2.21.0"),
        ("tensorflow", {"tensorflow-cpu": "2.16.2"}, ["tensorflow-cpu"], "tensorflow==2.16.2"),
        # ... unless it is outside the range; two builds are both removed.
        ("tensorflow-cpu", {"tensorflow": "2.15.1"}, ["tensorflow"], None),
        (
            "tensorflow-cpu",
            {"tensorflow": "2.21.0", "tensorflow-cpu": "2.16.2"},
            ["tensorflow", "tensorflow-cpu"],
            None,
        ),
    ],
)
def test_setup_plan_reaches_exactly_one_tensorflow(
    wanted, installed, expected_uninstall, expected_pin
):
    script = _tf_requirement_script()
    versions = script["load_version_module"]()
    uninstall, requirement = script["plan"](wanted, installed, versions)
    assert uninstall == expected_uninstall
    assert requirement == (expected_pin or version.tensorflow_requirement(wanted))


def test_setup_plan_rejects_an_unknown_distribution(capsys):
    script = _tf_requirement_script()
    assert script["main"](["plan", "tensorflow-gpu"]) == 2
    assert "got 'tensorflow-gpu'" in capsys.readouterr().err
    assert script["main"](["tested"]) == 0
    assert capsys.readouterr().out.split() == list(version.TESTED_TF_VERSIONS)


@pytest.mark.parametrize(
    "override, gpu, system, machine, expected",
    [
        ("", False, "Linux", "x86_64", "tensorflow-cpu"),
        ("", True, "Linux", "x86_64", "tensorflow[and-cuda]"),
        ("", False, "Linux", "aarch64", "tensorflow"),
        ("", False, "Darwin", "arm64", "tensorflow"),
        ("tensorflow", False, "Linux", "x86_64", "tensorflow"),
        ("tensorflow-cpu", True, "Linux", "x86_64", "tensorflow-cpu"),
    ],
)
def test_setup_chooses_the_tensorflow_build_that_fits_the_machine(
    override, gpu, system, machine, expected
):
    choose = _tf_requirement_script()["choose_distribution"]
    assert choose(override, gpu, system, machine) == expected


def test_setup_choice_validates_an_override(monkeypatch, capsys):
    script = _tf_requirement_script()
    monkeypatch.setenv("TF_SAMPLING_TENSORFLOW", "tensorflow-gpu")
    assert script["main"](["choose"]) == 2
    assert "got 'tensorflow-gpu'" in capsys.readouterr().err
