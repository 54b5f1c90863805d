"""The Prometheus text exposition format (version 0.0.4), as node_exporter's textfile
collector reads it: `# HELP`, `# TYPE`, then one sample per line.

Label values are escaped as the format says: backslash, double quote and line feed
become \\\\, \\" and \\n. Interface names may hold `"` and `\\` (the kernel refuses only
NUL, '/', ':' and white space); a name that is not UTF-8 (the format is UTF-8) is
given in its text form, each such byte as \\xff (names.py), so the value always parses.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_NOT_UTF8 = re.compile("[\udc80-\udcff]")


def label_value(value: str) -> str:
    value = _NOT_UTF8.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}", value)
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def help_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return str(int(v)) if float(v).is_integer() else repr(float(v))


@dataclass
class Family:
    name: str
    help: str
    type: str = "gauge"
    samples: List[Tuple[Dict[str, str], float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        assert _NAME.match(self.name), self.name

    def add(self, value: float, **labels: str) -> None:
        assert all(_LABEL.match(k) for k in labels), labels
        self.samples.append((labels, value))

    def render(self) -> str:
        lines = [f"# HELP {self.name} {help_text(self.help)}", f"# TYPE {self.name} {self.type}"]
        for labels, value in self.samples:
            body = ",".join(f'{k}="{label_value(v)}"' for k, v in labels.items())
            lines.append(f"{self.name}{{{body}}} {_value(value)}" if body else f"{self.name} {_value(value)}")
        return "\n".join(lines) + "\n"


def render(families: List[Family]) -> str:
    """Every family, also one without samples (its HELP and TYPE say what would be there)."""
    return "".join(f.render() for f in families)
