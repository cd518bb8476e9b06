"""Repository rule that exposes the pip TensorFlow's headers and library.

configure.sh writes the locations, read from tf.sysconfig of the chosen
Python, into .bazelrc as --repo_env values; nothing is downloaded.
"""

_HEADER_DIR = "TF_HEADER_DIR"
_LIB_DIR = "TF_SHARED_LIBRARY_DIR"
_LIB_NAME = "TF_SHARED_LIBRARY_NAME"

def _required_env(repository_ctx, name):
    value = repository_ctx.os.environ.get(name)
    if not value:
        fail("%s is not set: run ./configure.sh first (it writes .bazelrc)." % name)
    return value

def _tf_configure_impl(repository_ctx):
    header_dir = _required_env(repository_ctx, _HEADER_DIR)
    lib_dir = _required_env(repository_ctx, _LIB_DIR)
    lib_name = _required_env(repository_ctx, _LIB_NAME)
    repository_ctx.symlink(header_dir, "include")
    repository_ctx.symlink(lib_dir + "/" + lib_name, lib_name)
    # libtensorflow_cc.so.N sits beside libtensorflow_framework.so.N.
    cc_name = lib_name.replace("libtensorflow_framework", "libtensorflow_cc")
    repository_ctx.symlink(lib_dir + "/" + cc_name, cc_name)
    repository_ctx.template(
        "BUILD",
        Label("//third_party/tf:BUILD.tpl"),
        {
            "%{TF_SHARED_LIBRARY_NAME}": lib_name,
            "%{TF_CC_LIBRARY_NAME}": cc_name,
        },
    )

tf_configure = repository_rule(
    implementation = _tf_configure_impl,
    environ = [_HEADER_DIR, _LIB_DIR, _LIB_NAME],
    local = True,
)
