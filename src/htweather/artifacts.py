"""Artifacts that prove themselves: every file one step writes and another reads carries a
digest of its content, recorded when it is written and checked when it is read.

- A file ``P`` (``model.pt``, a checkpoint, ``stats.json``) gets the sidecar ``P.sha256.json``:
  its size, its sha256 and its name (the last two parts of its path, e.g. ``tedm/model.pt``).
- A directory (a zarr store) gets the manifest ``.sha256.json`` inside it: the size and sha256 of
  every file in it. Zarr ignores the extra file.

`written` records the digest before the artifact is renamed into place (`runtime.atomic_path`),
so an artifact never appears without its digest. `verify` reads it back and raises an
`ArtifactError`, one line naming the file, what is wrong (missing, truncated, altered, foreign,
no digest) and what to delete or rerun. A path verified once is not hashed again, by the same
process or the ones it starts, while its files keep their size and modification time."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import ArtifactError
from .runtime import atomic_path, file_digest

SIDECAR = ".sha256.json"  # beside a file: P.sha256.json
# files that copies between machines add to a folder (macOS, SMB, NFS), not part of a store
FOREIGN_FILES = (".DS_Store", "._", ".nfs")
# paths verified by this process or the one that started it (data-loader workers, ranks): path ->
# fingerprint of its stat signature, in the environment so that child processes inherit it
VERIFIED_ENV = "HTWEATHER_VERIFIED_ARTIFACTS"
MANIFEST = ".sha256.json"  # inside a directory


def sidecar(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + SIDECAR)


def artifact_name(path: str | Path) -> str:
    """What an artifact is called in its digest: its last two path parts (``tedm/model.pt``,
    ``samples/edm.zarr``), which survive moving a results folder but not copying a file into
    another artifact's place."""
    return "/".join(Path(os.path.abspath(path)).parts[-2:])


sha256 = file_digest  # one sha256 of a file for the digests and for the identity of sampled batches


def _files(directory: Path) -> Iterator[str]:
    """Relative paths of the files in `directory` that belong to its content (not the manifest)."""
    for root, _, names in os.walk(directory):
        for name in names:
            rel = os.path.relpath(os.path.join(root, name), directory)
            if rel not in (MANIFEST, ".snakemake_timestamp") and not name.startswith(FOREIGN_FILES):
                yield rel.replace(os.sep, "/")


def describe(path: str | Path, name: str) -> dict:
    """The digest record of a file or directory as it is now."""
    path = Path(path)
    if path.is_dir():
        return {"name": name, "files": {rel: [os.path.getsize(path / rel), sha256(path / rel)]
                                        for rel in sorted(_files(path))}}
    return {"name": name, "bytes": path.stat().st_size, "sha256": sha256(path)}


def record(tmp: str | Path, final: str | Path) -> None:
    """Record the digest of `tmp`, about to become `final`: a manifest inside a directory, a
    sidecar beside `final` for a file."""
    tmp = Path(tmp)
    text = json.dumps(describe(tmp, artifact_name(final)), indent=1)
    if tmp.is_dir():
        (tmp / MANIFEST).write_text(text)
        return
    with atomic_path(sidecar(final)) as side:
        side.write_text(text)


@contextmanager
def written(path: str | Path):
    """`runtime.atomic_path` that also records the digest of what was written, before the rename.
    A full disk (or a file-size limit) while writing leaves nothing and is one line."""
    try:
        with atomic_path(path) as tmp:
            yield tmp
            record(tmp, path)
    except OSError as exc:
        full = no_space(exc, path)
        if full is None:
            raise
        raise ArtifactError(full) from None
    except RuntimeError as exc:  # torch.save reports a failed write (a full disk among them) this way
        if "failed writing" not in str(exc):
            raise
        raise ArtifactError(f"{path}: cannot be written ({str(exc).splitlines()[0]}); nothing of it was kept: "
                            f"check the free space and rerun") from None


NO_SPACE = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
            errno.EFBIG: "a file would exceed the size allowed (ulimit -f)"}


def no_space(exc: BaseException, path: str | Path) -> str | None:
    """The one line for a write that ran out of room, or None for another error."""
    if isinstance(exc, OSError) and exc.errno in NO_SPACE:
        return (f"{path}: cannot be written: {NO_SPACE[exc.errno]}; nothing of it was kept: free space (or raise the limit) and rerun")
    return None


def rerun_hint(path: Path) -> str:
    return f"delete {path} and rerun (Snakemake remakes a missing output; the command line: rerun the step)"


