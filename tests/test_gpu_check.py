"""benchmarks/gpu_check.sh on a machine without CUDA: one line saying so, exit 0 (on a GPU node it
is run by hand: it takes minutes)."""

import subprocess
import sys

import pytest
import torch

from conftest import REPO


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is here: run benchmarks/gpu_check.sh by hand")
def test_gpu_check_without_cuda_says_so_in_one_line():
    result = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable}, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: no CUDA GPU here"), result.stdout
