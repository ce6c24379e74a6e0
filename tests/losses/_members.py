"""Registry members for test references, whichever spelling of the skew weight the registry takes."""

from __future__ import annotations

from divergences import fdiv
from divergences.losses._distill import skew_member


def member(name: str, params: dict) -> fdiv.FDivergence:
    """``fdiv.get(name, **params)``, with ``skew`` passed as the registry spells it."""
    if "skew" in params:
        return skew_member(name, params["skew"])
    return fdiv.get(name, **params)
