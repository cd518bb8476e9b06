"""`python -m tfkaf` is the `tfkaf` command."""

from tfkaf.cli import run

if __name__ == "__main__":
  run()
