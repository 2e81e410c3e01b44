// Copyright 2026 The tf_sampling Authors. Licensed under the Apache
// License 2.0.
//
// Records the TensorFlow version the library was compiled against as a plain
// string in the binary. tf_sampling/ops/_loader.py reads it from the file
// *before* loading the library, so a build for another TensorFlow version is
// reported with a clear message instead of failing (or crashing) in dlopen.
// configure.sh passes the version as -DTF_SAMPLING_TF_VERSION=<version>.

#ifndef TF_SAMPLING_TF_VERSION
#error "TF_SAMPLING_TF_VERSION is not defined: run custom_ops/configure.sh"
#endif

#define TF_SAMPLING_STR_HELPER(x) #x
#define TF_SAMPLING_STR(x) TF_SAMPLING_STR_HELPER(x)

extern "C" {
extern const char tf_sampling_build_tag[];
__attribute__((used)) const char tf_sampling_build_tag[] =
    "tf_sampling:built-against-tensorflow=" TF_SAMPLING_STR(
        TF_SAMPLING_TF_VERSION) ";";
}
