"""tfkaf layers under tf.distribute, matching single-device training.

* MirroredStrategy over two logical CPU devices, with `model.fit` and the
  DeepSplines optimizer groups (`tfkaf.training.MultiOptimizer`).
* MultiWorkerMirroredStrategy with two worker processes on localhost (the
  path for users who outgrow one machine), with a custom training loop:
  Keras 3.15's `model.fit` itself fails under a multi-worker
  MultiWorkerMirroredStrategy for any model (its `_maybe_symbolic_build`
  reduces the (x, y) batch tuple with the collective ops, which only take
  single values), so the standard `strategy.run` loop is the path there.

Both run in subprocesses: logical devices and the collective runtime must
be configured before TensorFlow initializes, which in the pytest process it
already has.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tfkaf

PACKAGE_PARENT = str(pathlib.Path(tfkaf.__file__).resolve().parents[1])
TIMEOUT_S = 240

# Shared by the subprocesses and the in-process reference.
COMMON = textwrap.dedent("""
    import numpy as np
    import tensorflow as tf
    import keras
    import tfkaf
    from tfkaf import layers, training

    GLOBAL_BATCH = 16

    def build_model():
      model = keras.Sequential([
          keras.Input((5,)),
          keras.layers.Dense(6),
          layers.DeepBSpline(size=11, range=2.0, tv2=1e-3,
                             explicit_linear=True),
          layers.KAF(D=8),
          keras.layers.Dense(4),
          layers.KAF2D(D=4),
          layers.LGReLU(),
          keras.layers.Dense(1),
      ])
      rs = np.random.RandomState(1)
      model.set_weights([(rs.randn(*w.shape) * 0.5).astype(w.dtype)
                         for w in model.get_weights()])
      return model

    def make_optimizer():
      return training.MultiOptimizer(keras.optimizers.SGD(0.05),
                                     keras.optimizers.Adam(1e-2))

    def data():
      rs = np.random.RandomState(0)
      x = rs.randn(64, 5).astype(np.float32)
      y = (x[:, :1] ** 2 + np.sin(x[:, 1:2])).astype(np.float32)
      return x, y

    def custom_loop(strategy, epochs=2):
      with strategy.scope():
        model = build_model()
        optimizer = make_optimizer()
        # As for any Keras optimizer in a custom loop under a strategy: build
        # it before the tf.function (no variable creation inside replicas).
        optimizer.build(model.trainable_variables)
      x, y = data()
      dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)
      dataset = strategy.experimental_distribute_dataset(dataset)

      @tf.function
      def step(batch):
        def replica_step(xb, yb):
          with tf.GradientTape() as tape:
            pred = model(xb, training=True)
            per_example = tf.reduce_mean(tf.square(pred - yb), axis=-1)
            loss = tf.nn.compute_average_loss(
                per_example, global_batch_size=GLOBAL_BATCH)
            loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
          grads = tape.gradient(loss, model.trainable_variables)
          optimizer.apply_gradients(zip(grads, model.trainable_variables))
          return loss
        losses = strategy.run(replica_step, args=batch)
        return strategy.reduce("SUM", losses, axis=None)

      history = []
      for _ in range(epochs):
        for batch in dataset:
          history.append(float(step(batch)))
      return model, history
""")

MIRRORED_SCRIPT = textwrap.dedent("""
    import sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
