"""The compiled tools a run needs, installed on first use: ghz (Go module proxy) and nginx (Debian).

ghz rather than h2load: ghz speaks gRPC (it reads the .proto files, checks every call's grpc-status,
and feeds a JSON array of requests round-robin, which gives every Exchange its own single-use state),
and reports p50/p99 directly. h2load is the lighter generator but sees only HTTP/2: a call failing
with a gRPC error in the trailers still counts as a success, and every request body would have to be
pre-framed by hand. On a 2-core machine ghz at these rates uses a fraction of its own core (each run
records the load generator's CPU use, so this stays checked), so it is not the bottleneck.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .procs import REPO

BIN = REPO / "benchmarks" / ".bin"
GHZ_MODULE = "github.com/bojand/ghz/cmd/ghz"
GHZ_VERSION = "v0.120.0"


def ghz() -> Path:
    """The pinned ghz, built into ``benchmarks/.bin`` with ``go install`` on first use."""
    binary, stamp = BIN / "ghz", BIN / "ghz.version"
    if binary.exists() and stamp.exists() and stamp.read_text().strip() == GHZ_VERSION:
        return binary
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        raise SystemExit("ghz is built from source with Go (1.21 or newer); install Go and run again")
    print(f"installing ghz {GHZ_VERSION} into {BIN} (go install, once)", flush=True)
    BIN.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(BIN), "GOFLAGS": "-buildvcs=false", "CGO_ENABLED": "0"}
    subprocess.run([go, "install", f"{GHZ_MODULE}@{GHZ_VERSION}"], check=True, env=env)
    stamp.write_text(GHZ_VERSION + "\n")
    return binary


def nginx() -> Path:
    """Debian's nginx, installed with apt-get (nginx-light) when absent."""
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    if found:
        return Path(found)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SystemExit("nginx is needed as the canned upstream: install it (Debian: apt-get install nginx-light)")
    print("installing nginx-light with apt-get (once)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "nginx-light"]
    if subprocess.run(install, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
        subprocess.run(install, check=True, env=env)
    return Path(shutil.which("nginx") or "/usr/sbin/nginx")
