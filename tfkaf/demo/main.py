"""`tfkaf demo` from end to end: data, training, table, plots, exports."""

import json
import os
import platform
import time

from tfkaf.demo.models import configs
from tfkaf.demo.models import load_mnist1d
from tfkaf.demo.report import plot_all
from tfkaf.demo.report import results_json
from tfkaf.demo.report import table
from tfkaf.demo.report import verdict_lines
from tfkaf.demo.report import write_docs
from tfkaf.demo.serving import export_best
from tfkaf.demo.stats import VERDICT_RULE
from tfkaf.demo.training import QUICK_RECIPE
from tfkaf.demo.training import Recipe
from tfkaf.demo.workers import train_all


def _write(out_dir, name, text):
  path = os.path.join(out_dir, name)
  with open(path, "w", encoding="utf-8") as f:
    f.write(text)
  return path


def run(out_dir="tfkaf_out", quick=False, strategy="none", log=print,
        seeds=None, write_docs_to=None, recipe=None, rows=None, jobs=None):
  """Runs the demo; returns 0. Writes table, JSON, plots and the SavedModel.

  Args:
    out_dir: output directory.
    quick: one architecture (MLP), equal-parameter rows only, few steps,
      one seed unless `seeds` says otherwise.
    strategy: "none" or "mirrored" (tf.distribute).
    log: where progress and results are printed.
    seeds: seeds per row (default 3; 1 when quick).
    write_docs_to: optional Markdown path for the results (e.g.
      docs/results.md), images beside it.
    recipe, rows: a `Recipe` and a list of `Config` in place of the default.
    jobs: worker processes for the training runs (see `train_all`).
  """
  start, load_start = time.perf_counter(), os.getloadavg()[0]
  seeds = seeds or (1 if quick else 3)
  recipe = recipe or (QUICK_RECIPE if quick else Recipe())
  rows = rows or configs(quick)
  os.makedirs(out_dir, exist_ok=True)
  log("MNIST-1D: generating the data set locally (mnist1d) ...")
  data = load_mnist1d()
  log(f"training {len(rows)} models x {seeds} seed(s) "
      f"({'quick' if quick else 'full'} run, strategy={strategy}): "
      + recipe.describe())
  entries, models = train_all(rows, seeds, data, recipe, strategy, log, jobs)
  text = "\n".join([table(entries), "", VERDICT_RULE]
                   + verdict_lines(entries))
  log("\n" + text)
  _write(out_dir, "results.txt", text + "\n")
  plot_all(entries, models, data[2], out_dir, log)
  export_best(entries, models, data, out_dir, log)
  facts = {"command": "tfkaf demo" + (" --quick" if quick else "") + (
      f" --seeds {seeds}" if seeds != (1 if quick else 3) else "") + (
          f" --write-docs {write_docs_to}" if write_docs_to else ""),
           "seeds": seeds, "cpus": os.cpu_count(),
           "platform": platform.platform(), "load_start": load_start,
           "load_end": os.getloadavg()[0],
           "wall_seconds": time.perf_counter() - start}
  _write(out_dir, "results.json", json.dumps(
      results_json(entries, recipe, quick=quick, **facts),
      indent=1))
  if write_docs_to:
    path = write_docs(write_docs_to, entries, models, recipe, data[2], facts)
    log(f"wrote {path}")
  log(f"demo finished in {facts['wall_seconds']:.0f} s (1-minute load "
      f"average {load_start:.1f} at the start, {facts['load_end']:.1f} at "
      "the end)")
  return 0
