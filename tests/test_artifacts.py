"""Artifacts that prove themselves: every file one step writes and another reads is checked
against the digest recorded when it was written, and a missing, truncated, altered, foreign or
undigested one is refused in one line that says what to delete or rerun. A checkpoint that
cannot be read is set aside and training resumes from the one before."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import xarray as xr

from htweather import artifacts
from htweather.errors import ArtifactError
from htweather.models.assemble import load_model
from htweather.training import checkpoints, train


def written_file(path, payload: bytes):
    with artifacts.written(path) as tmp:
        tmp.write_bytes(payload)
    return path


def written_store(path, n=6):
    ds = xr.Dataset({"tp": (("member", "y"), np.arange(n * 4, dtype=np.float32).reshape(n, 4))})
    with artifacts.written(path) as tmp:
        ds.chunk({"member": 2}).to_zarr(tmp, mode="w", consolidated=True, zarr_format=2)
    return path


def one_line(error) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


def test_a_written_file_and_store_verify_and_open(tmp_path):
    path = written_file(tmp_path / "run" / "a.bin", b"x" * 100)
    record = json.loads(artifacts.sidecar(path).read_text())
    assert record == {"name": "run/a.bin", "bytes": 100, "sha256": artifacts.sha256(path)}
    assert artifacts.verify(path) == path
    store = written_store(tmp_path / "samples" / "edm.zarr")
    assert artifacts.open_zarr(store)["tp"].shape == (6, 4)
    assert not list(tmp_path.rglob("*.tmp-*"))


@pytest.mark.parametrize("fault, expected", [
    ("missing", r"a.bin: missing; rerun the step that writes it"),
    ("truncated", r"a.bin: truncated \(40 of 100 bytes\); delete .*a.bin and rerun"),
    ("altered", r"a.bin: altered since it was written \(its sha256 differs from its digest\); delete"),
    ("longer", r"a.bin: altered \(120 bytes, 100 were written\); delete"),
    ("no_digest", r"a.bin: has no digest \(a.bin.sha256.json is missing\): it was written by an older htweather "
                  r"or copied without it; delete"),
    ("bad_digest", r"a.bin: its digest .*a.bin.sha256.json cannot be read; delete"),
])
def test_a_bad_file_is_refused_in_one_line(fault, expected, tmp_path):
    path = written_file(tmp_path / "run" / "a.bin", b"x" * 100)
    if fault == "missing":
        path.unlink()
    elif fault == "truncated":
        path.write_bytes(b"x" * 40)
    elif fault == "altered":
        path.write_bytes(b"y" + b"x" * 99)
    elif fault == "longer":
        path.write_bytes(b"x" * 120)
    elif fault == "no_digest":
        artifacts.sidecar(path).unlink()
    elif fault == "bad_digest":
        artifacts.sidecar(path).write_text("{not json")
    with pytest.raises(ArtifactError, match=expected) as error:
        artifacts.verify(path)
    one_line(error)


def test_a_file_copied_into_another_ones_place_is_foreign(tmp_path):
    source = written_file(tmp_path / "edm" / "model.pt", b"weights")
    target = tmp_path / "tedm" / "model.pt"
    target.parent.mkdir()
    shutil.copy(source, target)
    shutil.copy(artifacts.sidecar(source), artifacts.sidecar(target))
    with pytest.raises(ArtifactError, match=r"tedm/model.pt: foreign: its digest says it was written as "
                                            r"'edm/model.pt', not as tedm/model.pt; delete"):
        artifacts.verify(target)
    shutil.move(tmp_path / "edm", tmp_path / "moved" / "edm")  # moving a results folder keeps the names
    assert artifacts.verify(tmp_path / "moved" / "edm" / "model.pt")


@pytest.mark.parametrize("fault, expected", [
    ("chunk_missing", r"edm.zarr: incomplete: 'tp/1.0' is missing; delete .*edm.zarr and rerun"),
    ("chunk_truncated", r"edm.zarr: 'tp/0.0': truncated \(\d+ of \d+ bytes\)"),
    ("chunk_altered", r"edm.zarr: 'tp/2.0': altered since it was written"),
    ("extra_file", r"edm.zarr: altered: 'tp/9.0' \(and 0 other file\(s\)\) was not written with it"),
    ("no_manifest", r"edm.zarr: has no digest \(.sha256.json is missing\)"),
])
def test_a_bad_store_is_refused_in_one_line(fault, expected, tmp_path):
    store = written_store(tmp_path / "samples" / "edm.zarr")
    if fault == "chunk_missing":
        (store / "tp" / "1.0").unlink()
    elif fault == "chunk_truncated":
        chunk = store / "tp" / "0.0"
        chunk.write_bytes(chunk.read_bytes()[:5])
    elif fault == "chunk_altered":
        chunk = store / "tp" / "2.0"
        data = bytearray(chunk.read_bytes())
        data[-1] ^= 0xFF
        chunk.write_bytes(bytes(data))
    elif fault == "extra_file":
        shutil.copy(store / "tp" / "0.0", store / "tp" / "9.0")
    elif fault == "no_manifest":
        (store / artifacts.MANIFEST).unlink()
    with pytest.raises(ArtifactError, match=expected) as error:
        artifacts.open_zarr(store)
    one_line(error)


def test_a_verified_artifact_is_hashed_once_until_it_changes(tmp_path, monkeypatch):
    path = written_file(tmp_path / "run" / "a.bin", b"x" * 100)
    calls = []
    real = artifacts.sha256
    monkeypatch.setattr(artifacts, "sha256", lambda p: calls.append(p) or real(p))
    artifacts.verify(path)
    artifacts.verify(path)
    assert len(calls) == 1
    path.write_bytes(b"x" * 99)
    with pytest.raises(ArtifactError, match="truncated"):
        artifacts.verify(path)


def test_model_pt_truncated_or_garbage_is_refused_in_one_line(store, tmp_path):
    """Before digests, sampling failed on these with a raw OSError or an unpickling traceback."""
    cfg, root = store
    model = train.train(cfg, "tflow", root / "store.zarr", root / "stats.json", tmp_path / "tflow")
    assert load_model(model, "cpu")[1].name == "tflow"
    data = model.read_bytes()
    model.write_bytes(data[: len(data) // 3])
    with pytest.raises(ArtifactError, match=rf"tflow/model.pt: truncated \({len(data) // 3} of {len(data)} bytes\); "
                                            rf"delete {model} and rerun") as error:
        load_model(model, "cpu")
    one_line(error)
    model.write_bytes(b"\x80garbage" * 100)
    artifacts.sidecar(model).unlink()
    with pytest.raises(ArtifactError, match=r"tflow/model.pt: has no digest"):
        load_model(model, "cpu")
    # garbage that a user vouches for (its digest recorded afresh) is still no model: one line
    artifacts.record(model, model)
    with pytest.raises(ArtifactError, match=r"tflow/model.pt: cannot be read by torch .*\(\w+\); delete"):
        load_model(model, "cpu")


def test_an_unreadable_checkpoint_is_set_aside_and_training_resumes_from_the_one_before(store, tmp_path,
                                                                                       monkeypatch, caplog):
    """30 steps, checkpoints every 10: killed after step 25, the checkpoint (step 20) is then
    truncated, as a disk error leaves it. The rerun sets it aside (renamed, not deleted), says
    so, resumes from the one before (step 10) and ends with the uninterrupted run's weights."""
    cfg, root = store
    cfg = {**cfg, "training": {**cfg["training"], "steps": 30}}
    straight = train.train(cfg, "tflow", root / "store.zarr", root / "stats.json", tmp_path / "straight")
    reference = torch.load(straight, weights_only=True)["ema"]

    calls = {"n": 0}
    real_update = train.update_ema

    def crash_after_step_25(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 26:
            raise KeyboardInterrupt("simulated kill")
        return real_update(*args, **kwargs)

    monkeypatch.setattr(train, "update_ema", crash_after_step_25)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        train.train(cfg, "tflow", root / "store.zarr", root / "stats.json", out)
    checkpoint = out / "checkpoint.pt"
    assert torch.load(checkpoint, weights_only=True)["step"] == 20
    assert torch.load(checkpoints.previous(checkpoint), weights_only=True)["step"] == 10
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[: len(data) // 2])
    monkeypatch.setattr(train, "update_ema", real_update)
    with caplog.at_level("INFO"):
        train.train(cfg, "tflow", root / "store.zarr", root / "stats.json", out)
    aside = out / "checkpoint.pt.unreadable-1"
    assert aside.read_bytes() == data[: len(data) // 2]  # kept, not deleted
    assert "truncated" in (out / "checkpoint.pt.unreadable-1.why").read_text()
    messages = [r.getMessage() for r in caplog.records]
    assert any("checkpoint.pt: truncated" in m and "set aside as" in m for m in messages), messages
    assert "training resumes from the previous checkpoint" in messages
    assert any("resuming from" in m and "checkpoint.pt.previous at step 10" in m for m in messages), messages
    resumed = torch.load(out / "model.pt", weights_only=True)["ema"]
    for key in reference:
        assert torch.equal(reference[key], resumed[key]), key


def test_a_checkpoint_that_passes_its_digest_but_does_not_load_is_an_error_not_set_aside(tmp_path):
    """Garbage with a fresh digest: no disk error to recover from (torch's version, memory), so
    the one line, and the file stays where it is."""
    checkpoint = written_file(tmp_path / "tflow" / "checkpoint.pt", b"\x80garbage" * 100)
    with pytest.raises(ArtifactError, match=r"checkpoint.pt: passes its digest but cannot be loaded by torch"):
        checkpoints.resume(checkpoint, {}, None, None, None, None, torch.device("cpu"))
    assert checkpoint.exists() and not list(checkpoint.parent.glob("*.unreadable-*"))


def test_a_verified_artifact_is_not_hashed_again_by_a_child_process(tmp_path):
    """Data-loader workers and the ranks of a data-parallel run inherit the note (environment)."""
    store = written_store(tmp_path / "data" / "store.zarr")
    artifacts.verify(store)
    script = ("import sys; from htweather import artifacts; calls = []; real = artifacts.sha256; "
              "artifacts.sha256 = lambda p: calls.append(p) or real(p); artifacts.verify(sys.argv[1]); print(len(calls))")
    child = subprocess.run([sys.executable, "-c", script, str(store)], capture_output=True, text=True, check=True)
    assert child.stdout.strip() == "0"
    (store / "tp" / "0.0").write_bytes(b"x")  # changed since: the child hashes, and refuses
    child = subprocess.run([sys.executable, "-c", script, str(store)], capture_output=True, text=True)
    assert child.returncode != 0 and "truncated" in child.stderr


def test_a_workflow_step_refusing_an_artifact_exits_2_with_its_line(tmp_path):
    """Under Snakemake, as under the command line: exit code 2 and the one line, on the console
    and in the rule's log (a step run as Snakemake's `script:` runs it, in a process of its own)."""
    path = written_file(tmp_path / "run" / "model.pt", b"x" * 100)
    path.write_bytes(b"x" * 10)
    log = tmp_path / "step.log"
    script = ("import sys, types; from htweather.workflow import run_step; "
              "from htweather.models.assemble import load_model; "
              "run_step(types.SimpleNamespace(log=[sys.argv[1]]), lambda: load_model(sys.argv[2], 'cpu'))")
    result = subprocess.run([sys.executable, "-c", script, str(log), str(path)], capture_output=True, text=True)
    assert result.returncode == 2
    line = (f"htweather: {path}: truncated (10 of 100 bytes); delete {path} and rerun (Snakemake remakes a missing "
            f"output; the command line: rerun the step)")
    assert result.stderr.strip() == line
    assert log.read_text().strip().splitlines()[-1] == line
