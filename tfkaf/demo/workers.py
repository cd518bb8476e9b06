"""Training every row and seed, in single-threaded worker processes.

These models are so small that TensorFlow's thread hand-offs cost more than
they save, so each run trains in a fresh process running TensorFlow on one
thread, `jobs` processes at a time; results come back as pickles in a
temporary directory.
"""

import os
import time

import tensorflow as tf

from tfkaf import _process
from tfkaf.demo.training import model_for
from tfkaf.demo.training import Progress
from tfkaf.demo.training import strategy_for
from tfkaf.demo.training import train_one


def default_jobs():
  return max(1, min(os.cpu_count() or 1, 4))


def train_all(rows, seeds, data, recipe, strategy="none", log=print,
              jobs=None):
  """Trains every row with seeds 0 .. seeds-1.

  With strategy "none" the runs go to `jobs` worker processes (default: the
  CPU cores, at most 4), each running TensorFlow single-threaded: these
  models are so small that thread hand-offs cost more than they save.
  With `jobs=0` or another strategy they train in this process, one run
  after another.

  Returns (entries, models): entries [(Config, [RunResult, ...]), ...] in
  the order of `rows`; models {(name, 0): the trained seed-0 Keras model}.
  """
  tasks = [(config, seed) for config in rows for seed in range(seeds)]
  if strategy == "none" and jobs != 0:
    done = _run_workers(tasks, data, recipe, jobs or default_jobs(), log)
  else:
    progress, dist = Progress(len(tasks), log), strategy_for(strategy)
    done = {}
    for config, seed in tasks:
      model, result = train_one(config, seed, data, recipe, dist, progress)
      done[(config.name, seed)] = (result, model.get_weights())
  entries = [(config, [done[(config.name, seed)][0]
                       for seed in range(seeds)]) for config in rows]
  models = {}
  for config in rows:
    models[(config.name, 0)] = model_for(config, recipe)
    models[(config.name, 0)].set_weights(done[(config.name, 0)][1])
  return entries, models


_WORKER = """
import sys
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
from tfkaf.demo import workers
workers.work(sys.argv[1])
"""


class _Quiet:
  """A progress reporter that reports nothing (inside worker processes)."""

  def start(self, *unused_args):
    pass

  def epoch(self, *unused_args):
    pass


def work(directory):
  """A worker process: claims tasks of `directory`/job.pkl one at a time
  (an exclusive claim file each) and writes each result beside it."""
  import pickle  # pylint: disable=g-import-not-at-top

  with open(os.path.join(directory, "job.pkl"), "rb") as f:
    tasks, data, recipe = pickle.load(f)
  for index, (config, seed) in enumerate(tasks):
    try:
      os.close(os.open(os.path.join(directory, f"{index}.claim"),
                       os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
      continue
    model, result = train_one(config, seed, data, recipe,
                           tf.distribute.get_strategy(), _Quiet())
    path = os.path.join(directory, f"{index}.pkl")
    with open(path + ".part", "wb") as f:
      pickle.dump((result, model.get_weights()), f)
    os.replace(path + ".part", path)


def _run_workers(tasks, data, recipe, jobs, log):
  """Runs `tasks` [(Config, seed), ...] in `jobs` fresh processes; returns
  {(name, seed): (RunResult, weights)}, logging each run as it ends."""
  import pickle  # pylint: disable=g-import-not-at-top
  import tempfile  # pylint: disable=g-import-not-at-top
  import threading  # pylint: disable=g-import-not-at-top

  # The slowest runs first, so that the workers finish together.
  order = sorted(range(len(tasks)), key=lambda i: (
      tasks[i][0].architecture != "cnn", -tasks[i][0].parameters))
  tasks = [tasks[i] for i in order]
  with tempfile.TemporaryDirectory(prefix="tfkaf_demo_") as directory:
    with open(os.path.join(directory, "job.pkl"), "wb") as f:
      pickle.dump((tasks, data, recipe), f)
    jobs = min(jobs, len(tasks))
    log(f"{len(tasks)} runs in {jobs} worker process(es), single-threaded "
        "TensorFlow each")
    outcomes = [None] * jobs

    def work(slot):
      outcomes[slot] = _process.run_python(_WORKER, (directory,),
                                           timeout=24 * 3600)

    threads = [threading.Thread(target=work, args=(i,), daemon=True)
               for i in range(jobs)]
    for thread in threads:
      thread.start()
    done = _collect(tasks, directory, threads, log)
    for thread in threads:
      thread.join()
    failed = [o for o in outcomes if o is not None and o.returncode != 0]
    if failed or len(done) < len(tasks):
      raise RuntimeError("a training worker failed:\n" + (
          failed[0].stderr[-4000:] if failed else "results missing"))
    return done


def _collect(tasks, directory, threads, log):
  """Loads the workers' results as they appear, logging one line each."""
  import pickle  # pylint: disable=g-import-not-at-top

  done, start = {}, time.perf_counter()
  while len(done) < len(tasks):
    alive = any(thread.is_alive() for thread in threads)
    for index, (config, seed) in enumerate(tasks):
      path = os.path.join(directory, f"{index}.pkl")
      if (config.name, seed) in done or not os.path.exists(path):
        continue
      with open(path, "rb") as f:
        done[(config.name, seed)] = pickle.load(f)
      result = done[(config.name, seed)][0]
      log(f"[{len(done)}/{len(tasks)}] {config.name} (seed {seed}): final "
          f"test accuracy {result.test_accuracy:.4f}, "
          f"{result.seconds_per_epoch:.3f} s/epoch "
          f"({time.perf_counter() - start:.0f} s since the start)")
    if not alive:
      break
    time.sleep(0.5)
  return done
