"""`python -P -m fuzz MODE ...` (see worker.command): the harness's
subprocesses.

  --worker                          the case loop of worker.Worker
  --leak OP ITERATIONS WARMUP       stress.leak_main
  --threads INTRA INTER DIR DTYPES  stress.threads_main (DTYPES: a,b,...)
  --concurrency THREADS REPEATS     stress.concurrency_main
"""

import sys


def main(argv):
  mode = argv[1] if len(argv) > 1 else ""
  if mode == "--worker":
    from fuzz import worker  # pylint: disable=g-import-not-at-top
    worker.worker_main()
    return
  from fuzz import stress  # pylint: disable=g-import-not-at-top
  if mode == "--leak":
    stress.leak_main(argv[2], int(argv[3]), int(argv[4]))
  elif mode == "--threads":
    stress.threads_main(int(argv[2]), int(argv[3]), argv[4],
                        argv[5].split(","))
  elif mode == "--concurrency":
    stress.concurrency_main(int(argv[2]), int(argv[3]))
  else:
    raise SystemExit(f"unknown mode {mode!r}: expected --worker, --leak, "
                     "--threads or --concurrency")


if __name__ == "__main__":
  main(sys.argv)
