"""Glue for Snakemake `script:` rules: log redirection and one-line errors.

Each script in workflow/scripts/ is a few lines: it hands its job to `run_step`, which sends
everything the step prints (including C libraries and progress bars) to the rule's log file
and turns an input error into one line naming the file or key, on the console and in the log,
with exit code 2, as the command line (Snakemake then removes the job's outputs)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from .errors import HtweatherError
from .runtime import setup_logging


def run_step(snakemake, step: Callable[[], object]) -> None:
    console = os.fdopen(os.dup(2), "w")
    if snakemake.log:
        log_fd = os.open(snakemake.log[0], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
    setup_logging()
    if "SLURM_JOB_ID" in os.environ:  # provenance, and how the tests see that a rule ran as a SLURM job
        logging.getLogger("htweather").info("SLURM job %s on node %s", os.environ["SLURM_JOB_ID"],
                                            os.environ.get("SLURMD_NODENAME", "?"))
    try:
        step()
    except HtweatherError as exc:
        line = f"htweather: {exc}"
        print(line, file=sys.stderr, flush=True)
        print(line, file=console, flush=True)
        sys.exit(2)  # as the command line: an input or artifact the user can fix, not a crash
