package(default_visibility = ["//visibility:public"])

# Every header of the pip TensorFlow (Eigen, absl, tsl, xla included).
cc_library(
    name = "tf_header_lib",
    hdrs = glob(["include/**"]),
    # The XLA builder headers (cc/xla) include highwayhash and farmhash by
    # their own paths.
    includes = [
        "include",
        "include/external/farmhash_archive/src",
        "include/external/highwayhash",
    ],
)

cc_library(
    name = "libtensorflow_framework",
    srcs = ["%{TF_SHARED_LIBRARY_NAME}"],
)

# tf2xla's XlaOpKernel API (the XLA kernels of cc/xla).
cc_library(
    name = "libtensorflow_cc",
    srcs = ["%{TF_CC_LIBRARY_NAME}"],
)
