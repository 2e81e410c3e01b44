"""TensorFlow requirements for the shell scripts, read from tf_sampling/version.py.

The scripts install TensorFlow before this package exists in the environment,
so they cannot import ``tf_sampling``; this file executes ``version.py`` on its
own (it needs no TensorFlow) and answers in shell-friendly lines:

    python scripts/tf_requirement.py plan tensorflow-cpu
        # tf_uninstall='tensorflow'            distributions to remove first
        # tf_install='tensorflow-cpu==X.Y.Z'   the pip requirement to install
    python scripts/tf_requirement.py requirement tensorflow-cpu
        # tensorflow-cpu>=MIN,<MAX             (MIN_TF_VERSION, MAX_TF_VERSION_EXCLUSIVE)
    python scripts/tf_requirement.py tested
        # the oldest and newest release the suite is run on (TESTED_TF_VERSIONS)
    python scripts/tf_requirement.py choose
        # tensorflow-cpu   the build that fits this machine (see choose_distribution)

Run it with the Python of the environment it is about (``plan`` reads that
environment's installed distributions).
"""

from __future__ import annotations

import importlib.metadata
import os
import pathlib
import platform
import re
import shlex
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_version_module(root: pathlib.Path = ROOT) -> dict:
    """Executes ``tf_sampling/version.py`` under ``root`` and returns its namespace."""
    scope: dict = {}
    exec((root / "tf_sampling" / "version.py").read_text(), scope)
    return scope


def installed_distributions(names: tuple[str, ...]) -> dict[str, str]:
    """Returns ``{name: version}`` for the distributions in ``names`` that are installed."""
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def _key(text: str) -> tuple[int, int, int]:
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if match is None:
        raise ValueError(f"`version` must look like '2.21.0', got {text!r}")
    return tuple(int(part) for part in match.groups(default="0"))


def _in_range(ver: str, versions: dict) -> bool:
    low, high = versions["MIN_TF_VERSION"], versions["MAX_TF_VERSION_EXCLUSIVE"]
    return _key(low) <= _key(ver) < _key(high)


def plan(wanted: str, installed: dict[str, str], versions: dict) -> tuple[list[str], str]:
    """Decides how to reach exactly one TensorFlow, ``wanted``, in the supported range.

    Args:
      wanted: str, ``"tensorflow"``, ``"tensorflow-cpu"`` or
        ``"tensorflow[and-cuda]"``.
      installed: dict, ``{distribution: version}`` of the TensorFlow
        distributions installed now.
      versions: dict, the namespace of ``tf_sampling/version.py``.

    Returns:
      (uninstall, requirement): the distributions to uninstall first (all of
      them when any other than ``wanted`` is present: they share files, so
      removing only the unwanted one would leave the other half-deleted), and
      the pip requirement to install. When switching from a single in-range
      TensorFlow, the requirement pins the same version, so a switch of build
      never changes the version too.

    Raises:
      ValueError: ``wanted`` is not one of the supported distributions.
    """
    requirement = versions["tensorflow_requirement"](wanted)  # Validates `wanted`.
    wanted_name = wanted.split("[", 1)[0]
    if not installed or set(installed) == {wanted_name}:
        return [], requirement
    uninstall = sorted(installed)
    if len(installed) == 1:
        (ver,) = installed.values()
        if _in_range(ver, versions):
            requirement = f"{wanted}=={ver}"
    return uninstall, requirement


def choose_distribution(override: str, has_nvidia_gpu: bool, system: str, machine: str) -> str:
    """Returns the TensorFlow build that fits a machine.

    Args:
      override: str, ``$TF_SAMPLING_TENSORFLOW``; when not empty it is the answer.
      has_nvidia_gpu: bool, whether ``nvidia-smi -L`` lists a GPU.
      system: str, ``platform.system()``, e.g. ``"Linux"``.
      machine: str, ``platform.machine()``, e.g. ``"x86_64"``.

    Returns:
      str: ``"tensorflow[and-cuda]"`` with an NVIDIA GPU; ``"tensorflow-cpu"``
      on other Linux x86-64 machines (no CUDA probing at import, so none of
      its ``cuInit`` errors); ``"tensorflow"`` elsewhere (macOS, aarch64),
      where that is the CPU build.
    """
    if override:
        return override
    if has_nvidia_gpu:
        return "tensorflow[and-cuda]"
    if system == "Linux" and machine.lower() in ("x86_64", "amd64"):
        return "tensorflow-cpu"
    return "tensorflow"


def _has_nvidia_gpu() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and any(line.startswith("GPU") for line in out.stdout.splitlines())


def main(argv: list[str]) -> int:
    try:
        return _answer(argv, load_version_module())
    except ValueError as err:
        print(f"tf_requirement.py: {err}", file=sys.stderr)
        return 2


def _answer(argv: list[str], versions: dict) -> int:
    if len(argv) == 2 and argv[0] == "plan":
        installed = installed_distributions(versions["TF_DISTRIBUTION_NAMES"])
        uninstall, requirement = plan(argv[1], installed, versions)
        print(f"tf_uninstall={shlex.quote(' '.join(uninstall))}")
        print(f"tf_install={shlex.quote(requirement)}")
        return 0
    if len(argv) == 2 and argv[0] == "requirement":
        print(versions["tensorflow_requirement"](argv[1]))
        return 0
    if argv == ["choose"]:
        choice = choose_distribution(
            os.environ.get("TF_SAMPLING_TENSORFLOW", ""),
            _has_nvidia_gpu(),
            platform.system(),
            platform.machine(),
        )
        versions["tensorflow_requirement"](choice)  # Validates an override.
        print(choice)
        return 0
    if argv == ["tested"]:
        print(" ".join(versions["TESTED_TF_VERSIONS"]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
