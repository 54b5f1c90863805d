"""The BTF engine: parse, query, build, decode and render BPF Type Format data.

Pure Python (stdlib, plus pyelftools for ELF objects, imported only when needed).
"""

from __future__ import annotations

from .reader import parse
from .spec import Spec

__all__ = ["parse", "Spec"]
