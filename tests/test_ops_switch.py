"""The public switch that turns this package's C++ kernels off (``tf_sampling.ops``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT
from tf_sampling import ops
from tf_sampling.ops import switch


@pytest.mark.parametrize(
    ("value", "enabled"),
    [(None, True), ("", True), ("0", True), ("false", True), (" Off ", True)]
    + [("1", False), ("true", False), ("YES", False), ("on", False)],
)
def test_the_environment_variable_is_read_as_a_flag(value, enabled):
    environ = {} if value is None else {switch.DISABLE_ENV_VAR: value}
    assert switch._enabled_by_environment(environ) is enabled


def test_a_value_that_is_no_flag_is_refused_naming_the_variable():
    with pytest.raises(
        ValueError,
        match=r"`TF_SAMPLING_DISABLE_CUSTOM_KERNELS`.*Received: "
        r"TF_SAMPLING_DISABLE_CUSTOM_KERNELS='maybe'",
    ):
        switch._enabled_by_environment({switch.DISABLE_ENV_VAR: "maybe"})


@pytest.fixture
def restored_switch():
    before = ops.custom_kernels_enabled()
    yield
    ops.set_custom_kernels_enabled(before)


def test_set_and_read_the_switch(restored_switch):
    ops.set_custom_kernels_enabled(False)
    assert ops.custom_kernels_enabled() is False
    ops.set_custom_kernels_enabled(True)
    assert ops.custom_kernels_enabled() is True
    for bad in (0, "false", None):
        with pytest.raises(TypeError, match=r"Argument `enabled` must be a bool. Received"):
            ops.set_custom_kernels_enabled(bad)
        assert ops.custom_kernels_enabled() is True  # a refused call changes nothing


def test_the_context_manager_restores_the_setting_also_on_errors(restored_switch):
    ops.set_custom_kernels_enabled(True)
    with ops.custom_kernels(False):
        assert not ops.custom_kernels_enabled()
        with ops.custom_kernels(True):
            assert ops.custom_kernels_enabled()
        assert not ops.custom_kernels_enabled()
    assert ops.custom_kernels_enabled()
    with pytest.raises(RuntimeError), ops.custom_kernels(False):
        raise RuntimeError("inside")
    assert ops.custom_kernels_enabled()
    with pytest.raises(TypeError), ops.custom_kernels("no"):
        pass
    assert ops.custom_kernels_enabled()


def test_the_environment_variable_keeps_lazy_adam_off_the_library():
    # Set before the import, the variable turns the kernels off: LazyAdam's
    # sparse step is built from TF ops, and the library is never loaded.
    code = textwrap.dedent(
        """
        import keras
        import numpy as np
        import tensorflow as tf
        import tf_sampling

        assert not tf_sampling.ops.custom_kernels_enabled()
        opt = tf_sampling.optimizers.LazyAdam(0.1)
        variable = keras.Variable(np.zeros((6, 2), "float32"))
        opt.build([variable])
        grad = tf.IndexedSlices(tf.ones([3, 2]), tf.constant([1, 4, 1]), tf.constant([6, 2]))
        fn = tf.function(lambda g: opt.apply([g], [variable]))
        types = {op.type for op in fn.get_concrete_function(grad).graph.get_operations()}
        assert "ResourceScatterUpdate" in types, types
        assert not any(t.startswith("TfSampling") for t in types), types
        fn(grad)
        assert not tf_sampling.ops.is_loaded()
        print("ok")
        """
    )
    env = {**os.environ, switch.DISABLE_ENV_VAR: "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["ok"]
