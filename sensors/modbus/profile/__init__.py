"""Stage 1, device profiles: the YAML register map of one analyser model, validated and turned into frozen records.
Loading is I/O at the edge (one YAML file); everything after it is pure.

Index: `sensors.modbus.profile.records` (Profile and its parts, ProfileError), `.parse` (validation:
`parse_profile`, `vector_matches`), `.files` (`load_profile`, `list_profiles`, `default_profiles_dir`).
"""

from __future__ import annotations

from sensors.modbus.profile.files import default_profiles_dir, list_profiles, load_profile
from sensors.modbus.profile.parse import parse_profile, vector_matches
from sensors.modbus.profile.records import (
    BIT_TABLES,
    STATUS_FIELD,
    HistoryBuffer,
    Profile,
    ProfileError,
    StatusBit,
    StatusRegister,
    Table,
    VariableSpec,
    Vector,
)

__all__ = ["BIT_TABLES", "STATUS_FIELD", "HistoryBuffer", "Profile", "ProfileError", "StatusBit", "StatusRegister",
           "Table", "VariableSpec", "Vector", "default_profiles_dir", "list_profiles", "load_profile",
           "parse_profile", "vector_matches"]
