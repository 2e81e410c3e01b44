"""Guards on the source tree: private TF/Keras reaches stay few, packages import downward only,
the demos stay out of the wheel and use the public API."""

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
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
# Upward imports with their reason (none: the functional losses reach their
# default samplers through the hook in _core/default_sampler.py).
ALLOWED_UPWARD: set[tuple[str, str]] = set()


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


# The checks live with their owner, each file of them short; no catch-all module.
CHECK_MODULE = re.compile(r"(^|_)(checks|args|options)\.py$|^sampled_values\.py$")
OWNED_CHECKS = {
    "_core/checks.py",  # the primitives
    "_core/loss_args.py",  # the functional losses' arguments
    "_core/sampled_values.py",  # the sampled_values triple
    "_core/sampler_args.py",  # sampler arguments shared by ops and samplers
    "_core/fixed_unigram_args.py",  # the fixed-unigram distribution's options
    "_keras/options.py",  # the Keras heads' and losses' options
    "optimizers/_checks.py",  # the lazy optimizers' options
}
MAX_CHECK_LINES = 450


def test_checks_live_with_their_owner_in_short_files():
    assert not (PACKAGE / "_core" / "validation.py").exists(), "checks belong with their owner"
    sizes = {
        path.relative_to(PACKAGE).as_posix(): len(path.read_text().splitlines())
        for path in PACKAGE.rglob("*.py")
        if CHECK_MODULE.search(path.name)
    }
    assert OWNED_CHECKS <= set(sizes), sorted(OWNED_CHECKS - set(sizes))
    too_long = {name: n for name, n in sizes.items() if n > MAX_CHECK_LINES}
    assert not too_long, f"check modules over {MAX_CHECK_LINES} lines: {too_long}"


def test_core_imports_neither_keras_nor_anything_above_it():
    # No waiver: not even a deferred import inside a function (ast.walk sees those).
    wrong = []
    for path in (PACKAGE / "_core").rglob("*.py"):
        relative = path.relative_to(PACKAGE).as_posix()
        for module in _imports(path):
            top = module.split(".")[0]
            if top in ("keras", "tf_keras") or (
                top == "tf_sampling" and _top(module) not in ("_core", "version")
            ):
                wrong.append(f"{relative} imports {module}")
        for line in _code_lines(path):
            if re.search(r"\btf\.keras\b|\bkeras\.", line):
                wrong.append(f"{relative}: {line.strip()}")
    assert not wrong, wrong


def test_the_layering_guards_read_real_imports():
    # The guards above must not pass because the scan finds nothing.
    core = {module for path in (PACKAGE / "_core").rglob("*.py") for module in _imports(path)}
    assert "tf_sampling._core.checks" in core and "tensorflow" in core
    samplers = set(_imports(PACKAGE / "samplers" / "xla_defaults.py"))
    assert "tf_sampling._core" in samplers or "tf_sampling._core.default_sampler" in samplers


# What the demos (top-level demo/, outside the wheel) may import from tf_sampling.
PUBLIC_MODULES = {"nn", "layers", "losses", "metrics", "optimizers", "samplers", "ops", "compat"}
DEMO = ROOT / "demo"


def _setup_keyword(name: str) -> ast.expr | None:
    """The ``name=`` argument of setup.py's ``setup(...)`` call (None if absent)."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup":
            return next((k.value for k in node.keywords if k.arg == name), None)
    raise AssertionError("setup.py has no setup(...) call")


def test_the_wheel_has_no_demo():
    import setuptools  # noqa: PLC0415

    assert not (PACKAGE / "demo").exists(), "the demo belongs in the top-level demo/"
    # setup.py's packages=find_packages(include=[...]): apply the same include here.
    packages = _setup_keyword("packages")
    assert isinstance(packages, ast.Call) and packages.func.id == "find_packages"
    (include,) = [ast.literal_eval(k.value) for k in packages.keywords if k.arg == "include"]
    shipped = set(setuptools.find_packages(where=str(ROOT), include=include))
    everything = set(setuptools.find_packages(where=str(ROOT)))
    # The demo is a package of the checkout, and the include leaves it out.
    assert {"demo", "demo.language_model"} <= everything
    assert {"tf_sampling", "tf_sampling.layers", "tf_sampling.ops"} <= shipped
    assert not [p for p in shipped if p.split(".")[0] != "tf_sampling" or ".demo" in p], shipped
    # No console script points into a demo either.
    entry_points = _setup_keyword("entry_points")
    assert entry_points is None or "demo" not in ast.unparse(entry_points)


def test_demo_imports_only_public_tf_sampling_modules():
    files = sorted(DEMO.rglob("*.py"))
    assert files, "no demo sources found"
    wrong, seen = [], set()
    for path in files:
        relative = path.relative_to(ROOT).as_posix()
        for module in _imports(path):
            parts = module.split(".")
            if parts[0] != "tf_sampling":
                continue
            seen.add(relative)
            if len(parts) > 1 and (
                parts[1] not in PUBLIC_MODULES or any(p[:1] == "_" for p in parts)
            ):
                wrong.append(f"{relative} imports {module}")
        # Attribute reaches too: tf_sampling._core.x after `import tf_sampling`.
        for line in _code_lines(path):
            if re.search(r"\btf_sampling\._[A-Za-z]", line):
                wrong.append(f"{relative}: {line.strip()}")
    assert not wrong, wrong
    # The scan reads the demo's real imports (the language model uses tf_sampling).
    assert "demo/language_model/model.py" in seen, seen
