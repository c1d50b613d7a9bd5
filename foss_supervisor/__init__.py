"""foss-supervisor: one asyncio daemon that supervises a data-platform host."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
