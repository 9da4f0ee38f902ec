"""A remote zarr store whose connection drops, as cloud stores now and then do: a local HTTP
server (loopback only) stands in for it. Dropped reads are retried, and a store that keeps
dropping is refused in one line that says how many attempts were made."""

import functools
import http.server
import re
import socket
import threading

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from htweather.config import load_config
from htweather.data import ingest, sources
from htweather.errors import IngestError

TIMES = pd.date_range("2001-01-01", periods=40, freq="6h")
SPLITS = {"train": ["2001-01-01", "2001-01-07T18:00"], "validation": ["2001-01-08", "2001-01-08T18:00"],
          "test": ["2001-01-09", "2001-01-10T18:00"]}


@pytest.fixture
def server(tmp_path, monkeypatch):
    """(URL of a zarr store served over HTTP, its values, the drop settings): the first
    drops["per_chunk"] requests of each chunk of `t2m` are answered by closing the connection.
    (aiohttp itself tries a dropped request once more, so each drop of ours costs two.)"""
    monkeypatch.setattr(sources, "READ_BACKOFF_S", 0.01)
    values = np.random.default_rng(0).normal(280, 5, (len(TIMES), 6, 7)).astype("f4")
    ds = xr.Dataset({"t2m": (("time", "latitude", "longitude"), values, {"units": "K"})},
                    coords={"time": TIMES, "latitude": np.linspace(55, 50, 6), "longitude": np.linspace(-3, 3, 7)})
    ds.chunk({"time": 8}).to_zarr(tmp_path / "era5.zarr", mode="w", zarr_format=2, consolidated=True)
    drops = {"per_chunk": 0, "dropped": 0, "seen": {}}

    class Dropping(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            chunk = "/t2m/" in self.path and not self.path.rsplit("/", 1)[-1].startswith(".")
            seen = drops["seen"][self.path] = drops["seen"].get(self.path, 0) + 1
            if chunk and seen <= drops["per_chunk"]:
                drops["dropped"] += 1
                self.connection.shutdown(socket.SHUT_RDWR)
                self.connection.close()
                return
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Dropping, directory=str(tmp_path)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/era5.zarr", values, drops
    httpd.shutdown()
    httpd.server_close()


def config(url: str) -> dict:
    return load_config({"data": {"source": url, "splits": SPLITS, "variables": {"t2m": {}}}})


def test_dropped_reads_are_retried(server, tmp_path):
    url, values, drops = server
    drops["per_chunk"] = 3  # beyond aiohttp's own second try: our retries are needed
    ingest.ingest(config(url), None, tmp_path / "s.zarr", tmp_path / "s.json")
    assert drops["dropped"] == 3 * 5
    np.testing.assert_array_equal(xr.open_zarr(tmp_path / "s.zarr").t2m.values, values)


def test_a_store_that_keeps_dropping_is_refused_in_one_line(server, tmp_path):
    url, _, drops = server
    drops["per_chunk"] = 10**6
    with pytest.raises(IngestError) as error:
        ingest.ingest(config(url), None, tmp_path / "s.zarr", tmp_path / "s.json")
    assert "\n" not in str(error.value)
    assert re.fullmatch(rf"{re.escape(url)}: reading the data failed \(RemoteReadError: 't2m/\d\.0\.0' could not "
                        rf"be read in {sources.READ_ATTEMPTS} attempts \(ServerDisconnectedError: .*\)\)", str(error.value))
    assert not list(tmp_path.glob("s.*"))
