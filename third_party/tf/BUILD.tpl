package(default_visibility = ["//visibility:public"])

# Every header of the pip TensorFlow (Eigen, absl, tsl, xla included).
cc_library(
    name = "tf_header_lib",
    hdrs = glob(["include/**"]),
    includes = ["include"],
)

cc_library(
    name = "libtensorflow_framework",
    srcs = ["%{TF_SHARED_LIBRARY_NAME}"],
)
