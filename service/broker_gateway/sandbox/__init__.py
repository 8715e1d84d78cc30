"""The sandbox: the gateway on its embedded default against local simulators (``runner``), the pieces
every simulator is built from (``simkit``) and serving an ASGI app on loopback (``asgi``).

Only what plugins and the command line need is imported here: the types a plugin registers its
simulators with and the ``sandbox`` command's defaults. ``runner``, ``simkit`` and ``asgi`` need the
``sandbox`` extra (Starlette, uvicorn, python-multipart), which ``serve`` never loads.
"""

from .registration import SandboxEnvironment, SandboxParts, SandboxUpstream

#: Where ``broker-gateway sandbox`` keeps its state, and where its callback page listens by default.
DEFAULT_DATA_DIR = ".broker-gateway"
DEFAULT_CALLBACK = "127.0.0.1:8765"

__all__ = ["DEFAULT_CALLBACK", "DEFAULT_DATA_DIR", "SandboxEnvironment", "SandboxParts", "SandboxUpstream"]
