"""Shared fixtures for the Python suites: the cspine binary and small synthetic data sets."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))


@pytest.fixture(scope="session")
def cspine_binary():
    b = Path(os.environ.get("CSPINE_BINARY", ROOT / "build" / "cspine"))
    if not b.exists():
        pytest.skip(f"cspine binary not found at {b} (build first or set CSPINE_BINARY)")
    return b


def synth(binary, out, *args):
    subprocess.run([str(binary), "-q", "synth", "-o", str(out), *map(str, args)], check=True)
    return out


@pytest.fixture(scope="session")
def tiny_synth(cspine_binary, tmp_path_factory):
    """6 small training studies (all with segmentations), every fracture type possible, mixed transfer
    syntaxes and both slice numberings."""
    return synth(cspine_binary, tmp_path_factory.mktemp("tiny-synth"), "-n", 6, "--seed", 31, "--matrix", 96,
                 "--test-fraction", 0, "--fracture-rate", 0.7)
