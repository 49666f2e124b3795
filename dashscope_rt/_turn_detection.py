"""Turn detection: :class:`ServerVAD` and :class:`SemanticVAD`, the ``turn_detection`` object.

Public through :mod:`dashscope_rt.config` (and the top level). Every field starts as
:data:`~dashscope_rt.config.UNSET` and is then not sent; ``help()`` shows the service's
defaults (:data:`VAD_DEFAULTS`). See docs/protocol.md §5.1.
"""

from __future__ import annotations

import copy
import inspect
import types
from collections.abc import Mapping
from typing import Any, ClassVar, Final, TypeVar

import attrs

from . import _validators as check
from . import limits
from ._validators import UNSET, UnsetType
from .errors import InvalidInput

__all__ = ["VAD_DEFAULTS", "SemanticVAD", "ServerVAD"]


def _set_items(obj: Any, skip: tuple[str, ...] = ("extra",)) -> list[tuple[str, Any]]:
    return [
        (f.name, getattr(obj, f.name))
        for f in attrs.fields(type(obj))
        if f.name not in skip and getattr(obj, f.name) is not UNSET
    ]


def _repr(obj: Any) -> str:
    parts = [f"{k}={v!r}" for k, v in _set_items(obj)]
    if obj.extra:
        parts.append(f"extra={dict(obj.extra)!r}")
    return f"{type(obj).__name__}({', '.join(parts)})"


_VadT = TypeVar("_VadT", bound="_BaseVAD")


@attrs.frozen(kw_only=True, repr=False)
class _BaseVAD:
    """Fields common to both VAD types (docs/protocol.md §5.1)."""

    TYPE: ClassVar[str] = ""

    threshold: float | UnsetType = attrs.field(
        default=UNSET, validator=check.number(limits.VAD_THRESHOLD, prefix="turn_detection.")
    )
    """[-1.0, 1.0]; lower is more sensitive (server default 0.5)."""
    silence_duration_ms: int | UnsetType = attrs.field(
        default=UNSET,
        validator=check.number(limits.VAD_SILENCE_DURATION_MS, prefix="turn_detection."),
    )
    """[200, 6000] ms of silence that ends a turn (server default 800)."""
    prefix_padding_ms: int | UnsetType = attrs.field(
        default=UNSET,
        validator=check.number(limits.VAD_PREFIX_PADDING_MS, prefix="turn_detection."),
    )
    """Audio kept before speech start (server default 300). Not in the client docs; a client saw
    it refused."""
    create_response: bool | UnsetType = attrs.field(
        default=UNSET, validator=check.boolean("turn_detection.")
    )
    interrupt_response: bool | UnsetType = attrs.field(
        default=UNSET, validator=check.boolean("turn_detection.")
    )
    extra: Mapping[str, Any] = attrs.field(factory=dict, converter=check.vad_extra)
    """Unmodelled ``turn_detection`` keys, merged last."""

    def to_wire(self) -> dict[str, Any]:
        """The ``turn_detection`` object: ``type`` plus the fields that were set."""
        out: dict[str, Any] = {"type": self.TYPE}
        out.update(_set_items(self))
        out.update(copy.deepcopy(dict(self.extra)))
        return out

    @classmethod
    def from_wire(cls: type[_VadT], data: Mapping[str, Any], *, strict: bool = False) -> _VadT:
        """Parse a ``turn_detection`` dict; unknown keys go to ``extra``, and so do invalid
        values unless ``strict`` (then :class:`~dashscope_rt.errors.InvalidInput`)."""
        known = {f.name for f in attrs.fields(cls)} - {"extra"}
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in data.items():
            if key == "type":
                continue
            if key in known and (strict or _accepts(cls, key, value)):
                cls(**{key: value})  # raises for an invalid value (strict only)
                kwargs[key] = value
            else:
                extra[key] = value
        return cls(extra=extra, **kwargs)

    def with_defaults(self: _VadT) -> _VadT:
        """A copy with every unset field at the service's default
        (:data:`~dashscope_rt.limits.SERVER_VAD_DEFAULTS`)."""
        unset = {k: v for k, v in limits.SERVER_VAD_DEFAULTS.items() if getattr(self, k) is UNSET}
        return attrs.evolve(self, **unset)

    def merge(self: _VadT, other: _BaseVAD) -> _VadT:
        """A copy with every field set in ``other`` (of the same type) replacing this one's."""
        if type(other) is not type(self):
            raise InvalidInput(
                f"cannot merge {type(other).__name__} into {type(self).__name__}; "
                "replace the whole turn_detection instead"
            )
        changes: dict[str, Any] = dict(_set_items(other))
        if other.extra:
            changes["extra"] = {**self.extra, **other.extra}
        return attrs.evolve(self, **changes)

    def __repr__(self) -> str:
        return _repr(self)

    def effective(self, name: str) -> Any:
        """The value of field ``name``, or what the service uses when it is UNSET."""
        value = getattr(self, name)
        return VAD_DEFAULTS.get(name) if value is UNSET else value


