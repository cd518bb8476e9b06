"""tfkaf.demo: equal budgets, the verdict rule, the table, per-seed results.

Fast unit tests of the pieces of `tfkaf demo`; the whole command runs in
tests/test_cli.py (quick mode).
"""

import json

import numpy as np
import pytest

from tfkaf import cli
from tfkaf import demo
from tfkaf import plot


@pytest.mark.parametrize("architecture", demo.ARCHITECTURES)
@pytest.mark.parametrize("variant", demo.VARIANTS)
def test_matched_width_is_within_5_percent_of_relu_parameters(
    variant, architecture):
  target = demo.parameter_count("relu", architecture)
  widths = demo.match_width(variant, architecture)
  count = demo.parameter_count(variant, architecture, widths)
  assert abs(count / target - 1) <= 0.05, (widths, count, target)
  # The count without building is the built model's.
  assert demo.build_model(variant, architecture, widths).count_params() == count


def test_relu_models_are_the_papers():
  # MNIST-1D paper: MLP 40-100-100-10 (15,210 weights), CNN 5,210.
  assert demo.build_model("relu", "mlp").count_params() == 15210
  assert demo.build_model("relu", "cnn").count_params() == 5210
  assert demo.match_width("relu", "mlp") == (100, 100)


@pytest.mark.parametrize("variant", ["kaf", "kaf2d", "spline"])
def test_equal_width_rows_have_more_parameters(variant):
  for architecture in demo.ARCHITECTURES:
    row = demo.Config(architecture, variant, budget="width")
    assert row.widths == demo.Config(architecture, "relu").widths
    assert row.parameters > demo.parameter_count("relu", architecture)
    assert row.name == f"{architecture}_{variant}_eqwidth"


def test_full_and_quick_rows():
  full = demo.configs()
  names = [row.name for row in full]
  assert len(names) == len(set(names)) == 16
  assert {"mlp_relu", "cnn_relu", "mlp_spline_ds", "cnn_kaf2d_eqwidth"} <= (
      set(names))
  quick = [row.name for row in demo.configs(quick=True)]
  assert quick == ["mlp_relu", "mlp_kaf", "mlp_kaf2d", "mlp_spline",
                   "mlp_spline_ds"]


def test_welch_t_test_matches_reference_values():
  # Reference values from scipy.stats.ttest_ind(..., equal_var=False).
  t, dof, p = demo.welch_t_test([0.655, 0.661, 0.652], [0.62, 0.64, 0.63])
  assert t == pytest.approx(4.093938272435528, rel=1e-9)
  assert dof == pytest.approx(2.8045206397854616, rel=1e-9)
  assert p == pytest.approx(0.029943877503030614, rel=1e-9)
  t, _, p = demo.welch_t_test([1, 2, 3, 4, 5], [2, 4, 6, 8, 10, 12])
  assert t == pytest.approx(-2.3763541031440183, rel=1e-9)
  assert p == pytest.approx(0.04928433820673053, rel=1e-9)


def test_welch_t_test_agrees_with_scipy_on_random_samples():
  stats = pytest.importorskip("scipy.stats")
  rng = np.random.default_rng(0)
  for _ in range(50):
    a = rng.normal(0.0, rng.uniform(0.1, 3.0), rng.integers(2, 8))
    b = rng.normal(rng.uniform(-3, 3), rng.uniform(0.1, 3.0),
                   rng.integers(2, 8))
    t, _, p = demo.welch_t_test(a, b)
    expected = stats.ttest_ind(a, b, equal_var=False)
    assert t == pytest.approx(expected.statistic, rel=1e-8)
    assert p == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("variant_scores, relu_scores, expected", [
    ([0.70, 0.71, 0.72], [0.65, 0.66, 0.655], "better"),
    ([0.60, 0.61, 0.62], [0.65, 0.66, 0.655], "worse"),
    ([0.65, 0.67, 0.66], [0.65, 0.66, 0.655], "no clear difference"),
    # A large but noisy gain over 3 seeds is not a clear difference.
    ([0.60, 0.75, 0.70], [0.65, 0.66, 0.655], "no clear difference"),
    # One seed: no test is possible.
    ([0.90], [0.50], "no clear difference"),
    # No spread at all: any difference of the means counts.
    ([0.70, 0.70, 0.70], [0.65, 0.65, 0.65], "better"),
    ([0.65, 0.65, 0.65], [0.65, 0.65, 0.65], "no clear difference"),
])
def test_verdict_rule_on_synthetic_numbers(variant_scores, relu_scores,
                                           expected):
  word, p = demo.verdict(variant_scores, relu_scores)
  assert word == expected
  assert 0.0 <= p <= 1.0
  assert (p < demo.VERDICT_ALPHA) == (word != "no clear difference")


