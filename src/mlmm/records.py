"""Base of the records written between jobs: dataclasses with a JSON file as their contract.

A stage writes its record with :meth:`Record.to_json` and the stages downstream read it with
:meth:`Record.from_json`, so a key is spelled once, in the dataclass beside the code that
produces it. The JSON layout is the dataclass's fields in order, with three refinements set
per field by the helpers below:

* :func:`optional` — written only when not ``None`` (keys that some variants of a record lack,
  e.g. the selection record of an iteration after convergence);
* :func:`nested` — a record (or a list of records) of another class;
* :func:`extra` — a dict merged into the top level (stage-specific keys, e.g. a sampler's own
  statistics); on reading it collects every key that is no field.

Records without an :func:`extra` field refuse unknown keys, naming the file.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, TypeVar

from mlmm.jobs import read_json, write_json

R = TypeVar("R", bound="Record")


def optional(default: Any = None) -> Any:
    """A field whose key is left out of the JSON while its value is ``None``."""
    return dataclasses.field(default=default, metadata={"omit_none": True})


def nested(record: type, *, default_none: bool = False, optional_key: bool = False) -> Any:
    """A field holding a record of class ``record`` or a list of them (converted on reading)."""
    meta = {"record": record, "omit_none": optional_key}
    if default_none or optional_key:
        return dataclasses.field(default=None, metadata=meta)
    return dataclasses.field(metadata=meta)


def extra() -> Any:
    """A dict of further keys stored flat at the top level of the JSON object."""
    return dataclasses.field(default_factory=dict, metadata={"extra": True})


class Record:
    """Mixin of the record dataclasses: ``to_dict``/``from_dict`` and ``to_json``/``from_json``."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this record (nested records converted, None-optional keys dropped)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.metadata.get("extra"):
                out.update(value)
                continue
            if value is None and f.metadata.get("omit_none"):
                continue
            if f.metadata.get("record") is not None and value is not None:
                value = [v.to_dict() for v in value] if isinstance(value, list) else value.to_dict()
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any], source: str = "record") -> R:
        """The record of a JSON object; a missing required key or an unknown key is an error naming ``source``."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{source}: expected a JSON object for {cls.__name__}, got {type(data).__name__}")
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        names = {f.name for f in fields if not f.metadata.get("extra")}
        kwargs: dict[str, Any] = {}
        for f in fields:
            if f.metadata.get("extra"):
                kwargs[f.name] = {k: v for k, v in data.items() if k not in names}
                continue
            if f.name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise ValueError(f"{source}: {cls.__name__} record lacks the key {f.name!r}")
                continue
            value = data[f.name]
            sub = f.metadata.get("record")
            if sub is not None and value is not None:
                value = ([sub.from_dict(v, source) for v in value] if isinstance(value, list)
                         else sub.from_dict(value, source))
            kwargs[f.name] = value
        if not any(f.metadata.get("extra") for f in fields):
            unknown = sorted(set(data) - names)
            if unknown:
                raise ValueError(f"{source}: unexpected key(s) {unknown} in a {cls.__name__} record")
        return cls(**kwargs)

    def to_json(self, path: str | os.PathLike) -> None:
        """Write the record atomically as JSON."""
        write_json(path, self.to_dict())

    @classmethod
    def from_json(cls: type[R], path: str | os.PathLike) -> R:
        """Read a record written by :meth:`to_json` (or by the same layout before the records existed)."""
        return cls.from_dict(read_json(path), source=str(path))