@attrs.frozen(kw_only=True, repr=False)
class ServerVAD(_BaseVAD):
    """``{"type": "server_vad", ...}``: the server detects turns by voice activity."""

    TYPE: ClassVar[str] = "server_vad"

    idle_timeout_ms: int | UnsetType = attrs.field(
        default=UNSET, validator=check.number(limits.VAD_IDLE_TIMEOUT_MS, prefix="turn_detection.")
    )
    """[5000, 30000]: the model speaks up after this much user silence (qwen3.5 only)."""


@attrs.frozen(kw_only=True, repr=False)
class SemanticVAD(_BaseVAD):
    """``{"type": "semantic_vad", ...}``: ignores back-channel and background talk (qwen3.5)."""

    TYPE: ClassVar[str] = "semantic_vad"


_VAD_TYPES: Mapping[str, type[_BaseVAD]] = {"server_vad": ServerVAD, "semantic_vad": SemanticVAD}

VAD_DEFAULTS: Final[Mapping[str, Any]] = types.MappingProxyType(
    {
        "threshold": 0.5,
        "silence_duration_ms": 800,
        "prefix_padding_ms": 300,
        "create_response": True,
        "interrupt_response": True,
        "idle_timeout_ms": None,
    }
)
"""What the service uses for a ``turn_detection`` field left UNSET (protocol.md §5.1)."""


class _ServerDefault:
    """A parameter default shown by ``help()``: the value the service applies when unset."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "None (off)" if self.value is None else repr(self.value)


def _show_server_defaults(cls: type[_BaseVAD]) -> None:
    """Make ``help(cls)`` show the service's defaults instead of UNSET, and list them."""
    init = cls.__init__
    sig = inspect.signature(init)
    params = [
        p.replace(default=_ServerDefault(VAD_DEFAULTS[p.name]))
        if p.name in VAD_DEFAULTS
        else p.replace(default=_ServerDefault({}))
        if p.name == "extra"
        else p
        for p in sig.parameters.values()
    ]
    init.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    cls.__signature__ = sig.replace(parameters=params[1:])  # type: ignore[attr-defined]
    names = [f.name for f in attrs.fields(cls) if f.name in VAD_DEFAULTS]
    rows = "\n".join(f"        {n:<20} {_ServerDefault(VAD_DEFAULTS[n])!r}" for n in names)
    cls.__doc__ = (
        f"{cls.__doc__}\n\n    The defaults shown are the service's: a field you leave out is not "
        "sent (it reads\n    ``UNSET``) and the service uses::\n\n" + rows + "\n"
    )


for _vad_cls in (ServerVAD, SemanticVAD):
    _show_server_defaults(_vad_cls)


def _accepts(cls: type[Any], name: str, value: Any) -> bool:
    try:
        cls(**{name: value})
    except (InvalidInput, TypeError):
        return False
    return True
