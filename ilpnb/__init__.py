"""ilpnb: a workbench for what supervised fine-tuning fails to learn, and why."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
