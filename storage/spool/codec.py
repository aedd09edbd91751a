"""The spool's on-disk format, pure (no I/O): record framing (`frame_record`, `scan_records`) and the batch codec
(`BatchCodec`: a batch of Readings ↔ JSON bytes). `storage.spool` writes and reads the files; this module only turns
bytes into records and batches and back.

- A record is `length u32 | readings u32 | crc32 u32 | payload` (big-endian); the CRC32 covers length, count and
  payload. `scan_records` finds the valid records of a segment from its start and says why it stopped early (a
  torn or corrupt tail).
- The payload is JSON `{"v": 1, "fields": [...], "rows": [[...], ...]}` built from the dataclass fields of
  `Reading` (datetimes as ISO 8601, enums such as the QC flags as their int value, nested dataclasses as
  objects) and rebuilt with `Reading(**fields)` from its type hints, so a field added to `Reading` is spooled
  without a change here. A batch's letters (`ingest.letter.Letter`: refused input kept as dead letters) ride in the
  same record under `"letters"` (payload bytes as base64), so they are as durable as the readings; a record
  without the key (written before letters existed) has none.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
import logging
import struct
import types
import typing
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ingest.letter import Letter
from ingest.reading import Reading

__all__ = ["HEADER", "BatchCodec", "RecordSpan", "frame_record", "scan_records"]

log = logging.getLogger("storage.spool")  # the spool's log lines keep one logger name, wherever they come from

_HEADER = struct.Struct(">III")  # payload length, readings in the batch, crc32(length, count, payload)
HEADER = _HEADER  #: the record header's layout (its `size` is where a record's payload starts)
_FORMAT_VERSION = 1


# ------------------------------------------------------------------------------------ record framing (pure)


def frame_record(payload: bytes, readings: int) -> bytes:
    """One spool record: header (length, reading count, CRC32 of both and the payload) + payload."""
    head = struct.pack(">II", len(payload), readings)
    return head + struct.pack(">I", zlib.crc32(payload, zlib.crc32(head))) + payload


@dataclass(frozen=True, slots=True)
class RecordSpan:
    """Where a valid record sits in a segment: its start, total size (header included) and reading count."""

    offset: int
    size: int
    readings: int


def scan_records(data: bytes | memoryview) -> tuple[list[RecordSpan], int, str | None]:
    """Valid records of a segment from its start: (records, end of the last valid one, why the scan stopped
    early — None when the data ends exactly after a record)."""
    spans: list[RecordSpan] = []
    offset, total = 0, len(data)
    while offset < total:
        if total - offset < _HEADER.size:
            return spans, offset, f"incomplete header ({total - offset} of {_HEADER.size} bytes)"
        length, count, crc = _HEADER.unpack_from(data, offset)
        end = offset + _HEADER.size + length
        if length == 0:
            return spans, offset, "zero-length record"
        if end > total:
            return spans, offset, f"incomplete payload ({total - offset - _HEADER.size} of {length} bytes)"
        head = bytes(data[offset:offset + 8])
        if zlib.crc32(data[offset + _HEADER.size:end], zlib.crc32(head)) != crc:
            return spans, offset, "checksum mismatch"
        spans.append(RecordSpan(offset, end - offset, count))
        offset = end
    return spans, offset, None


# ---------------------------------------------------------------------------------- batch codec (pure)


_JSON_SCALARS = (str, float, int, bool, type(None))


def _plain(value: Any) -> Any:
    if type(value) in _JSON_SCALARS:  # the common case first: most fields are plain
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return int(value) if isinstance(value, int) else value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class _Mismatch(ValueError):
    """A JSON value does not have the shape of the type tried (a union then tries its next member)."""


def _revive(value: Any, hint: Any) -> Any:
    """Rebuild a JSON value as the type `hint` describes (datetimes, enums, dataclasses, unions, tuples);
    raises _Mismatch when the value cannot be that type."""
    if hint is Any or isinstance(hint, (str, typing.TypeVar)):
        return value
    origin = typing.get_origin(hint)
    if value is None:
        if hint is type(None) or (origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)):
            return None
        raise _Mismatch
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            try:
                return _revive(value, arg)
            except (_Mismatch, ValueError, TypeError):
                continue
        raise _Mismatch
    if origin is typing.Literal:
        if value in typing.get_args(hint):
            return value
        raise _Mismatch
    if origin in (tuple, list):
        if not isinstance(value, list):
            raise _Mismatch
        args = [a for a in typing.get_args(hint) if a is not Ellipsis] or [Any]
        items = [_revive(v, args[min(i, len(args) - 1)]) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is not None:  # dict[...] and other generics: kept as JSON gave them
        return value
    if hint is datetime:
        if not isinstance(value, str):
            raise _Mismatch
        return datetime.fromisoformat(value)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise _Mismatch
        hints = typing.get_type_hints(hint)
        return hint(**{k: _revive(v, hints.get(k, Any)) for k, v in value.items()})
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(hint, type) and not isinstance(value, hint):
        raise _Mismatch
    return value


class BatchCodec:
    """Batch of Readings ↔ JSON bytes, driven by `Reading`'s dataclass fields and type hints (see module doc)."""

    def __init__(self) -> None:
        self._names = tuple(f.name for f in dataclasses.fields(Reading))
        self._hints = typing.get_type_hints(Reading)

    def encode(self, batch: Sequence[Reading], letters: Sequence[Letter] = ()) -> bytes:
        """JSON bytes of a batch and its letters (NaN kept as NaN)."""
        rows = [[_plain(getattr(r, n)) for n in self._names] for r in batch]
        doc: dict[str, Any] = {"v": _FORMAT_VERSION, "fields": self._names, "rows": rows}
        if letters:
            doc["letters"] = [_letter_plain(x) for x in letters]
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()

    def decode(self, payload: bytes, where: str) -> list[Reading]:
        """Readings of a payload written by `encode` (possibly by an older Reading: missing fields take their
        defaults; fields Reading no longer has are dropped with a log line)."""
        return self.decode_record(payload, where)[0]

    def decode_record(self, payload: bytes, where: str) -> tuple[list[Reading], list[Letter]]:
        """Readings and letters of a payload written by `encode`."""
        doc = json.loads(payload)
        letters = [_letter_revived(x, f"{where}: letters[{i}]") for i, x in enumerate(doc.get("letters", ()))]
        return self._readings(doc, where), letters

    def _readings(self, doc: dict[str, Any], where: str) -> list[Reading]:
        if doc.get("v") != _FORMAT_VERSION:
            raise ValueError(f"{where}: spool format version {doc.get('v')!r}, expected {_FORMAT_VERSION}")
        names: list[str] = doc["fields"]
        unknown = [n for n in names if n not in self._hints]
        if unknown:
            log.warning("%s: dropping spooled fields Reading no longer has: %s", where, ", ".join(unknown))
        out = []
        for row in doc["rows"]:
            fields = {}
            for name, value in zip(names, row, strict=True):
                if name in self._hints:
                    try:
                        fields[name] = _revive(value, self._hints[name])
                    except _Mismatch:
                        raise ValueError(f"{where}: field {name}: {value!r} is not a {self._hints[name]}") from None
            out.append(Reading(**fields))
        return out


def _letter_plain(letter: Letter) -> dict[str, Any]:
    out = {f.name: _plain(getattr(letter, f.name)) for f in dataclasses.fields(Letter)}
    if letter.payload is not None:
        out["payload"] = base64.b64encode(letter.payload).decode("ascii")
    return out


def _letter_revived(value: Any, where: str) -> Letter:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected an object, got {value!r}")
    fields = dict(value)
    try:
        fields["received_at"] = datetime.fromisoformat(fields["received_at"])
        if fields.get("payload") is not None:
            fields["payload"] = base64.b64decode(fields["payload"], validate=True)
        return Letter(**fields)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{where}: not a dead letter: {exc}") from None
