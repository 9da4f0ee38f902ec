"""Training at scale on CPU: data-parallel processes (gloo), loader workers, stop signals."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from htweather.training import distributed, train


def weights(path):
    return torch.load(path, weights_only=True)["ema"]


def test_two_processes_equal_one_with_the_combined_batch(store, tmp_path):
    cfg, root = store
    cfg = {**cfg, "training": {**cfg["training"], "batch_size": 8}}
    one = train.train(cfg, "fc_tedm", root / "store.zarr", root / "stats.json", tmp_path / "one")
    two = train.train(cfg, "fc_tedm", root / "store.zarr", root / "stats.json", tmp_path / "two", processes=2)
    reference, parallel = weights(one), weights(two)
    assert reference.keys() == parallel.keys()
    for key in reference:
        torch.testing.assert_close(parallel[key], reference[key], rtol=1e-4, atol=1e-5, msg=key)
    # the rows of the two logs are the same steps, with the same (rank-averaged) losses
    log_one = (tmp_path / "one" / "train_log.csv").read_text().splitlines()
    log_two = (tmp_path / "two" / "train_log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in log_one] == [r.split(",")[0] for r in log_two]
    assert json.loads((tmp_path / "two" / "launch.json").read_text())["name"] == "fc_tedm"


def test_an_uneven_split_of_the_batch_is_refused(store, tmp_path):
    cfg, root = store
    cfg = {**cfg, "training": {**cfg["training"], "batch_size": 5}}
    with pytest.raises(Exception, match="batch_size: 5 does not split evenly over 2"):
        train.train(cfg, "edm", root / "store.zarr", root / "stats.json", tmp_path / "m", processes=2)


def test_loader_workers_train_on_the_same_batches(store, tmp_path):
    cfg, root = store
    in_memory = train.train(cfg, "fc_tedm", root / "store.zarr", root / "stats.json", tmp_path / "memory")
    cfg = {**cfg, "training": {**cfg["training"], "data_workers": 2}}
    from_store = train.train(cfg, "fc_tedm", root / "store.zarr", root / "stats.json", tmp_path / "workers")
    reference, streamed = weights(in_memory), weights(from_store)
    for key in reference:
        assert torch.equal(reference[key], streamed[key]), key


TRAIN_IN_CHILD = """

import json, sys
from htweather.training import train
from htweather.errors import HtweatherError
from htweather.runtime import setup_logging
setup_logging()
cfg, root, out, processes = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
try:
    train.train(cfg, "tedm", root + "/store.zarr", root + "/stats.json", out, processes=processes)
except HtweatherError as error:
    print(error, file=sys.stderr)
    sys.exit(3)
"""


@pytest.mark.parametrize("signum,workers,processes", [
    (signal.SIGTERM, 0, 1), (signal.SIGUSR1, 2, 1),
    pytest.param(signal.SIGUSR1, 0, 2, marks=pytest.mark.skipif(
        not distributed.forwards_sigusr1(), reason="this torch's torchrun does not pass SIGUSR1 on to the ranks"))])
def test_stop_signal_checkpoints_exits_and_resumes_identically(store, tmp_path, signum, workers,
                                                               processes):
    """The signal goes to the whole process group (loader workers, torchrun and its ranks
    included), as SLURM sends it."""
    cfg, root = store
    cfg = {**cfg, "training": {**cfg["training"], "steps": 400, "checkpoint_every": 100, "data_workers": workers}}
    out = tmp_path / "stopped"
    child = subprocess.Popen([sys.executable, "-c", TRAIN_IN_CHILD, json.dumps(cfg), str(root), str(out),
                              str(processes)],
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    while not (out / "checkpoint.pt").exists() and time.time() < deadline and child.poll() is None:
        time.sleep(0.02)
    os.killpg(child.pid, signum)
    _, stderr = child.communicate(timeout=120)
    assert child.returncode == 3, stderr[-3000:]
    assert f"stopped by {signal.Signals(signum).name} at step" in stderr, stderr[-3000:]
    stopped_at = torch.load(out / "checkpoint.pt", weights_only=True)["step"]
    assert 100 <= stopped_at < 400 and not (out / "model.pt").exists()
    assert not list(out.glob("*.tmp-*"))

    resumed = train.train(cfg, "tedm", root / "store.zarr", root / "stats.json", out, processes=processes)
    straight = train.train(cfg, "tedm", root / "store.zarr", root / "stats.json", tmp_path / "straight",
                           processes=processes)
    reference, after_stop = weights(straight), weights(resumed)
    for key in reference:
        assert torch.equal(reference[key], after_stop[key]), key
    rows = (out / "train_log.csv").read_text().splitlines()
    assert rows[-1].startswith("400,") and len(rows) == len(set(rows))
