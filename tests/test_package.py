"""The package surface: version, imports, registration, lazy op loading."""

import subprocess
import sys
import textwrap

from tests.conftest import ROOT


def test_import_registers_keras_objects_without_loading_the_op():
    """`import tf_sampling` alone lets Keras deserialize our classes; the .so stays unloaded."""
    code = textwrap.dedent(
        """
        import keras
        import tf_sampling
        names = ["SampledSoftmax", "NCE", "RankSampledSoftmax", "SampledSoftmaxLoss", "NCELoss",
                 "RankSampledSoftmaxLoss", "LearnedUnigramSampler"]
        missing = [n for n in names if keras.saving.get_registered_object("tf_sampling>" + n) is None]
        assert not missing, missing
        assert not tf_sampling.ops.is_loaded()
        assert tf_sampling.metrics.Perplexity is tf_sampling.losses.Perplexity
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
