"""Launcher of the `tfkaf` command: TensorFlow's start-up lines kept quiet.

TensorFlow 2.21 writes start-up lines to the process's stderr while it is
imported and while its devices start (absl's "All log messages before
absl::InitializeLog() ..." notice, the CUDA stub's "Could not find cuda
drivers", cuInit failures on machines without a GPU). Several come from
absl logging before it is initialised, which TF_CPP_MIN_LOG_LEVEL does not
reach. So, unless `--verbose` is given, this launcher points file descriptor
2 at a temporary file while `tfkaf` (and with it TensorFlow and the op
plugin) is imported and the devices start, then restores it; if that import
fails, the captured lines are written out with the error. Later warnings
and errors still reach the terminal (TF_CPP_MIN_LOG_LEVEL=2 drops only
TensorFlow's INFO and WARNING lines).

It lives outside the `tfkaf` package because importing anything inside the
package imports TensorFlow first.
"""

import os
import sys
import tempfile

__all__ = ["run"]


def _import_quietly(argv):
  """Imports tfkaf.cli with fd 2 captured; replays the capture on failure.
  The command's process settings (cli.prepare_process) come first."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as capture:
    os.dup2(capture.fileno(), 2)
    try:
      from tfkaf import cli  # pylint: disable=g-import-not-at-top
      import tensorflow as tf  # pylint: disable=g-import-not-at-top

      cli.prepare_process(argv)
      tf.config.list_logical_devices()  # the devices' start-up lines
      tf.get_logger().setLevel("ERROR")
      return cli
    except BaseException:
      sys.stderr.flush()
      os.dup2(saved, 2)
      capture.seek(0)
      sys.stderr.write(capture.read().decode(errors="replace"))
      raise
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)


def run():
  """Console-script entry point of `tfkaf`."""
  argv = sys.argv[1:]
  if "--verbose" in argv:
    from tfkaf import cli  # pylint: disable=g-import-not-at-top
  else:
    cli = _import_quietly(argv)
  sys.exit(cli.main(argv))


if __name__ == "__main__":
  run()
