"""N:M structured sparsity: the one pattern type, shared by the kernels and the simulator."""

from __future__ import annotations

import math
from dataclasses import dataclass

from kernels.errors import InputError

__all__ = ["MAX_M", "NMPattern"]

MAX_M = 32


@dataclass(frozen=True, order=True)
class NMPattern:
    """At most ``n`` non-zeros in every group of ``m`` consecutive elements along the reduction axis.

    ``n == m`` is the dense pattern (VEGETA's 4:4). Examples
    --------
    >>> NMPattern.parse("2:4").density
    0.5
    """

    n: int
    m: int

    def __post_init__(self):
        if not (isinstance(self.n, int) and isinstance(self.m, int)):
            raise InputError(f"N:M pattern: N and M must be integers, got {self.n!r}:{self.m!r}")
        if not 1 <= self.m <= MAX_M:
            raise InputError(f"N:M pattern {self.n}:{self.m}: M must be in 1..{MAX_M}")
        if not 1 <= self.n <= self.m:
            raise InputError(f"N:M pattern {self.n}:{self.m}: need 1 <= N <= M (N > M is not a pattern)")

    @classmethod
    def parse(cls, text: str | NMPattern) -> NMPattern:
        """Parse ``"N:M"`` (whitespace allowed); raise :class:`InputError` naming the text otherwise."""
        if isinstance(text, NMPattern):
            return text
        parts = str(text).strip().split(":")
        try:
            n, m = (int(p) for p in parts)
        except ValueError:
            raise InputError(f"N:M pattern {text!r}: expected two integers as 'N:M', e.g. '2:4'") from None
        return cls(n, m)

    @property
    def density(self) -> float:
        return self.n / self.m

    @property
    def dense(self) -> bool:
        return self.n == self.m

    @property
    def metadata_bits(self) -> int:
        """Bits of position metadata per kept value: ceil(log2 M) (0 for a dense pattern)."""
        return 0 if self.dense else math.ceil(math.log2(self.m))

    def __str__(self) -> str:
        return f"{self.n}:{self.m}"
