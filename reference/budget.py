"""One element budget for whatever allocates per element: the oracle's inputs and case files.

Why: the oracle keeps some twenty float temporaries per element (quad ones are 16 bytes), so 10^7
unreduced elements need gigabytes and minutes; a 1.4 MB compressed case file can declare an array
of billions.  Past the budget the answer is a clear error naming the knob, before any allocation.
``LOSSCHECK_MAX_ELEMENTS`` sets it (default 4,000,000 elements per call or per stored array).
"""
from __future__ import annotations

import os

DEFAULT_MAX_ELEMENTS = 4_000_000
ENV = "LOSSCHECK_MAX_ELEMENTS"


class BudgetError(ValueError):
    """More elements than the configured budget."""


def element_budget() -> int:
    """The budget in elements: ``$LOSSCHECK_MAX_ELEMENTS`` or :data:`DEFAULT_MAX_ELEMENTS`."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_ELEMENTS
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise BudgetError(f"{ENV}={raw!r}: expected a positive integer") from None
    if value <= 0:
        raise BudgetError(f"{ENV}={raw!r}: expected a positive integer")
    return value


def check_elements(count: int, what: str) -> None:
    """BudgetError when ``count`` elements exceed the budget."""
    budget = element_budget()
    if count > budget:
        raise BudgetError(f"{what}: {count:,} elements exceed the element budget of {budget:,} "
                          f"(set {ENV} to raise it)")
