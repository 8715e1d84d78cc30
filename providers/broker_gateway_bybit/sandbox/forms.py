"""Request parameters as one value per name: every Bybit endpoint refuses a repeated parameter, each
in its own words, so the caller turns :class:`RepeatedParameter` into its answer."""

from __future__ import annotations

from collections.abc import Iterable


class RepeatedParameter(ValueError):
    """A parameter that appears more than once; ``name`` says which."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} is repeated")
        self.name = name


def single_valued(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """``pairs`` as a dict, raising RepeatedParameter at the first name seen twice."""
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise RepeatedParameter(name)
        params[name] = value
    return params
