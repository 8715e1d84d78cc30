"""The worked example of a third-party plugin, examples/slack, as its author would test it: installed
with pip as a distribution of its own (from a copy, so the build leaves nothing in the tree), its tests
run by pytest in a subprocess with nothing of this repository's tests on the path, the testing kit
loaded through its pytest11 entry point, and the plugin found through its broker_gateway one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from broker_gateway.testing.conformance import ProviderConformance
from support.distributions import install_distribution

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "slack"


def test_the_example_plugin_passes_its_tests_and_the_conformance_suite(tmp_path: Path) -> None:
    source, site = install_distribution(EXAMPLE, tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", str(source / "tests")],
        env={**os.environ, "PYTHONPATH": str(site)},
        cwd=source,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    passed = [line for line in result.stdout.splitlines() if line.startswith("PASSED")]
    # Every check of the suite ran and passed (one skipped or missing would not be listed).
    suite = sorted(name for name in dir(ProviderConformance) if name.startswith("test_"))
    ran = sorted(line.split("::")[-1] for line in passed if "::TestSlackConformance::" in line)
    assert ran == suite
