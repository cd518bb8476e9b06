"""The demo's results: table, curves, JSON, verdict lines, docs/results.md."""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from tfkaf.demo.models import ARCHITECTURES
from tfkaf.demo.models import KAF2D_OPTIONS
from tfkaf.demo.models import KAF_OPTIONS
from tfkaf.demo.models import SPLINE_OPTIONS
from tfkaf.demo.stats import format_mean_std
from tfkaf.demo.stats import format_p
from tfkaf.demo.stats import summary
from tfkaf.demo.stats import verdict
from tfkaf.demo.stats import VERDICT_RULE


_COLUMNS = ("model", "budget", "width", "params", "test acc %",
            "best-epoch acc %*", "s/epoch", "vs ReLU (Welch p)")


_FOOTNOTE = ("test acc: of the final weights, mean ± std over seeds. "
             "*best-epoch acc: the best test accuracy over all epochs, i.e. "
             "an epoch chosen on the test set: optimistic, for comparison "
             "with published figures only, never used for a verdict.")


def _baseline(entries, architecture):
  for config, runs in entries:
    if config.architecture == architecture and config.variant == "relu":
      return runs
  return None


def _cells(config, runs, baseline):
  accuracy = [r.test_accuracy for r in runs]
  if config.variant == "relu":
    judged = "reference"
  elif baseline is None:
    judged = "-"
  else:
    word, p = verdict(accuracy, [r.test_accuracy for r in baseline])
    judged = f"{word} ({format_p(p)})" if len(runs) > 1 else f"{word} (1 seed)"
  budget = "paper" if config.variant == "relu" else (
      "= params" if config.budget == "params" else "= width")
  widths = config.widths
  width = str(widths[0]) if len(set(widths)) == 1 else ",".join(
      str(w) for w in widths)
  return (config.name, budget, width, str(config.parameters),
          format_mean_std(accuracy),
          format_mean_std([r.best_test_accuracy for r in runs]),
          format_mean_std([r.seconds_per_epoch for r in runs], 1.0, 3),
          judged)


