"""One process of a data-parallel training: `distributed.launch` runs
``torchrun ... -m htweather.training.rank launch.json``, and every rank runs `train.train` on
the job in that file (its place in the group comes from the environment torchrun sets)."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from ..errors import HtweatherError
from ..runtime import setup_logging
from .train import train


def main(argv: list[str]) -> int:
    setup_logging()
    if int(os.environ.get("RANK", "0")) != 0:
        logging.getLogger().setLevel(logging.WARNING)
    job = json.loads(Path(argv[0]).read_text())
    try:
        train(**job)
    except HtweatherError as error:
        print(f"htweather: {error}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
