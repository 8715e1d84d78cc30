"""The plugin API is what docs/plugins.md lists under "Public API", exactly: every name in a public
module's ``__all__`` is documented there, nothing else is documented as public, and the package ships
``py.typed`` so that plugins type-check against it."""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: The modules a plugin imports from; each has an ``__all__`` and a subsection in the guide.
PUBLIC_MODULES = (
    "broker_gateway.provider",
    "broker_gateway.errors",
    "broker_gateway.oauth2",
    "broker_gateway.provider_settings",
    "broker_gateway.upstream",
    "broker_gateway.hookspecs",
    "broker_gateway.sandbox",
)


def documented() -> dict[str, set[str]]:
    """Module -> the names listed under its ``### `module` `` heading in the "Public API" section."""
    guide = (ROOT / "docs" / "plugins.md").read_text()
    section = guide.split("\n## Public API\n", 1)[1].split("\n## ", 1)[0]
    names: dict[str, set[str]] = {}
    for block in re.split(r"^### ", section, flags=re.MULTILINE)[1:]:
        heading, _, body = block.partition("\n")
        module = heading.strip().strip("`")
        names[module] = set(re.findall(r"^- `(\w+)`: \S", body, flags=re.MULTILINE))
    return names


def test_every_public_module_has_a_section() -> None:
    assert set(PUBLIC_MODULES) <= set(documented())


@pytest.mark.parametrize("module_name", sorted(set(PUBLIC_MODULES) | set(documented())))
def test_the_guide_lists_exactly_the_modules_all(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = set(getattr(module, "__all__", ()))
    listed = documented()[module_name]
    assert exported, f"{module_name} has no __all__"
    assert exported - listed == set(), f"in {module_name}.__all__ but not documented"
    assert listed - exported == set(), f"documented as public but not in {module_name}.__all__"
    for name in exported:
        assert hasattr(module, name), f"{module_name}.__all__ names {name}, which it does not define"


def test_the_package_ships_py_typed() -> None:
    assert (ROOT / "service" / "broker_gateway" / "py.typed").is_file()
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data["broker_gateway"]
