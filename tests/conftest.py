"""Shared test setup: quiet TensorFlow, import the source tree, reset global state."""

import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _reset_keras_policy():
    """Each test starts and ends with the float32 Keras policy."""
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


# Long tests: end-to-end runs that repeat what faster tests already check (every doc page's
# code blocks, the demo jobs end to end, XLA compiles of whole fits, extra parameter-server
# fault drills). The CI set leaves them out to stay within its time budget; run them with
# TF_SAMPLING_LONG_TESTS=1 bash scripts/test.sh (or mark them with @pytest.mark.long).
LONG_TESTS = (
    "tests/test_docs_examples.py::test_code_blocks_run[compiled_sampling.md]",
    "tests/test_docs_examples.py::test_code_blocks_run[keras.md]",
    "tests/test_docs_examples.py::test_code_blocks_run[full_softmax.md]",
    "tests/test_docs_examples.py::test_code_blocks_run[adaptive_softmax.md]",
    "tests/test_docs_examples.py::test_code_blocks_run[migration.md]",
    "tests/test_docs_examples.py::test_code_blocks_run[distributed.md]",
    "tests/test_docs_examples.py::test_code_blocks_run[retrieval.md]",
    "tests/test_large_vocab.py::test_exact_perplexity_matches_numpy",
    "tests/test_large_vocab.py::test_job_end_to_end_on_synthetic_packages",
    "tests/test_demo_pipeline.py::test_tiny_pipeline_writes_table_json_and_png",
    "tests/test_demo_stateful.py::test_tiny_stateful_preset_run_end_to_end",
    "tests/test_adaptive_softmax.py::test_jit_compile_matches_eager",
    "tests/test_keras_jit.py::test_compiled_fit_on_out_of_range_labels_reports_nan_not_a_plausible_loss",
    "tests/test_samplers_compilable.py::test_keras_jit_fit_lowers_the_full_loss_of_every_layer",
    "tests/test_compat.py::test_example_tf1_migration_runs",
    "tests/test_compiled_losses.py::test_default_sampler_under_jit_is_the_compilable_one",
    "tests/test_distributed.py::test_ps_worker_killed_mid_training_recovers_without_losing_checkpoints",
    "tests/test_distributed.py::test_ps_checkpoint_restores_into_other_worker_and_shard_counts",
)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "long: left out of the CI set unless TF_SAMPLING_LONG_TESTS=1"
    )


def pytest_collection_modifyitems(config, items):
    run_long = os.environ.get("TF_SAMPLING_LONG_TESTS", "") not in ("", "0")
    skip = pytest.mark.skip(reason="long test: set TF_SAMPLING_LONG_TESTS=1 to run it")
    for item in items:
        if item.nodeid.startswith(LONG_TESTS):
            item.add_marker(pytest.mark.long)
        if not run_long and "long" in item.keywords:
            item.add_marker(skip)
