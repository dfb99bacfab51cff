"""Types of the data modules' arguments, with their ranges.

``dltrain.config.signatures`` checks a composed config against these annotations (with
pydantic) before any data is loaded, so a range written here is the one place it lives.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from annotated_types import Ge, Gt, Interval, MinLen

Size = Annotated[int, Ge(1)]
Shape = Annotated[Sequence[Size], MinLen(1)]
Classes = Annotated[int, Ge(2)]
#: A share of a split held out (validation, test): 0 holds out nothing.
Fraction = Annotated[float, Interval(ge=0, lt=1)]
Std = Annotated[float, Gt(0)]
