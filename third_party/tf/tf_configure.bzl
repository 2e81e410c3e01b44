"""Repository rule exposing the pip-installed TensorFlow to Bazel.

`custom_ops/configure.sh` asks the Python interpreter that will load the op
where TensorFlow keeps its headers and `libtensorflow_framework`, and writes
them to `.configure.bazelrc` as `--repo_env` values. This rule reads them and
symlinks both into an external repository `@local_config_tf` with two
targets: `:tf_headers` and `:libtensorflow_framework`.
"""

_ENV_VARS = [
    "TF_HEADER_DIR",
    "TF_SHARED_LIBRARY_DIR",
    "TF_SHARED_LIBRARY_NAME",
]

_BUILD = """\
package(default_visibility = ["//visibility:public"])

cc_library(
    name = "tf_headers",
    hdrs = glob(["include/**"], exclude = ["include/**/*.cc"]),
    includes = ["include"],
)

cc_library(
    name = "libtensorflow_framework",
    srcs = ["{lib}"],
)
"""

def _getenv(repository_ctx, name):
    value = repository_ctx.os.environ.get(name, "")
    if not value:
        fail(("%s is not set: run `bash custom_ops/configure.sh` (or " +
              "`bash custom_ops/build.sh`) before `bazel build`.") % name)
    return value

def _tf_configure_impl(repository_ctx):
    header_dir = _getenv(repository_ctx, "TF_HEADER_DIR")
    lib_dir = _getenv(repository_ctx, "TF_SHARED_LIBRARY_DIR")
    lib_name = _getenv(repository_ctx, "TF_SHARED_LIBRARY_NAME")
    repository_ctx.symlink(header_dir, "include")
    repository_ctx.symlink(lib_dir + "/" + lib_name, lib_name)
    repository_ctx.file("BUILD", _BUILD.format(lib = lib_name))

tf_configure = repository_rule(
    implementation = _tf_configure_impl,
    environ = _ENV_VARS,
    local = True,
)