def verify(path: str | Path, hint: str | None = None) -> Path:
    """`path`, checked against its digest; an `ArtifactError` (one line) when it is missing,
    truncated, altered, foreign or has no digest. Returns the path."""
    path = Path(path)
    hint = hint or rerun_hint(path)
    if not path.exists():
        raise ArtifactError(f"{path}: missing; rerun the step that writes it")
    key, fingerprint = str(path.resolve()), _fingerprint(_signature(path))
    if _verified().get(key) == fingerprint:
        return path
    record_path = path / MANIFEST if path.is_dir() else sidecar(path)
    try:
        expected = json.loads(record_path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path}: has no digest ({record_path.name} is missing): it was written by an older "
                            f"htweather or copied without it; {hint}") from None
    except (OSError, ValueError):
        raise ArtifactError(f"{path}: its digest {record_path} cannot be read; {hint}") from None
    if expected.get("name") != artifact_name(path):
        raise ArtifactError(f"{path}: foreign: its digest says it was written as '{expected.get('name')}', "
                            f"not as {artifact_name(path)}; {hint}")
    if path.is_dir():
        _verify_directory(path, expected, hint)
    else:
        _verify_file(path, path.name, expected.get("bytes"), expected.get("sha256"), hint, path)
    os.environ[VERIFIED_ENV] = json.dumps({**_verified(), key: fingerprint})
    return path


def _fingerprint(signature: tuple) -> str:
    return hashlib.sha256(repr(signature).encode()).hexdigest()


def _verified() -> dict:
    try:
        return json.loads(os.environ.get(VERIFIED_ENV, "{}"))
    except ValueError:
        return {}


def _verify_directory(path: Path, expected: dict, hint: str) -> None:
    files = expected.get("files", {})
    present = set(_files(path))
    for rel, (size, digest) in files.items():
        if rel not in present:
            raise ArtifactError(f"{path}: incomplete: '{rel}' is missing; {hint}")
        _verify_file(path / rel, rel, size, digest, hint, path)
    extra = sorted(present - set(files))
    if extra:
        raise ArtifactError(f"{path}: altered: '{extra[0]}' (and {len(extra) - 1} other file(s)) was not written "
                            f"with it; {hint}")


def _verify_file(file: Path, what: str, size: int | None, digest: str | None, hint: str, artifact: Path) -> None:
    actual = file.stat().st_size
    label = f"{artifact}" if file == artifact else f"{artifact}: '{what}'"
    if size is not None and actual < size:
        raise ArtifactError(f"{label}: truncated ({actual} of {size} bytes); {hint}")
    if size is not None and actual != size:
        raise ArtifactError(f"{label}: altered ({actual} bytes, {size} were written); {hint}")
    if sha256(file) != digest:
        raise ArtifactError(f"{label}: altered since it was written (its sha256 differs from its digest); {hint}")


def _signature(path: Path) -> tuple:
    """Size and modification time of a file, or of every file in a directory: what a change leaves."""
    if not path.is_dir():
        st = path.stat()
        return (st.st_size, st.st_mtime_ns)
    out = []
    for rel in sorted(_files(path)):
        st = (path / rel).stat()
        out.append((rel, st.st_size, st.st_mtime_ns))
    return tuple(out)


def _digest_as(path: Path, target: Path) -> None:
    """`path`'s digest, naming `target` (no rehashing)."""
    record = json.loads(sidecar(path).read_text())
    with atomic_path(sidecar(target)) as tmp:
        tmp.write_text(json.dumps({**record, "name": artifact_name(target)}, indent=1))


def rename(path: str | Path, target: str | Path) -> None:
    """Move a file artifact and its digest, which then names it as `target`."""
    path, target = Path(path), Path(target)
    if sidecar(path).exists():  # the digest first: the file never stands at `target` without it
        _digest_as(path, target)
    os.replace(path, target)
    sidecar(path).unlink(missing_ok=True)


def link(path: str | Path, target: str | Path) -> None:
    """`target` as a second name of the file artifact `path` (a hard link, a copy where links are
    not possible), with a digest of its own that names it; `path` stays."""
    path, target = Path(path), Path(target)
    with atomic_path(target) as tmp:
        try:
            os.link(path, tmp)
        except OSError:
            shutil.copyfile(path, tmp)
        _digest_as(path, target)


def set_aside(path: str | Path, reason: str) -> Path:
    """Rename a bad artifact (and its sidecar) out of the way, never deleting it: `P` becomes
    `P.unreadable-N` for the first free N. Returns the new path."""
    path = Path(path)
    n = 1
    while path.with_name(f"{path.name}.unreadable-{n}").exists():
        n += 1
    target = path.with_name(f"{path.name}.unreadable-{n}")
    os.replace(path, target)
    if sidecar(path).exists():  # as it was: it may be what is wrong
        os.replace(sidecar(path), sidecar(target))
    target.with_name(target.name + ".why").write_text(reason + "\n")
    return target


def open_zarr(path: str | Path, **kwargs):
    """A zarr store the pipeline wrote (ensembles, forecasts, snapshots, the data store), verified,
    then opened lazily (chunks=None unless given)."""
    import xarray as xr  # the glue imports no array library at start-up

    return xr.open_zarr(verify(path), **{"chunks": None, **kwargs})


def read_json(path: str | Path) -> dict:
    """A JSON file the pipeline wrote (statistics, the nu selection), verified."""
    return json.loads(verify(path).read_text())


def read_csv(path: str | Path, **kwargs):
    """A table the pipeline wrote (metrics, comparisons, training logs), verified."""
    import pandas as pd

    return pd.read_csv(verify(path), **kwargs)