def table(entries, markdown=False):
  """The comparison table of [(Config, [RunResult, ...]), ...] as text (or
  Markdown), with its footnote."""
  rows = [_COLUMNS] + [
      _cells(config, runs, _baseline(entries, config.architecture))
      for config, runs in entries]
  if markdown:
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "|" + "|".join(
        " --- " if i < 2 else " ---: " for i in range(len(_COLUMNS))) + "|")
    return "\n".join(lines) + "\n\n" + _FOOTNOTE
  widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
  lines = ["  ".join(cell.ljust(w) if i in (0, 1, 7) else cell.rjust(w)
                     for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
           for row in rows]
  return "\n".join(lines) + "\n" + _FOOTNOTE


_COLORS = {"relu": "black", "kaf": "tab:blue", "kaf2d": "tab:orange",
           "spline": "tab:green"}


def _mean_curve(runs):
  """Steps, mean and std over seeds of the test accuracy per epoch (where
  runs differ in length, over the runs that reached that epoch)."""
  curves = [r.history["test_accuracy"] for r in runs]
  stack = np.full((len(curves), max(len(c) for c in curves)), np.nan)
  for i, curve in enumerate(curves):
    stack[i, :len(curve)] = curve
  steps = np.arange(1, stack.shape[1] + 1) * (runs[0].steps //
                                               runs[0].epochs)
  return steps, np.nanmean(stack, 0), np.nanstd(stack, 0)


def _style(config):
  if config.recipe == "deepsplines":
    return ":"
  return "--" if config.budget == "width" and config.variant != "relu" else "-"


def plot_curves(entries, path, dpi=110):
  """Mean test-accuracy curve per row with a ±1 std band over seeds, one
  panel per architecture (the y axis from 12 points below the lowest final
  mean), the legend beside the data."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  architectures = [a for a in ARCHITECTURES
                   if any(c.architecture == a for c, _ in entries)]
  fig, axes = plt.subplots(len(architectures), 1, squeeze=False,
                           figsize=(9.0, 3.6 * len(architectures)))
  for ax, architecture in zip(axes[:, 0], architectures):
    finals = [np.mean([r.test_accuracy for r in runs])
              for config, runs in entries
              if config.architecture == architecture]
    ax.set_ylim(max(0.0, min(finals) - 0.12), min(1.0, max(finals) + 0.03))
    for config, runs in entries:
      if config.architecture != architecture:
        continue
      steps, mean, std = _mean_curve(runs)
      color = _COLORS[config.variant]
      ax.plot(steps, mean, _style(config), color=color, lw=1.4,
              label=f"{config.name} ({len(runs)} seed"
              f"{'s' if len(runs) > 1 else ''})")
      ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.12,
                      lw=0)
    ax.set_title(f"{architecture.upper()}: test accuracy per epoch (mean, "
                 "band ±1 std over seeds; verdicts use the last point)",
                 fontsize=10)
    ax.set_xlabel("training step")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              frameon=False)
  fig.tight_layout()
  fig.savefig(path, dpi=dpi)
  plt.close(fig)
  return path


def results_json(entries, recipe, **extra):
  """The results as a JSON-ready dict: recipe, verdict rule, and per row its
  configuration, summary statistics, verdict and per-seed runs."""
  rows = []
  for config, runs in entries:
    baseline = _baseline(entries, config.architecture)
    word, p = ("reference", None)
    if config.variant != "relu" and baseline is not None:
      word, p = verdict([r.test_accuracy for r in runs],
                        [r.test_accuracy for r in baseline])
    rows.append({
        "name": config.name, "architecture": config.architecture,
        "variant": config.variant, "budget": config.budget,
        "recipe": config.recipe, "widths": list(config.widths),
        "parameters": config.parameters, "verdict": word, "p_value": p,
        **{key: summary([getattr(r, key) for r in runs]) for key in (
            "test_accuracy", "best_test_accuracy", "seconds_per_epoch")},
        "runs": [dataclasses.asdict(r) for r in runs]})
  return {"recipe": dataclasses.asdict(recipe),
          "recipe_text": recipe.describe(), "verdict_rule": VERDICT_RULE,
          "rows": rows, **extra}


def verdict_lines(entries):
  """One line per non-ReLU row: its verdict against ReLU, with the numbers."""
  lines = []
  for config, runs in entries:
    baseline = _baseline(entries, config.architecture)
    if config.variant == "relu" or baseline is None:
      continue
    ours = [r.test_accuracy for r in runs]
    theirs = [r.test_accuracy for r in baseline]
    word, p = verdict(ours, theirs)
    test = (format_p(p) if min(len(ours), len(theirs)) > 1
            else "1 seed: no test")
    budget = ("equal parameters" if config.budget == "params"
              else "equal width")
    lines.append(
        f"{config.name} ({budget}, {config.parameters} parameters) vs "
        f"{config.architecture}_relu: {word} ({format_mean_std(ours)}% vs "
        f"{format_mean_std(theirs)}%, {test})")
  return lines


_NOTES = "## Notes"  # from this heading on, docs/results.md is kept as is


def _markdown(entries, recipe, facts, images):
  """The text of docs/results.md (without the kept notes)."""
  mlp, cnn = (_baseline(entries, a) for a in ARCHITECTURES)
  paper = []
  for runs, name, published in ((mlp, "MLP", 68), (cnn, "CNN", 94)):
    if runs:
      accuracy = format_mean_std([r.test_accuracy for r in runs])
      paper.append(f"ReLU {name}: {accuracy}% (MNIST-1D paper: about "
                   f"{published}%)")
  def spelled(options):
    return ", ".join(f"{key}={value}" for key, value in options.items())

  options = (f"KAF {spelled(KAF_OPTIONS)} (ELU start by kernel ridge "
             f"regression); 2D-KAF {spelled(KAF2D_OPTIONS)} (random start); "
             f"DeepBSpline {spelled(SPLINE_OPTIONS)} (leaky-ReLU start).")
  parts = [
      "# `tfkaf demo`: results on MNIST-1D", "",
      f"Written by `{facts['command']}` ({facts['seeds']} seeds per row) on "
      f"{facts['cpus']} CPU cores, TensorFlow {tf.__version__}: wall time "
      f"{facts['wall_seconds'] / 60:.1f} min, 1-minute load average "
      f"{facts['load_start']:.1f} at the start and {facts['load_end']:.1f} "
      "at the end.", "",
      "## Recipe", "",
      "Data: MNIST-1D generated by `mnist1d` (default arguments, seed 42): "
      "4000 training and 1000 test sequences of length 40. Models: the "
      "paper's MLP 40-100-100-10 (second hidden layer residual) and CNN "
      "(Conv1D 25 channels, kernels 5, 3, 3, stride 2, zero padding 1, "
      "then Dense 125-10), with Keras' default (Glorot uniform) "
      "initialisation. Activations: " + options, "",
      "Training: " + recipe.describe(), "",
      "## Table", "", table(entries, markdown=True), "",
      "## Verdicts", "", VERDICT_RULE, ""]
  parts += [f"* {line}" for line in verdict_lines(entries)]
  parts += ["", "Baselines: " + "; ".join(paper) + ".", "", "## Plots", ""]
  parts += [f"![{os.path.splitext(name)[0]}]({name})\n" for name in images]
  return "\n".join(parts)


def write_docs(path, entries, models, recipe, x_test, facts):
  """Writes the results as Markdown to `path` (images beside it), keeping a
  '## Notes' section of an earlier version of the file."""
  from tfkaf import plot  # pylint: disable=g-import-not-at-top

  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  images = [os.path.basename(plot_curves(
      entries, os.path.join(directory, "results_accuracy.png"), dpi=80))]
  for config, _ in entries:
    if config.variant != "relu" and config.budget == "params":
      name = f"results_{config.name}_act0.png"
      plot.activations(models[(config.name, 0)],
                       os.path.join(directory, name), data=x_test, dpi=60,
                       layers=("act0",), channels=8)
      images.append(name)
  notes = ""
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      old = f.read()
    if _NOTES in old:
      notes = "\n" + old[old.index(_NOTES):]
  markdown = _markdown(entries, recipe, facts, images)
  with open(path, "w", encoding="utf-8") as f:
    f.write(markdown.rstrip("\n") + "\n" + notes)
  return path


def plot_all(entries, models, x_test, out_dir, log):
  """Accuracy curves, and the first activation layer of each non-ReLU row's
  seed-0 model over the histogram of its inputs on the test set."""
  from tfkaf import plot  # pylint: disable=g-import-not-at-top

  log(f"wrote {plot_curves(entries, os.path.join(out_dir, 'accuracy.png'))}")
  for config, _ in entries:
    if config.variant != "relu":
      for path in plot.activations(
          models[(config.name, 0)],
          os.path.join(out_dir, f"{config.name}_act0.png"), data=x_test,
          layers=("act0",)):
        log(f"wrote {path}")