def test_verdict_rule_is_written_down():
  assert "Welch" in demo.VERDICT_RULE and "0.05" in demo.VERDICT_RULE
  assert "final weights" in demo.VERDICT_RULE


def test_format_mean_std():
  assert demo.format_mean_std([0.655, 0.661, 0.652]) == "65.6 ± 0.5"
  assert demo.format_mean_std([0.5]) == "50.0"
  assert demo.format_mean_std([0.25, 0.35], scale=1.0, digits=3) == (
      "0.300 ± 0.071")


def _run(name, seed, accuracy, epochs=3):
  curve = list(np.linspace(0.3, accuracy, epochs))
  return demo.RunResult(
      name=name, seed=seed, test_accuracy=accuracy,
      best_test_accuracy=max(curve), best_epoch=int(np.argmax(curve)) + 1,
      train_loss=0.01, epochs=epochs, steps=40 * epochs,
      seconds_per_epoch=0.1 + 0.01 * seed,
      history={"loss": [1.0] * epochs, "test_accuracy": curve})


def _entries():
  relu = demo.Config("mlp", "relu")
  kaf = demo.Config("mlp", "kaf")
  spline = demo.Config("mlp", "spline", budget="width")
  return [
      (relu, [_run("mlp_relu", s, a) for s, a in
              enumerate((0.655, 0.660, 0.652))]),
      (kaf, [_run("mlp_kaf", s, a, 4) for s, a in
             enumerate((0.700, 0.705, 0.710))]),
      (spline, [_run("mlp_spline_eqwidth", s, a) for s, a in
                enumerate((0.640, 0.670, 0.650))])]


def test_table_shows_mean_std_parameters_and_verdicts():
  text = demo.table(_entries())
  lines = text.splitlines()
  header = lines[0]
  for column in ("model", "params", "test acc %", "best-epoch acc %*",
                 "s/epoch", "vs ReLU"):
    assert column in header
  relu, kaf, spline = lines[1:4]
  assert relu.split()[:4] == ["mlp_relu", "paper", "100", "15210"]
  assert "65.6 ± 0.4" in relu and "reference" in relu
  assert "70.5 ± 0.5" in kaf and "better (p<0.001)" in kaf
  assert "= params" in kaf and str(demo.Config("mlp", "kaf").parameters) in kaf
  assert "= width" in spline and "no clear difference (p=" in spline
  assert "0.110 ± 0.010" in relu  # seconds per epoch, mean ± std
  assert "best-epoch acc" in text and "chosen on the test set" in text


def test_markdown_table():
  text = demo.table(_entries(), markdown=True)
  lines = text.splitlines()
  assert lines[0].startswith("| model |")
  assert set(lines[1]) <= set("|-: ")
  assert all(line.count("|") == lines[0].count("|") for line in lines[:5])


def test_verdict_lines_name_the_numbers():
  lines = demo.verdict_lines(_entries())
  assert len(lines) == 2
  assert lines[0].startswith("mlp_kaf (equal parameters")
  assert "better" in lines[0] and "p<0.001" in lines[0]
  assert "p=" in lines[1]
  assert "equal width" in lines[1]


def test_curves_plot(tmp_path):
  path = demo.plot_curves(_entries(), str(tmp_path / "accuracy.png"))
  assert (tmp_path / "accuracy.png").stat().st_size > 10_000
  assert path.endswith("accuracy.png")


def test_tiny_training_run_gives_per_seed_json():
  data = demo.load_mnist1d()
  data = (data[0][:400], data[1][:400], data[2][:100], data[3][:100])
  rows = [demo.Config("mlp", "relu"), demo.Config("mlp", "spline",
                                                  recipe="deepsplines")]
  recipe = demo.Recipe(steps=8)
  entries, models = demo.train_all(rows, 2, data, recipe, jobs=0,
                                   log=lambda *args: None)
  assert set(models) == {("mlp_relu", 0), ("mlp_spline_ds", 0)}
  result = json.loads(json.dumps(demo.results_json(entries, recipe)))
  assert result["recipe"]["steps"] == 8
  assert "Welch" in result["verdict_rule"]
  assert [row["name"] for row in result["rows"]] == ["mlp_relu",
                                                     "mlp_spline_ds"]
  for row in result["rows"]:
    assert len(row["runs"]) == 2
    assert [run["seed"] for run in row["runs"]] == [0, 1]
    for run in row["runs"]:
      assert 0.0 <= run["test_accuracy"] <= 1.0
      assert run["epochs"] == 2 and run["steps"] == 8
      assert len(run["history"]["test_accuracy"]) == 2
      assert run["best_test_accuracy"] == max(run["history"]["test_accuracy"])
    accuracies = [run["test_accuracy"] for run in row["runs"]]
    assert row["test_accuracy"]["mean"] == pytest.approx(np.mean(accuracies))
    assert row["test_accuracy"]["std"] == pytest.approx(
        np.std(accuracies, ddof=1))
  # Seeds change the initialisation (and the order of the batches).
  first, second = result["rows"][0]["runs"]
  assert first["history"]["loss"] != second["history"]["loss"]
  assert result["rows"][0]["verdict"] == "reference"
  assert result["rows"][1]["verdict"] in ("better", "worse",
                                          "no clear difference")
  assert 0.0 <= result["rows"][1]["p_value"] <= 1.0


