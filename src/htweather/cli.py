"""Command line for the steps that are useful outside the workflow.

  htweather check [--scan] CONFIG         validate a config and its source as ingestion would: metadata,
                                          and the values where the selection is small (--scan: always)
  htweather ingest CONFIG STORE [STATS]   build a training store from the config's data section
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import load_config
from .errors import HtweatherError
from .runtime import setup_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="htweather", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="validate a config and its source as ingestion would (metadata; "
                                "the values too where the selection is at most 256 MB, or with --scan)")
    check.add_argument("config", type=Path)
    check.add_argument("--scan", action="store_true", help="read every selected value (infinite, all-missing or "
                       "constant variables), whatever the size, and say how long it took")
    build = commands.add_parser("ingest", help="build the normalised zarr store from the config's data section")
    build.add_argument("config", type=Path)
    build.add_argument("store", type=Path, help="output zarr store, e.g. results/data/store.zarr")
    build.add_argument("stats", type=Path, nargs="?", help="statistics JSON (default: STORE without .zarr + .json)")
    args = parser.parse_args(argv)

    setup_logging()
    from .data import ingest  # the command line is an entry point: it calls the data stage

    try:
        config = load_config(args.config)
        scanned = None
        if args.command == "check":  # the workflow's start-up check, the same function, with a scan of the values
            scanned = ingest.check_source(config, scan_values=True if args.scan else None)
    except HtweatherError as error:
        print(f"htweather: config error: {error}", file=sys.stderr)  # the workflow's start prints the same line
        return 2
    try:
        if args.command == "check":
            print(f"{args.config}: ok" + (f"; {scanned}" if scanned else ""))
        else:
            if config["data"]["source"] == "synthetic":
                raise HtweatherError("data.source: the synthetic default is written by the workflow "
                                     "(snakemake); `htweather ingest` reads files or zarr stores")
            stats = args.stats or args.store.with_suffix(".json")
            ingest.ingest(config, None, args.store, stats)
            print(f"wrote {args.store} and {stats}")
    except HtweatherError as error:
        print(f"htweather: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
