"""Builds tfkaf: Bazel compiles the op plugin, setuptools packages it.

    pip install .                           isolated build: pyproject.toml
                                            installs a TensorFlow of the same
                                            release series to build against
    pip install --no-build-isolation .      the fast path: builds against the
                                            TensorFlow already installed
    TFKAF_CUDA=1 pip install --no-build-isolation .   also CUDA kernels
    pip wheel --no-build-isolation --no-deps -w dist .   a wheel

Environment: BAZEL (default: bazel on PATH), TFKAF_CUDA, TFKAF_CUDA_ARCHS,
NVCC / CUDA_HOME (see configure.sh).
"""

import json
import os
import shutil
import subprocess
import sys

from setuptools import find_packages
from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

_ROOT = os.path.dirname(os.path.abspath(__file__))
_PLUGIN = "_tfkaf_ops.so"


def _version():
  with open(os.path.join(_ROOT, "tfkaf", "__init__.py"), encoding="utf-8") as f:
    for line in f:
      if line.startswith("__version__"):
        return line.split("=")[1].strip().strip('"')
  raise RuntimeError("tfkaf/__init__.py has no __version__")


def _tensorflow_version():
  from importlib import metadata  # pylint: disable=g-import-not-at-top

  for name in ("tensorflow", "tensorflow-cpu", "tf-nightly"):
    try:
      return metadata.version(name)
    except metadata.PackageNotFoundError:
      continue
  raise RuntimeError(
      "tfkaf builds its op plugin against the installed TensorFlow, and none "
      "is installed in this Python. Install tensorflow>=2.21,<2.22 first, then "
      "pip install --no-build-isolation .")


_PLOT = ["matplotlib>=3.8"]
_DEMO = _PLOT + ["mnist1d>=0.0.2"]
# tfkaf.export: LiteRT and ONNX. tf2onnx < 1.17 pins protobuf 3.20, which
# TensorFlow 2.21 (protobuf >= 6.31.1, < 8) refuses.
_EXPORT = ["tf2onnx>=1.17,<1.18", "onnx>=1.17,<1.24",
           "onnxruntime>=1.20,<1.33", "ai-edge-litert>=1.4,<2.4",
           "protobuf>=6.31.1,<8"]


class BinaryDistribution(Distribution):
  """The wheel holds a compiled plugin: platform-specific."""

  def has_ext_modules(self):
    return True


class BuildPyWithPlugin(build_py):
  """Runs configure.sh and Bazel, then ships the plugin inside the package."""

  def run(self):
    super().run()
    tf_version = _tensorflow_version()
    env = dict(os.environ, PYTHON=sys.executable)
    subprocess.check_call([os.path.join(_ROOT, "configure.sh")], cwd=_ROOT,
                          env=env)
    bazel = os.environ.get("BAZEL", "bazel")
    if shutil.which(bazel) is None:
      raise RuntimeError(
          f"Bazel ({bazel}) not found: apt-get install bazel-bootstrap, or "
          "set BAZEL to its path.")
    subprocess.check_call([bazel, "build", f"//:{_PLUGIN}"], cwd=_ROOT,
                          env=env)
    package_dir = os.path.join(self.build_lib, "tfkaf")
    os.makedirs(package_dir, exist_ok=True)
    target = os.path.join(package_dir, _PLUGIN)
    if os.path.exists(target):
      os.chmod(target, 0o755)
    shutil.copyfile(os.path.join(_ROOT, "bazel-bin", _PLUGIN), target)
    os.chmod(target, 0o755)
    with open(os.path.join(package_dir, "_build_info.json"), "w",
              encoding="utf-8") as f:
      json.dump({"tensorflow_version": tf_version}, f)


setup(
    name="tfkaf",
    version=_version(),
    description=("Trainable activation functions (KAF, 2D-KAF, DeepSplines) "
                 "as fused TensorFlow custom ops, with Keras 3 layers."),
    long_description=open(os.path.join(_ROOT, "README.md"),
                          encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["tfkaf", "tfkaf.*"]),
    py_modules=["_tfkaf_cli"],
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "numpy>=1.26",
    ],
    extras_require={
        "plot": _PLOT,
        "demo": _DEMO,
        "export": _EXPORT,
        # Everything the test suite exercises.
        "test": ["pytest>=8", "hypothesis>=6.100"] + _DEMO + _EXPORT,
    },
    entry_points={"console_scripts": ["tfkaf = _tfkaf_cli:run"]},
    cmdclass={"build_py": BuildPyWithPlugin},
    distclass=BinaryDistribution,
    zip_safe=False,
)
