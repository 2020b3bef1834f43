"""The running kernel's own type information (BTF), read without bpftool or libbpf.

Probes on raw tracepoints get only pointers (``struct request *``, ``struct task_struct
*``); reading a field needs its offset, and the kernel headers bcc compiles against here
belong to another kernel (6.1 headers, 6.18 kernel), so their struct layouts are wrong.
``/sys/kernel/btf/vmlinux`` describes the running kernel exactly: this module reads
member offsets, enum values and raw tracepoint prototypes from it. The probes pass the
offsets to BPF through a map at configure time, so the C text stays the same on every
kernel and the program is still compiled once.

The BTF format (``include/uapi/linux/btf.h``): a header, then type records, then a
string section. Each type record is ``name_off, info, size_or_type`` (three u32), where
``info`` holds the kind in bits 24-28 and ``vlen`` in bits 0-15, followed by
kind-specific data. Type ids count records from 1.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

VMLINUX_BTF: Final[Path] = Path("/sys/kernel/btf/vmlinux")

BTF_MAGIC: Final[int] = 0xEB9F

# Kinds (BTF_KIND_*).
KIND_INT: Final[int] = 1
KIND_PTR: Final[int] = 2
KIND_ARRAY: Final[int] = 3
KIND_STRUCT: Final[int] = 4
KIND_UNION: Final[int] = 5
KIND_ENUM: Final[int] = 6
KIND_FWD: Final[int] = 7
KIND_TYPEDEF: Final[int] = 8
KIND_VOLATILE: Final[int] = 9
KIND_CONST: Final[int] = 10
KIND_RESTRICT: Final[int] = 11
KIND_FUNC: Final[int] = 12
KIND_FUNC_PROTO: Final[int] = 13
KIND_VAR: Final[int] = 14
KIND_DATASEC: Final[int] = 15
KIND_FLOAT: Final[int] = 16
KIND_DECL_TAG: Final[int] = 17
KIND_TYPE_TAG: Final[int] = 18
KIND_ENUM64: Final[int] = 19

# Bytes after the 12-byte common record: fixed part, and per vlen item.
_FIXED_EXTRA: Final[dict[int, int]] = {KIND_INT: 4, KIND_ARRAY: 12, KIND_VAR: 4, KIND_DECL_TAG: 4}
_PER_ITEM: Final[dict[int, int]] = {
    KIND_STRUCT: 12,
    KIND_UNION: 12,
    KIND_ENUM: 8,
    KIND_FUNC_PROTO: 8,
    KIND_DATASEC: 12,
    KIND_ENUM64: 12,
}
# Kinds that only qualify another type.
_QUALIFIERS: Final[frozenset[int]] = frozenset(
    {KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG}
)

_HEADER = struct.Struct("<HBBIIIII")
_RECORD = struct.Struct("<III")
_PAIR = struct.Struct("<Ii")
_PARAM = struct.Struct("<II")


class BTFError(Exception):
    """The BTF file is missing or unreadable, or lacks a type or member a probe needs.

    ``str(err)`` names what is missing; callers turn it into a probe's unavailability.
    """


@dataclass(frozen=True)
class Member:
    """A struct member as a probe reads it: byte offset from the struct start, byte size."""

    offset: int
    size: int


@dataclass(frozen=True)
class _Type:
    kind: int
    name_off: int
    vlen: int
    kind_flag: bool
    size_or_type: int
    pos: int  # offset of the record in the file


class KernelBTF:
    """Type information of one kernel, parsed from a BTF blob."""

    def __init__(self, data: bytes, source: str = "BTF") -> None:
        self.source = source
        if len(data) < _HEADER.size:
            raise BTFError(f"{source}: too short to be BTF")
        magic, _version, _flags, hdr_len, type_off, type_len, str_off, str_len = (
            _HEADER.unpack_from(data, 0)
        )
        if magic != BTF_MAGIC:
            raise BTFError(f"{source}: not BTF (magic {magic:#x}, expected {BTF_MAGIC:#x})")
        self._data = data
        self._strings_start = hdr_len + str_off
        self._strings_end = self._strings_start + str_len
        # Record positions by type id; records are decoded only when looked at.
        self._positions: list[int] = [0]  # type id 0 is void
        pos = hdr_len + type_off
        end = pos + type_len
        if end > len(data) or self._strings_end > len(data):
            raise BTFError(f"{source}: truncated (sections run past the end of the file)")
        unpack_info = struct.Struct("<I").unpack_from
        fixed, per_item = _FIXED_EXTRA, _PER_ITEM
        positions = self._positions
        while pos < end:
            positions.append(pos)
            (info,) = unpack_info(data, pos + 4)
            kind = (info >> 24) & 0x1F
            pos += 12 + fixed.get(kind, 0) + per_item.get(kind, 0) * (info & 0xFFFF)
        self._by_name: dict[int, list[int]] | None = None

    @classmethod
    def load(cls, path: Path = VMLINUX_BTF) -> KernelBTF:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise BTFError(
                f"{path}: cannot read the kernel's BTF ({exc.strerror or exc}); it needs a"
                " kernel built with CONFIG_DEBUG_INFO_BTF=y"
            ) from exc
        return cls(data, str(path))

    # -- names -------------------------------------------------------------------------

    def _name(self, name_off: int) -> str:
        start = self._strings_start + name_off
        end = self._data.index(b"\0", start, self._strings_end)
        return self._data[start:end].decode("utf-8", "replace")

    def _ids_named(self, name: str) -> list[int]:
        if self._by_name is None:
            index: dict[int, list[int]] = {}
            data = self._data
            for type_id, pos in enumerate(self._positions[1:], start=1):
                (name_off,) = struct.unpack_from("<I", data, pos)
                if name_off:
                    index.setdefault(name_off, []).append(type_id)
            self._by_name = index
        needle = b"\0" + name.encode() + b"\0"
        found = self._data.find(needle, self._strings_start, self._strings_end)
        # BTF strings are deduplicated, so a name has one offset. Offset 0 is "" and a
        # name at the very start of the section cannot be preceded by a NUL: check both.
        offsets = []
        if found >= 0:
            offsets.append(found + 1 - self._strings_start)
        if self._data.startswith(name.encode() + b"\0", self._strings_start):
            offsets.append(0)
        ids: list[int] = []
        for off in offsets:
            ids.extend(self._by_name.get(off, []))
        return ids

    def _find(self, name: str, kinds: frozenset[int]) -> int:
        for type_id in self._ids_named(name):
            if self._type(type_id).kind in kinds:
                return type_id
        raise BTFError(f"{self.source}: no type named {name!r}")

    def has_type(self, name: str) -> bool:
        return bool(self._ids_named(name))

    # -- types -------------------------------------------------------------------------

    def _type(self, type_id: int) -> _Type:
        if not 0 < type_id < len(self._positions):
            raise BTFError(f"{self.source}: type id {type_id} out of range")
        pos = self._positions[type_id]
        name_off, info, size_or_type = _RECORD.unpack_from(self._data, pos)
        return _Type(
            (info >> 24) & 0x1F, name_off, info & 0xFFFF, bool(info >> 31), size_or_type, pos
        )

    def _strip(self, type_id: int) -> int:
        """Follow typedefs and qualifiers to the underlying type id."""
        for _ in range(64):
            if type_id == 0:
                return 0
            t = self._type(type_id)
            if t.kind not in _QUALIFIERS:
                return type_id
            type_id = t.size_or_type
        raise BTFError(f"{self.source}: typedef chain too long at type id {type_id}")

    def size_of(self, type_id: int) -> int:
        type_id = self._strip(type_id)
        if type_id == 0:
            raise BTFError(f"{self.source}: void has no size")
        t = self._type(type_id)
        if t.kind in (KIND_INT, KIND_ENUM, KIND_ENUM64, KIND_STRUCT, KIND_UNION, KIND_FLOAT):
            return t.size_or_type
        if t.kind == KIND_PTR:
            return 8
        if t.kind == KIND_ARRAY:
            elem, _index, count = struct.unpack_from("<III", self._data, t.pos + _RECORD.size)
            return self.size_of(int(elem)) * int(count)
        raise BTFError(f"{self.source}: type id {type_id} (kind {t.kind}) has no size")

    def struct_size(self, struct_name: str) -> int:
        """Bytes of ``struct struct_name``."""
        return self.size_of(self._find(struct_name, frozenset({KIND_STRUCT, KIND_UNION})))

    def _members(self, type_id: int) -> Iterator[tuple[str, int, int, int]]:
        """(name, type id, bit offset, bitfield size) of a struct's or union's members."""
        t = self._type(type_id)
        for i in range(t.vlen):
            name_off, member_type, offset = _RECORD.unpack_from(
                self._data, t.pos + _RECORD.size + 12 * i
            )
            if t.kind_flag:
                bits, bitfield = offset & 0xFFFFFF, offset >> 24
            else:
                bits, bitfield = offset, 0
            yield self._name(name_off) if name_off else "", member_type, bits, bitfield

    def _find_member(self, type_id: int, member: str) -> tuple[int, int, int] | None:
        """(type id, bit offset, bitfield size), looking into anonymous members too."""
        for name, member_type, bits, bitfield in self._members(type_id):
            if name == member:
                return member_type, bits, bitfield
            if not name:
                inner = self._strip(member_type)
                if inner and self._type(inner).kind in (KIND_STRUCT, KIND_UNION):
                    found = self._find_member(inner, member)
                    if found is not None:
                        return found[0], bits + found[1], found[2]
        return None

    def member(self, struct_name: str, member: str) -> Member:
        """Byte offset and size of ``struct_name.member`` (anonymous unions searched)."""
        type_id = self._find(struct_name, frozenset({KIND_STRUCT, KIND_UNION}))
        found = self._find_member(type_id, member)
        if found is None:
            raise BTFError(f"{self.source}: struct {struct_name} has no member {member!r}")
        member_type, bits, bitfield = found
        if bitfield or bits % 8:
            raise BTFError(
                f"{self.source}: {struct_name}.{member} is a bitfield; probes read whole bytes"
            )
        return Member(offset=bits // 8, size=self.size_of(member_type))

    def enum_value(self, enum_name: str, enumerator: str) -> int:
        """Value of ``enumerator`` in ``enum enum_name``."""
        type_id = self._find(enum_name, frozenset({KIND_ENUM, KIND_ENUM64}))
        t = self._type(type_id)
        for i in range(t.vlen):
            if t.kind == KIND_ENUM:
                name_off, value = _PAIR.unpack_from(self._data, t.pos + _RECORD.size + 8 * i)
            else:
                name_off, lo, hi = _RECORD.unpack_from(self._data, t.pos + _RECORD.size + 12 * i)
                value = (hi << 32) | lo
            if self._name(name_off) == enumerator:
                return int(value)
        raise BTFError(f"{self.source}: enum {enum_name} has no enumerator {enumerator!r}")

    def func_id(self, function: str) -> int:
        """Type id of kernel function ``function`` (what fentry programs attach to)."""
        try:
            return self._find(function, frozenset({KIND_FUNC}))
        except BTFError:
            raise BTFError(f"{self.source}: no kernel function named {function!r}") from None

    def type_name(self, type_id: int) -> str:
        """C spelling of a type: ``struct request *``, ``unsigned int``, ``blk_status_t``."""
        if type_id == 0:
            return "void"
        t = self._type(type_id)
        name = self._name(t.name_off) if t.name_off else ""
        if t.kind == KIND_PTR:
            return f"{self.type_name(t.size_or_type)} *"
        if t.kind in (KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_ENUM64, KIND_FWD):
            word = {KIND_STRUCT: "struct", KIND_UNION: "union", KIND_FWD: "struct"}.get(
                t.kind, "enum"
            )
            return f"{word} {name}" if name else f"{word} <anonymous>"
        if t.kind == KIND_CONST:
            return f"const {self.type_name(t.size_or_type)}"
        if t.kind == KIND_VOLATILE:
            return f"volatile {self.type_name(t.size_or_type)}"
        if t.kind in (KIND_RESTRICT, KIND_TYPE_TAG):
            return self.type_name(t.size_or_type)
        if t.kind == KIND_FUNC_PROTO:
            return "function"
        return name or f"<type {type_id}>"

    def raw_tracepoint_args(self, tracepoint: str) -> list[str]:
        """C types of raw tracepoint ``tracepoint``'s arguments, as ``ctx->args[i]`` holds them.

        The kernel declares ``typedef void (*btf_trace_<tp>)(void *__data, <args>)`` for
        each tracepoint; the leading ``__data`` is not an argument BPF sees.
        """
        typedef = self._find(f"btf_trace_{tracepoint}", frozenset({KIND_TYPEDEF}))
        ptr = self._type(self._type(typedef).size_or_type)
        if ptr.kind != KIND_PTR:
            raise BTFError(f"{self.source}: btf_trace_{tracepoint} is not a function pointer")
        proto = self._type(ptr.size_or_type)
        if proto.kind != KIND_FUNC_PROTO:
            raise BTFError(f"{self.source}: btf_trace_{tracepoint} is not a function pointer")
        params = [
            _PARAM.unpack_from(self._data, proto.pos + _RECORD.size + 8 * i)[1]
            for i in range(proto.vlen)
        ]
        return [self.type_name(p) for p in params[1:]]


@functools.lru_cache(maxsize=4)
def kernel_btf(path: Path = VMLINUX_BTF) -> KernelBTF:
    """The running kernel's BTF, parsed once per process (about 0.1 s)."""
    return KernelBTF.load(path)


__all__ = ["VMLINUX_BTF", "BTFError", "KernelBTF", "Member", "kernel_btf"]
