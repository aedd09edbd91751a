"""Stage 1, bundled domain data (network, norms, indices, conversions, examples): the JSON files beside this
package, with their sources (README.md here). Pure; nothing reads outside the installed package at run time.

Index: `sensors.domain.bundled` (`load(name)`: a parsed bundled file).
"""

from __future__ import annotations

from sensors.domain.bundled import load

__all__ = ["load"]
