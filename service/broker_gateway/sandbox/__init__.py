"""The sandbox: the gateway on its embedded default against local simulators (``runner``), the pieces
every simulator is built from (``simkit``) and serving an ASGI app on loopback (``asgi``)."""

from .runner import (
    DEFAULT_CALLBACK,
    DEFAULT_DATA_DIR,
    Sandbox,
    SandboxEnvironment,
    SandboxParts,
    SandboxUpstream,
    run_sandbox,
    run_simulators,
    start_sandbox,
)

__all__ = [
    "DEFAULT_CALLBACK",
    "DEFAULT_DATA_DIR",
    "Sandbox",
    "SandboxEnvironment",
    "SandboxParts",
    "SandboxUpstream",
    "run_sandbox",
    "run_simulators",
    "start_sandbox",
]