@pytest.mark.parametrize("variant, architecture", [
    ("kaf", "mlp"), ("kaf2d", "cnn")])
def test_activation_plots_show_the_inputs(variant, architecture, tmp_path):
  model = demo.build_model(variant, architecture)
  x = np.random.default_rng(0).normal(size=(64, 40)).astype(np.float32)
  inputs = plot._pre_activations(  # pylint: disable=protected-access
      model, plot._tfkaf_layers(model), x)  # pylint: disable=protected-access
  channels = 2 * 25 if variant == "kaf2d" else 25
  if architecture == "mlp":
    channels = 2 * 100 if variant == "kaf2d" else 100
  assert inputs["act0"].shape[1] == channels
  paths = plot.activations(model, str(tmp_path / "a.png"), data=x,
                           layers=("act0",), channels=4, dpi=50)
  assert paths == [str(tmp_path / "a.png")]
  assert (tmp_path / "a.png").stat().st_size > 3_000
  # Without data, every layer is drawn, as before.
  assert len(plot.activations(model, str(tmp_path / "b.png"), channels=1,
                              dpi=30)) == (2 if architecture == "mlp" else 3)


def test_demo_flags():
  parser = cli.build_parser()
  args = parser.parse_args(["demo", "--seeds", "5", "--write-docs",
                            "docs/results.md", "--jobs", "2"])
  assert (args.seeds, args.write_docs, args.jobs) == (5, "docs/results.md", 2)
  args = parser.parse_args(["demo"])
  assert (args.seeds, args.write_docs, args.jobs) == (None, None, None)
  assert cli.main(["demo", "--seeds", "0"]) == 1


def test_write_docs_keeps_the_notes(tmp_path):
  entries = _entries()
  model = demo.build_model("kaf", "mlp", demo.Config("mlp", "kaf").widths)
  x = np.random.default_rng(0).normal(size=(32, 40)).astype(np.float32)
  facts = {"command": "tfkaf demo --write-docs results.md", "seeds": 3,
           "cpus": 2, "load_start": 1.0, "load_end": 2.0,
           "wall_seconds": 600.0}
  path = str(tmp_path / "results.md")
  demo.write_docs(path, entries, {("mlp_kaf", 0): model}, demo.Recipe(), x,
                  facts)
  text = (tmp_path / "results.md").read_text()
  assert "| mlp_kaf | = params |" in text and "Welch" in text
  assert "![results_accuracy](results_accuracy.png)" in text
  assert (tmp_path / "results_mlp_kaf_act0.png").stat().st_size > 3_000
  with open(path, "a", encoding="utf-8") as f:
    f.write("\n## Notes\n\nBy hand.\n")
  demo.write_docs(path, entries, {("mlp_kaf", 0): model}, demo.Recipe(), x,
                  facts)
  text = (tmp_path / "results.md").read_text()
  assert text.count("## Notes") == 1 and text.endswith("By hand.\n")
  assert "png)\n\n## Notes" in text


@pytest.mark.slow
@pytest.mark.parametrize("variant,architecture", [("kaf2d", "cnn"),
                                                  ("spline", "cnn"),
                                                  ("kaf", "mlp")])
def test_portable_exports_of_demo_models_agree(variant, architecture,
                                               tmp_path):
  import keras  # pylint: disable=g-import-not-at-top

  keras.utils.set_random_seed(0)
  model = demo.build_model(variant, architecture)
  x = np.random.default_rng(0).normal(0, 2, (200, 40)).astype(np.float32)
  predictions = np.argmax(model.predict(x, verbose=0), -1)
  lines = []
  agreements = demo.export_portable(model, str(tmp_path / "m"), x,
                                    predictions, log=lines.append)
  assert agreements == {"litert": 1.0, "onnx": 1.0}, lines
  assert (tmp_path / "m.tflite").stat().st_size > 1000
  assert (tmp_path / "m.onnx").stat().st_size > 1000
  assert all("runs without tfkaf" in line for line in lines), lines
