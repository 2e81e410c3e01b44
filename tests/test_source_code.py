"""Guards on the source tree: private TF/Keras reaches stay few, packages import downward only."""

from __future__ import annotations

import ast
import re

from tests.conftest import ROOT

PACKAGE = ROOT / "tf_sampling"

# Each private reach, where it is and why no public API does the job. A new
# one fails `test_private_reaches_are_only_the_allowed_ones` until it is added
# here with its reason.
ALLOWED_PRIVATE = {
    # Keras 3's compile() looks string losses up only in this table.
    ("losses/registration.py", "keras.src"),
    # The TF2 sharded variable type has no public alias.
    ("_core/sharding.py", "tf.__internal__"),
    # Whether a function is being compiled by XLA (no public API says).
    ("_core/xla.py", "tf.__internal__"),
    # Keras' record of what consumes a layer's output (a warning only).
    ("layers/base.py", "_outbound_nodes"),
}
PRIVATE = re.compile(r"tensorflow\.python|keras\.src|tf\.__internal__|_outbound_nodes|_keras_mask")


def _code_lines(path):
    """Source lines with comments, docstrings and other string-only statements dropped."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            docstrings.update(range(node.lineno, node.end_lineno + 1))
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if number not in docstrings:
            yield line.split("#", 1)[0]


def test_private_reaches_are_only_the_allowed_ones():
    found = set()
    for path in PACKAGE.rglob("*.py"):
        for line in _code_lines(path):
            for match in PRIVATE.finditer(line):
                found.add((path.relative_to(PACKAGE).as_posix(), match.group(0)))
    assert found <= ALLOWED_PRIVATE, f"new private reaches: {sorted(found - ALLOWED_PRIVATE)}"


def test_the_scanner_sees_a_private_import():
    # The guard above must not pass because the scan reads nothing.
    sample = ROOT / "tests" / "_private_sample.py"
    sample.write_text('"""keras.src in a docstring is fine."""\nimport keras.src  # x\n')
    try:
        lines = list(_code_lines(sample))
    finally:
        sample.unlink()
    assert [m.group(0) for line in lines for m in PRIVATE.finditer(line)] == ["keras.src"]


# The package's layers, lowest first: a module may import only from its own
# layer or below it. `nn` and `compat` are thin faces over `_core`.
LAYERS = [
    {"version"},
    {"_core", "_tf_version_check"},
    {"ops"},
    {"samplers"},
    {"_keras", "nn"},
    {"compat"},
    {"layers", "losses", "metrics", "optimizers"},
    {"demo"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
# Upward imports with their reason.
ALLOWED_UPWARD = {
    # TAPAS' default sampler (TF contrib's) is the learned-unigram op; imported
    # inside the function, only when no sampled_values are given.
    ("_core/rank_sampled_softmax.py", "tf_sampling.ops"),
}


def _top(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "tf_sampling" or len(parts) < 2:
        return None
    return parts[1]


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "tf_sampling":
                yield from (f"tf_sampling.{alias.name}" for alias in node.names)
            else:
                yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def test_imports_go_downward_and_siblings_do_not_import_each_other():
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if relative.as_posix() == "__init__.py":
            continue
        own = relative.parts[0].removesuffix(".py")
        assert own in RANK, f"{relative}: add its package to LAYERS"
        for module in _imports(path):
            target = _top(module)
            if target is None or target == own:
                continue
            if (relative.as_posix(), module) in ALLOWED_UPWARD:
                continue
            if RANK.get(target, len(LAYERS)) >= RANK[own]:
                wrong.append(f"{relative} imports {module}")
    assert not wrong, wrong


def test_layers_and_losses_never_name_each_other():
    # The literal check, comments and docstrings included.
    for path in (PACKAGE / "layers").rglob("*.py"):
        text = path.read_text()
        assert "tf_sampling.losses" not in text and "from tf_sampling import losses" not in text
    for path in (PACKAGE / "losses").rglob("*.py"):
        assert "tf_sampling.layers" not in path.read_text(), path