""") + COMMON + textwrap.dedent("""
    x, y = data()

    def fit(strategy):
      with strategy.scope():
        model = build_model()
        model.compile(make_optimizer(), "mse")
      history = model.fit(x, y, epochs=2, batch_size=GLOBAL_BATCH,
                          shuffle=False, verbose=0)
      return model, history.history["loss"]

    single, single_loss = fit(tf.distribute.get_strategy())
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    mirrored, mirrored_loss = fit(strategy)
    np.testing.assert_allclose(mirrored_loss, single_loss, rtol=1e-5)
    for a, b in zip(single.get_weights(), mirrored.get_weights()):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # The optimizer groups kept separate state on both replicas' variables.
    opt = mirrored.optimizer
    assert int(opt.activation_optimizer.iterations.numpy()) == 8
    np.testing.assert_allclose(mirrored.predict(x, verbose=0),
                               single.predict(x, verbose=0), rtol=1e-5,
                               atol=1e-6)
    # Custom loops under the strategy match too.
    loop_single, hist_single = custom_loop(tf.distribute.get_strategy())
    loop_mirrored, hist_mirrored = custom_loop(strategy)
    np.testing.assert_allclose(hist_mirrored, hist_single, rtol=1e-5)
    print("MIRRORED_OK", mirrored_loss)
""")

WORKER_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import tensorflow as tf
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
""") + COMMON + textwrap.dedent("""
    assert strategy.num_replicas_in_sync == 2
    model, history = custom_loop(strategy)
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    np.savez(os.path.join(sys.argv[1], f"worker{index}.npz"),
             *model.get_weights(), history=np.array(history))
    print("WORKER_OK", index)
""")


def _env(**extra):
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(
      [PACKAGE_PARENT] + [p for p in env.get("PYTHONPATH", "").split(
          os.pathsep) if p])
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  env["CUDA_VISIBLE_DEVICES"] = ""  # CPU devices only, also on GPU hosts
  env.pop("TF_CONFIG", None)
  env.update(extra)
  return env


@pytest.mark.slow
def test_mirrored_strategy_matches_single_device(tmp_path):
  script = tmp_path / "mirrored.py"
  script.write_text(MIRRORED_SCRIPT)
  result = subprocess.run([sys.executable, str(script)], env=_env(),
                          capture_output=True, text=True, timeout=TIMEOUT_S,
                          check=False, cwd=str(tmp_path))
  assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
  assert "MIRRORED_OK" in result.stdout


def _free_ports(count):
  sockets = []
  try:
    for _ in range(count):
      s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
      s.bind(("localhost", 0))
      sockets.append(s)
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


@pytest.mark.slow
def test_multi_worker_mirrored_strategy_matches_single_device(tmp_path):
  if os.environ.get("TFKAF_SKIP_MULTIWORKER"):
    pytest.skip("TFKAF_SKIP_MULTIWORKER is set")
  try:
    ports = _free_ports(2)
  except OSError as error:
    pytest.skip(f"cannot bind localhost ports for the workers: {error}")
  cluster = {"worker": [f"localhost:{p}" for p in ports]}
  script = tmp_path / "worker.py"
  script.write_text(WORKER_SCRIPT)
  workers = []
  for index in range(2):
    tf_config = json.dumps({"cluster": cluster,
                            "task": {"type": "worker", "index": index}})
    workers.append(subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)],
        env=_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, cwd=str(tmp_path)))
  outputs = []
  try:
    for worker in workers:
      out, _ = worker.communicate(timeout=TIMEOUT_S)
      outputs.append(out)
  except subprocess.TimeoutExpired:
    for worker in workers:
      worker.kill()
      worker.communicate()
    pytest.fail("the multi-worker run timed out")
  for index, (worker, out) in enumerate(zip(workers, outputs)):
    assert worker.returncode == 0, f"worker {index}:\n{out[-4000:]}"
    assert f"WORKER_OK {index}" in out

  # Single-device reference, here, with the same code.
  namespace = {}
  exec(COMMON, namespace)  # pylint: disable=exec-used
  tf = namespace["tf"]
  reference, history = namespace["custom_loop"](tf.distribute.get_strategy())
  expected = reference.get_weights()
  for index in range(2):
    saved = np.load(tmp_path / f"worker{index}.npz")
    np.testing.assert_allclose(saved["history"], history, rtol=1e-5)
    for i, w in enumerate(expected):
      np.testing.assert_allclose(saved[f"arr_{i}"], w, rtol=1e-5, atol=1e-6)
