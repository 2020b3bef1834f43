"""The probe catalog's Python side, without BPF: BTF parsing, map reading, configuration
against the maps each probe's C declares, feature detection, and the CLI's rendering.

The fake program below is built from a probe's own C text (its ``struct`` and map
declarations), so configuring and reading a probe against it checks the C/Python
contract: field names, map names and lengths.
"""

from __future__ import annotations

import argparse
import ctypes
import io
import json
import re
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perfcheck.cli import probe as cli_probe
from perfcheck.errors import ProbeError, TargetError
from perfcheck.model.bpf_layout import HIST_SLOTS
from perfcheck.model.histogram import LogLinearHistogram, bucket_index
from perfcheck.probes import CATALOG, partition_available
from perfcheck.probes import features as features_module
from perfcheck.probes.base import Probe
from perfcheck.probes.block import (
    BLOCK_PROGRAM_C,
    FEATURE_BIO,
    FEATURE_DETECT,
    FEATURE_LATENCY,
    FEATURE_QUEUE,
    FEATURE_SIZE,
    FEATURE_STAMPED,
    BioLayout,
    BlockBioLatencyProbe,
    BlockConfigStruct,
    BlockLatencyProbe,
    BlockLayout,
    BlockQueueLatencyProbe,
    BlockSizeProbe,
    bio_window,
    configure_block_program,
    request_window,
    stamp_window,
)
from perfcheck.probes.btf import BTFError, KernelBTF, Member
from perfcheck.probes.catalog import CatalogProbe, setting
from perfcheck.probes.features import Unavailable
from perfcheck.probes.func import (
    FuncLatencyProbe,
    UserFuncLatencyProbe,
    resolve_library,
    split_target,
)
from perfcheck.probes.maps import hash_items, percpu_array_sums, split_histograms, write_config
from perfcheck.probes.net import NetSoftirqProbe, TcpSrttProbe, softirq_vectors
from perfcheck.probes.sched import SchedRunqLatencyProbe, TaskLayout
from perfcheck.probes.session import attach_only, build_program
from perfcheck.probes.syscall import (
    SyscallLatencyProbe,
    histograms_by_syscall,
    parse_unistd,
    syscall_name,
    top_syscalls,
)
from perfcheck.system.cgroup import cgroup2_root

# --- a fake bcc program made from a probe's C declarations --------------------------------

_CTYPES = {"u32": ctypes.c_uint32, "u64": ctypes.c_uint64}
_STRUCT = re.compile(r"struct (\w+) \{(.*?)\};", re.S)
_FIELD = re.compile(r"^\s*(u32|u64) (\w+);", re.M)
_DEFINE = re.compile(r"^#define (\w+) (\d+)\s*$", re.M)
_MAP = re.compile(
    r"^(BPF_ARRAY|BPF_PERCPU_ARRAY|BPF_HASH)\((\w+), ([\w ]+?), ([^)]+)\);"
    r"|^BPF_(?:F_)?TABLE\(\"(?:lru_)?hash\", ([\w ]+?), ([\w ]+?), (\w+), ([^,)]+)(?:, \w+)?\);",
    re.M,
)


class FakeArray:
    """bcc's Array/PerCpuArray as the probes use them: Key, Leaf, get/set, batch, sum."""

    def __init__(self, leaf: Any, length: int, cpus: int = 0) -> None:
        self.Key = ctypes.c_int
        self.Leaf = leaf
        self.cpus = cpus
        self.values: list[Any] = [leaf() for _ in range(length)]
        self.per_cpu: list[list[int]] = [[0] * cpus for _ in range(length)] if cpus else []
        self.batch_works = True
        self.key_reads = 0

    def __getitem__(self, key: Any) -> Any:
        return self.values[int(key.value)]

    def __setitem__(self, key: Any, leaf: Any) -> None:
        self.values[int(key.value)] = leaf

    def items_lookup_batch(self) -> Iterator[tuple[Any, list[int]]]:
        if not self.batch_works:
            raise Exception("BPF_MAP_LOOKUP_BATCH has failed: Invalid argument")
        # As bcc 0.26 does: an array's keys come back as plain ints.
        yield from enumerate(self.per_cpu)

    def sum(self, key: Any) -> Any:
        self.key_reads += 1
        return ctypes.c_uint64(sum(self.per_cpu[int(key.value)]))

    def clear(self) -> None:  # bcc zeroes every entry of an array
        self.values = [self.Leaf() for _ in self.values]
        self.per_cpu = [[0] * self.cpus for _ in self.per_cpu]


class FakeHash(dict[Any, Any]):
    """bcc's HashTable: clear, items, batch."""

    def __init__(self, key: Any, leaf: Any) -> None:
        super().__init__()
        self.Key, self.Leaf = key, leaf
        self.cleared = 0

    def clear(self) -> None:
        self.cleared += 1
        super().clear()

    def items_lookup_batch(self) -> Iterator[tuple[Any, Any]]:
        yield from self.items()


class FakeProgram:
    """Maps of a generated program, keyed like bcc's ``BPF.__getitem__`` (bytes names)."""

    def __init__(self, text: str, cpus: int = 2) -> None:
        defines = {"PC_HIST_SLOTS": HIST_SLOTS, **{k: int(v) for k, v in _DEFINE.findall(text)}}
        structs: dict[str, Any] = {}
        for name, body in _STRUCT.findall(text):
            fields = [(field, _CTYPES[kind]) for kind, field in _FIELD.findall(body)]
            structs[name] = type(name, (ctypes.Structure,), {"_fields_": fields})

        def ctype(spelled: str) -> Any:
            spelled = spelled.strip()
            if spelled.startswith("struct "):
                return structs[spelled.removeprefix("struct ")]
            return _CTYPES[spelled]

        def length(expr: str) -> int:
            for name, value in defines.items():
                expr = re.sub(rf"\b{name}\b", str(value), expr)
            assert re.fullmatch(r"[\d\s*+]+", expr), expr
            return int(eval(expr))  # only digits, spaces, * and + remain

        self.tables: dict[bytes, Any] = {}
        for m in _MAP.finditer(text):
            if m.group(1):
                kind, name, leaf, size = m.group(1, 2, 3, 4)
                if kind == "BPF_HASH":
                    key_type, leaf_type = ctype(leaf), ctype(size.split(",")[0])
                    self.tables[name.encode()] = FakeHash(key_type, leaf_type)
                else:
                    cpus_here = cpus if kind == "BPF_PERCPU_ARRAY" else 0
                    self.tables[name.encode()] = FakeArray(ctype(leaf), length(size), cpus_here)
            else:
                key, leaf, name, _size = m.group(5, 6, 7, 8)
                self.tables[name.encode()] = FakeHash(ctype(key), ctype(leaf))
        self.attached: list[tuple[str, dict[str, Any]]] = []

    def __getitem__(self, name: bytes) -> Any:
        return self.tables[name]

    def __getattr__(self, method: str) -> Any:
        if method.startswith(("attach_", "detach_")):
            return lambda **kwargs: self.attached.append((method, kwargs))
        raise AttributeError(method)


LAYOUT = BlockLayout(
    off_rq_q=0,
    off_rq_cmd_flags=24,
    off_rq_data_len=44,
    **request_window(Member(0, 8), Member(24, 4), Member(44, 4)),
    **{"off_q_disk": 104, "off_disk_major": 0, "off_disk_first_minor": 4},
    # The kernel's REQ_OP_* numbers under the op mask.
    **{"op_mask": 255, "op_read": 0, "op_write": 1, "op_flush": 2, "op_discard": 3},
    op_secure_erase=5,
)


BIO_LAYOUT = BioLayout(
    **bio_window(Member(8, 8), Member(16, 4), Member(40, 4), struct_size=120),
    off_bio_bdev=8,
    off_bio_opf=16,
    off_bio_size=40,
    off_bdev_disk=16,
    off_rq_bio=56,
    off_bio_next=0,
    flag_preflush=1 << 18,
)


@pytest.fixture
def block_program() -> FakeProgram:
    return FakeProgram(build_program([BlockLatencyProbe()]))


# --- a synthetic BTF blob -----------------------------------------------------------------


class BTFBuilder:
    """Writes BTF the way the kernel lays it out, for parser tests."""

    def __init__(self) -> None:
        self.strings = bytearray(b"\0")
        self.records: list[bytes] = []

    def name(self, text: str) -> int:
        if not text:
            return 0
        needle = text.encode() + b"\0"
        found = self.strings.find(b"\0" + needle)
        if found >= 0:
            return found + 1
        offset = len(self.strings)
        self.strings += needle
        return offset

    def add(self, kind: int, name: str, vlen: int, size_or_type: int, extra: bytes = b"") -> int:
        info = (kind << 24) | vlen
        self.records.append(struct.pack("<III", self.name(name), info, size_or_type) + extra)
        return len(self.records)

    def int_type(self, name: str, size: int) -> int:
        return self.add(1, name, 0, size, struct.pack("<I", size * 8))

    def ptr(self, target: int) -> int:
        return self.add(2, "", 0, target)

    def struct_type(self, name: str, size: int, members: list[tuple[str, int, int]]) -> int:
        extra = b"".join(struct.pack("<III", self.name(m), t, bits) for m, t, bits in members)
        return self.add(4, name, len(members), size, extra)

    def union_type(self, name: str, size: int, members: list[tuple[str, int, int]]) -> int:
        extra = b"".join(struct.pack("<III", self.name(m), t, bits) for m, t, bits in members)
        return self.add(5, name, len(members), size, extra)

    def enum(self, name: str, values: list[tuple[str, int]]) -> int:
        extra = b"".join(struct.pack("<Ii", self.name(n), v) for n, v in values)
        return self.add(6, name, len(values), 4, extra)

    def typedef(self, name: str, target: int) -> int:
        return self.add(8, name, 0, target)

    def func_proto(self, params: list[int]) -> int:
        extra = b"".join(struct.pack("<II", 0, p) for p in params)
        return self.add(13, "", len(params), 0, extra)

    def func(self, name: str, proto: int) -> int:
        return self.add(12, name, 0, proto)

    def blob(self) -> bytes:
        types = b"".join(self.records)
        header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types),
                             len(self.strings))  # fmt: skip
        return header + types + bytes(self.strings)


def small_kernel() -> KernelBTF:
    b = BTFBuilder()
    u32 = b.int_type("unsigned int", 4)
    u64 = b.int_type("long long unsigned int", 8)
    queue = b.struct_type("request_queue", 16, [("queue_flags", u64, 0), ("disk", u64, 64)])
    queue_ptr = b.ptr(queue)
    inner = b.union_type("", 8, [("ipi_list", u64, 0), ("fifo_time", u64, 0)])
    b.struct_type(
        "request",
        64,
        [("q", queue_ptr, 0), ("", inner, 64), ("cmd_flags", u32, 128), ("__data_len", u32, 352)],
    )
    b.enum("req_op", [("REQ_OP_READ", 0), ("REQ_OP_WRITE", 1), ("REQ_OP_DISCARD", 3)])
    request = 6  # type id of struct request (records count from 1)
    blk_status = b.typedef("blk_status_t", b.int_type("unsigned char", 1))
    void_ptr = b.ptr(0)
    proto = b.func_proto([void_ptr, b.ptr(request), blk_status, u32])
    b.typedef("btf_trace_block_rq_complete", b.ptr(proto))
    b.func("vfs_read", b.func_proto([]))
    return KernelBTF(b.blob(), "test BTF")


# --- BTF ----------------------------------------------------------------------------------


def test_btf_member_offsets_sizes_and_anonymous_unions() -> None:
    btf = small_kernel()
    assert btf.member("request", "q").offset == 0
    assert btf.member("request", "q").size == 8
    assert btf.member("request", "fifo_time").offset == 8  # inside the anonymous union
    assert btf.member("request", "cmd_flags").offset == 16
    assert btf.member("request", "__data_len").offset == 44
    assert btf.member("request", "__data_len").size == 4
    assert btf.member("request_queue", "disk").offset == 8


def test_btf_enums_prototypes_and_functions() -> None:
    btf = small_kernel()
    assert btf.enum_value("req_op", "REQ_OP_DISCARD") == 3
    assert btf.raw_tracepoint_args("block_rq_complete") == [
        "struct request *",
        "blk_status_t",
        "unsigned int",
    ]
    assert btf.func_id("vfs_read") > 0
    assert btf.has_type("request") and not btf.has_type("no_such_type")


@pytest.mark.parametrize(
    ("lookup", "message"),
    [
        (lambda b: b.member("request", "tag"), "struct request has no member 'tag'"),
        (lambda b: b.member("bio", "bi_size"), "no type named 'bio'"),
        (lambda b: b.enum_value("req_op", "REQ_OP_FLUSH"), "no enumerator 'REQ_OP_FLUSH'"),
        (lambda b: b.raw_tracepoint_args("block_rq_issue"), "btf_trace_block_rq_issue"),
        (lambda b: b.func_id("vfs_write"), "no kernel function named 'vfs_write'"),
    ],
)
def test_btf_lookups_name_what_is_missing(lookup: Any, message: str) -> None:
    with pytest.raises(BTFError, match=re.escape(message)):
        lookup(small_kernel())


def test_btf_rejects_what_is_not_btf(tmp_path: Path) -> None:
    with pytest.raises(BTFError, match="not BTF"):
        KernelBTF(b"\0" * 64, "junk")
    with pytest.raises(BTFError, match="CONFIG_DEBUG_INFO_BTF"):
        KernelBTF.load(tmp_path / "vmlinux")


@given(st.lists(st.integers(0, 1000), min_size=1, max_size=20, unique=True))
def test_btf_member_offsets_round_trip(offsets: list[int]) -> None:
    b = BTFBuilder()
    u32 = b.int_type("unsigned int", 4)
    members = [(f"m{i}", u32, off * 8) for i, off in enumerate(offsets)]
    b.struct_type("thing", 4096, members)
    btf = KernelBTF(b.blob())
    assert [btf.member("thing", f"m{i}").offset for i in range(len(offsets))] == offsets


# --- maps ---------------------------------------------------------------------------------


def test_percpu_arrays_are_summed_over_cpus_with_or_without_batch_reads() -> None:
    table = FakeArray(ctypes.c_uint64, 8, cpus=2)
    table.per_cpu[3] = [5, 7]
    table.per_cpu[7] = [0, 1]
    assert percpu_array_sums(table, 8) == [0, 0, 0, 12, 0, 0, 0, 1]
    # One batch syscall, not a syscall per slot: 4096 key reads per snapshot of the block
    # histograms cost 35 ms of every round.
    assert table.key_reads == 0
    table.batch_works = False
    assert percpu_array_sums(table, 8) == [0, 0, 0, 12, 0, 0, 0, 1]


def test_split_histograms_cuts_consecutive_slot_ranges() -> None:
    slots = [0] * (2 * HIST_SLOTS)
    slots[bucket_index(1000)] = 3
    slots[HIST_SLOTS + bucket_index(5000)] = 2
    hists = split_histograms(slots, ["a", "b"])
    assert hists["a"] == LogLinearHistogram.from_values([1000] * 3)
    assert hists["b"] == LogLinearHistogram.from_values([5000] * 2)
    with pytest.raises(ValueError, match="cannot hold 3 histograms"):
        split_histograms(slots, ["a", "b", "c"])


def test_write_config_keeps_other_fields_and_rejects_unknown_ones() -> None:
    table = FakeArray(BlockConfigStruct, 1)
    write_config(table, {"dev": 7, "features": 1})
    write_config(table, {"features": 3})
    assert (table.values[0].dev, table.values[0].features) == (7, 3)
    with pytest.raises(KeyError, match="no field 'devv'"):
        write_config(table, {"devv": 1})


def test_hash_items_falls_back_to_walking_keys() -> None:
    class NoBatch(dict[int, int]):
        def items_lookup_batch(self) -> Iterator[tuple[int, int]]:
            raise Exception("BPF_MAP_LOOKUP_BATCH has failed")

    assert hash_items(NoBatch({1: 2})) == [(1, 2)]


# --- block probes against their own C declarations ------------------------------------------


def test_request_fields_close_together_are_read_in_one_window() -> None:
    fields = request_window(Member(0, 8), Member(24, 4), Member(44, 4))
    assert fields["windowed"] == 1 and fields["off_rq_window"] == 0
    assert (fields["word_q"], fields["word_cmd_flags"], fields["word_data_len"]) == (0, 3, 5)
    # Little-endian: a u32 at a word's start is its low half, at +4 its high half.
    assert (fields["shift_cmd_flags"], fields["shift_data_len"]) == (0, 32)
    shifted = request_window(Member(72, 8), Member(96, 4), Member(116, 4))
    assert shifted["off_rq_window"] == 72 and shifted["word_data_len"] == 5


def test_request_fields_far_apart_are_read_one_by_one() -> None:
    assert request_window(Member(0, 8), Member(24, 4), Member(300, 4))["windowed"] == 0
    assert request_window(Member(0, 8), Member(26, 4), Member(44, 4))["windowed"] == 0


def test_bio_fields_are_read_in_one_window_that_stays_inside_the_bio() -> None:
    # bi_bdev, bi_opf and bi_iter.bi_size as in a 6.18 bio of 120 bytes.
    assert (BIO_LAYOUT.bio_windowed, BIO_LAYOUT.off_bio_window) == (1, 8)
    words = (BIO_LAYOUT.bio_word_bdev, BIO_LAYOUT.bio_word_opf, BIO_LAYOUT.bio_word_size)
    assert words == (0, 1, 4)
    # A 64-byte read from offset 8 of a 64-byte struct would run past its end.
    short = bio_window(Member(8, 8), Member(16, 4), Member(40, 4), struct_size=64)
    assert short["bio_windowed"] == 0


def test_block_config_struct_matches_the_c_declaration() -> None:
    program = FakeProgram(BLOCK_PROGRAM_C)
    c_fields = [field[0] for field in program[b"pc_blk_config"].Leaf._fields_]
    assert [field[0] for field in BlockConfigStruct._fields_] == c_fields


def test_block_probes_share_one_section_and_switch_their_own_feature_on(
    block_program: FakeProgram,
) -> None:
    text = build_program([BlockLatencyProbe(), BlockQueueLatencyProbe(), BlockSizeProbe()])
    assert text.count("RAW_TRACEPOINT_PROBE(block_rq_issue)") == 3  # pasted three times ...
    assert text.count("#ifndef PC_BLOCK_PROGRAM") == 3  # ... compiled once
    configure_block_program(block_program, 0x700001, FEATURE_LATENCY, LAYOUT)
    configure_block_program(block_program, 0x700001, FEATURE_SIZE, LAYOUT)
    config = block_program[b"pc_blk_config"].values[0]
    assert config.dev == 0x700001
    assert config.features == FEATURE_LATENCY | FEATURE_SIZE
    assert (config.off_rq_cmd_flags, config.op_secure_erase, config.op_mask) == (24, 5, 255)


def test_each_probe_names_the_handlers_its_numbers_come_from() -> None:
    raw = "raw_tracepoint"
    assert BlockLatencyProbe().handlers() == ((raw, "block_rq_issue"), (raw, "block_rq_complete"))
    assert BlockSizeProbe().handlers() == ((raw, "block_rq_issue"),)
    # block_rq_insert fires for every request even under "none": only the queue probe
    # needs it, so a session of block.latency alone runs two programs per request.
    assert (raw, "block_rq_insert") in BlockQueueLatencyProbe().handlers()
    assert (raw, "block_rq_insert") not in BlockLatencyProbe().handlers()
    # A blk-mq bio ends with its request: block_bio_complete fires only for bio-based
    # disks and bios that never became a request.
    assert BlockBioLatencyProbe().handlers() == (
        (raw, "block_bio_queue"),
        (raw, "block_rq_complete"),
        (raw, "block_bio_complete"),
    )
    assert SyscallLatencyProbe().handlers() == ((raw, "sys_enter"), (raw, "sys_exit"))
    assert TcpSrttProbe().handlers() == (("tracepoint", "tcp:tcp_probe"),)
    assert FuncLatencyProbe().handlers() == ()  # attached by configure, not on load


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_every_handler_a_probe_names_is_in_its_c_source(name: str) -> None:
    # The session attaches handlers by bcc's function names; a handler named here but
    # missing from the C would fail to attach, one in the C but never named would be
    # detached and its numbers silently lost.
    probe = CATALOG[name]()
    in_source = {
        ("raw_tracepoint", m) for m in re.findall(r"RAW_TRACEPOINT_PROBE\((\w+)\)", probe.C_SOURCE)
    } | {
        ("tracepoint", f"{c}:{e}")
        for c, e in re.findall(r"(?<!RAW_)TRACEPOINT_PROBE\((\w+),\s*(\w+)\)", probe.C_SOURCE)
    }
    assert set(probe.handlers()) <= in_source
    sharing = [p() for p in CATALOG.values() if p.C_SOURCE == probe.C_SOURCE]
    for shared in sharing:  # the block submitter filter adds a handler when it is on
        if hasattr(shared, "submitter"):
            shared.submitter = True
    assert {h for p in sharing for h in p.handlers()} == in_source


class HandlerProgram(FakeProgram):
    """What :func:`attach_only` uses of a loaded bcc program: its maps, its handler fds,
    attach and detach (checked against bcc's names for the handler functions)."""

    def __init__(self, probes: list[Probe]) -> None:
        super().__init__(build_program(probes))
        handlers = {h for p in probes for h in p.handlers()}
        self.raw_tracepoint_fds = {tp.encode(): 1 for kind, tp in handlers if kind != "tracepoint"}
        self.tracepoint_fds = {tp.encode(): 1 for kind, tp in handlers if kind == "tracepoint"}
        self.detached: list[bytes] = []

    def attach_raw_tracepoint(self, tp: bytes, fn_name: bytes) -> None:
        assert fn_name == b"raw_tracepoint__" + tp
        assert tp not in self.raw_tracepoint_fds
        self.raw_tracepoint_fds[tp] = 1

    def detach_raw_tracepoint(self, tp: bytes) -> None:
        del self.raw_tracepoint_fds[tp]
        self.detached.append(tp)

    def attach_tracepoint(self, tp: bytes, fn_name: bytes) -> None:
        assert fn_name == b"tracepoint__" + tp.replace(b":", b"__")
        assert tp not in self.tracepoint_fds
        self.tracepoint_fds[tp] = 1

    def detach_tracepoint(self, tp: bytes) -> None:
        del self.tracepoint_fds[tp]
        self.detached.append(tp)

    def handlers_attached(self) -> set[str]:
        return {tp.decode() for tp in (*self.raw_tracepoint_fds, *self.tracepoint_fds)}


def test_only_the_measured_probes_handlers_stay_attached() -> None:
    latency, size, syscalls, srtt = (
        BlockLatencyProbe(),
        BlockSizeProbe(),
        SyscallLatencyProbe(),
        TcpSrttProbe(),
    )
    every = [latency, size, syscalls, srtt]
    program = HandlerProgram(every)
    attach_only(program, every, every)  # as loaded: all of them, nothing changes
    assert program.detached == []
    attach_only(program, every, [latency])
    assert program.handlers_attached() == {"block_rq_issue", "block_rq_complete"}
    attach_only(program, every, [syscalls, srtt])
    assert program.handlers_attached() == {"sys_enter", "sys_exit", "tcp:tcp_probe"}
    attach_only(program, every, [size])  # a handler two probes share stays with either
    assert program.handlers_attached() == {"block_rq_issue"}
    attach_only(program, every, [])
    assert program.handlers_attached() == set()


def test_a_released_block_probe_switches_only_its_own_work_off(
    block_program: FakeProgram,
) -> None:
    configure_block_program(block_program, 0x700001, FEATURE_LATENCY, LAYOUT)
    configure_block_program(block_program, 0x700001, FEATURE_SIZE, LAYOUT)
    BlockSizeProbe().release(block_program)
    config = block_program[b"pc_blk_config"].values[0]
    assert config.features == FEATURE_LATENCY
    BlockSizeProbe().release(block_program)  # released twice: nothing more changes
    assert block_program[b"pc_blk_config"].values[0].features == FEATURE_LATENCY
    assert config.dev == 0x700001


def test_block_sampling_is_configured_and_recorded_in_provenance(
    block_program: FakeProgram,
) -> None:
    probe = BlockLatencyProbe()
    assert probe.provenance() == probe.events()
    with (
        patch("perfcheck.probes.block.block_layout", return_value=LAYOUT),
        patch("perfcheck.probes.block.stamp_layout", return_value=None),
    ):
        probe.configure(block_program, {"dev": 0x700001, "block_sample": 8})
        assert block_program[b"pc_blk_config"].values[0].sample_every == 8
        assert probe.provenance() == [*probe.events(), "sample:1/8"]
        probe.configure(block_program, {"dev": 0x700001})
    assert block_program[b"pc_blk_config"].values[0].sample_every == 1
    assert probe.provenance() == probe.events()
    for bad in (0, 1025):
        with pytest.raises(ValueError, match=re.escape("block_sample must be 1..1024")):
            configure_block_program(block_program, 0x700001, FEATURE_LATENCY, LAYOUT, bad)


def test_sample_option_is_checked_on_the_command_line() -> None:
    args = _probe_args("block.latency", "--device", "/dev/null", "--sample", "0")
    with pytest.raises(TargetError, match=re.escape("--sample: block_sample must be 1..1024")):
        cli_probe.probe_settings(args, cli_probe.make_probe(args.name, None))


def test_a_new_block_target_forgets_the_old_queue_requests_and_features(
    block_program: FakeProgram,
) -> None:
    configure_block_program(block_program, 0x700001, FEATURE_QUEUE, LAYOUT)
    config = block_program[b"pc_blk_config"].values[0]
    config.queue, config.other_queue, config.overflowed = 0xFFFF1000, 0xFFFF2000, 3
    generation = config.generation
    configure_block_program(block_program, 0x700002, FEATURE_LATENCY, LAYOUT)
    config = block_program[b"pc_blk_config"].values[0]
    assert (config.dev, config.features, config.queue, config.other_queue) == (
        0x700002,
        FEATURE_LATENCY,
        0,
        0,
    )
    # A new generation voids the old target's request slots without a pass over them.
    assert config.generation == generation + 1 and config.overflowed == 0
    # The same target again keeps what the program learned.
    config.queue = 0xFFFF1000
    configure_block_program(block_program, 0x700002, FEATURE_SIZE, LAYOUT)
    config = block_program[b"pc_blk_config"].values[0]
    assert (config.queue, config.generation) == (0xFFFF1000, generation + 1)


def test_block_latency_reads_series_per_op_and_counts_requests_from_the_histogram(
    block_program: FakeProgram,
) -> None:
    hist = block_program[b"pc_blk_latency_hist"]
    hist.per_cpu[bucket_index(20_000)] = [3, 4]  # 7 reads of about 20 us
    hist.per_cpu[HIST_SLOTS + bucket_index(80_000)] = [0, 2]  # 2 writes
    counts = block_program[b"pc_blk_counts"]
    counts.per_cpu[0] = [4096 * 3, 4096 * 4]
    counts.per_cpu[1] = [0, 8192]
    counts.per_cpu[4] = [1, 0]
    seen = BlockLatencyProbe().read(block_program)
    assert set(seen.histograms) == {f"block.latency.{op}" for op in BLOCK_OPS_NAMES}
    assert seen.histograms["block.latency.read"].total == 7
    assert seen.counters["block.requests.read"] == 7
    assert seen.counters["block.bytes.read"] == 7 * 4096
    assert seen.counters["block.requests.write"] == 2
    assert seen.counters["block.bytes.write"] == 8192
    assert seen.counters["block.untimed"] == 1
    # Only block.latency reports requests, so a session holding all three block probes
    # does not count them three times in the round cross-check.
    assert not BlockQueueLatencyProbe().read(block_program).counters
    assert not BlockSizeProbe().read(block_program).counters


BLOCK_OPS_NAMES = ("read", "write", "flush", "discard")


def test_block_size_is_a_bytes_series() -> None:
    assert BlockSizeProbe.unit == "bytes"
    assert BlockLatencyProbe.unit == "ns"
    assert BlockSizeProbe().series_names() == [f"block.size.{op}" for op in BLOCK_OPS_NAMES]


def test_block_provenance_names_the_raw_tracepoints_each_probe_uses() -> None:
    assert BlockLatencyProbe().provenance() == [
        "raw_tracepoint:block:block_rq_issue",
        "raw_tracepoint:block:block_rq_complete",
    ]
    assert "raw_tracepoint:block:block_rq_insert" in BlockQueueLatencyProbe().provenance()
    assert BlockSizeProbe().provenance() == ["raw_tracepoint:block:block_rq_issue"]
    assert BlockBioLatencyProbe().provenance()[0] == "raw_tracepoint:block:block_bio_queue"


def test_the_bio_probe_writes_its_offsets_and_switches_its_own_feature_on(
    block_program: FakeProgram, fixed_layouts: None
) -> None:
    configure_block_program(block_program, 0x700001, FEATURE_LATENCY, LAYOUT)
    config = block_program[b"pc_blk_config"].values[0]
    config.bdev, config.other_bdev = 0x1000, 0x2000
    BlockBioLatencyProbe().configure(block_program, {"dev": 0x700001})
    config = block_program[b"pc_blk_config"].values[0]
    assert config.features == FEATURE_LATENCY | FEATURE_BIO
    assert (config.off_rq_bio, config.off_bio_size, config.flag_preflush) == (56, 40, 1 << 18)
    assert config.bdev == 0x1000  # same disk: the learned block_device is kept ...
    BlockBioLatencyProbe().configure(block_program, {"dev": 0x700002})
    config = block_program[b"pc_blk_config"].values[0]
    assert (config.bdev, config.other_bdev, config.features) == (0, 0, FEATURE_BIO)  # ... not
    BlockBioLatencyProbe().release(block_program)
    assert block_program[b"pc_blk_config"].values[0].features == 0


STAMP_LAYOUT = stamp_window(Member(0, 8), Member(24, 4), Member(44, 4), Member(112, 8))


def test_request_stamps_are_read_with_the_filter_fields_in_one_window() -> None:
    assert STAMP_LAYOUT is not None
    assert (STAMP_LAYOUT.off_stamp_window, STAMP_LAYOUT.stamp_word_q) == (0, 0)
    assert (STAMP_LAYOUT.stamp_word_data_len, STAMP_LAYOUT.stamp_word_io_start) == (5, 14)
    # Past 128 bytes from the first field, or misaligned: no completion-only variant.
    assert stamp_window(Member(0, 8), Member(24, 4), Member(44, 4), Member(136, 8)) is None
    assert stamp_window(Member(0, 8), Member(24, 4), Member(44, 4), Member(100, 8)) is None


@pytest.mark.parametrize(
    ("seen", "variant"),
    [
        ((16, 0), "io_start_time_ns"),  # every request with data stamped
        ((20, 0), "io_start_time_ns"),  # other reads of the disk too
        ((0, 16), None),  # the queue collects no statistics: two programs
        ((15, 1), None),  # one request without: two programs
        ((0, 0), None),  # no request seen
    ],
)
def test_the_run_time_check_picks_a_stamp_every_request_carried(
    monkeypatch: pytest.MonkeyPatch,
    fixed_layouts: None,
    seen: tuple[int, int],
    variant: str | None,
) -> None:
    probe = BlockLatencyProbe()
    program = FakeProgram(build_program([probe]))
    program.raw_tracepoint_fds = {b"block_rq_complete": 3}
    monkeypatch.setattr("perfcheck.probes.block.stamp_layout", lambda: STAMP_LAYOUT)
    monkeypatch.setattr("perfcheck.probes.block.disk_node", lambda dev: Path("/dev/fake"))

    def reads(node: Path) -> int:
        # The check switched counting on, and only counting: nothing is timed meanwhile.
        config = program[b"pc_blk_config"].values[0]
        assert config.features & FEATURE_DETECT and not config.features & FEATURE_STAMPED
        table = program[b"pc_blk_stamps_seen"]
        for i, n in enumerate(seen):
            table[table.Key(i)] = table.Leaf(n)
        return 16

    monkeypatch.setattr("perfcheck.probes.block.read_directly", reads)
    probe.configure(program, {"dev": 0x700001})
    config = program[b"pc_blk_config"].values[0]
    assert probe.stamp == variant
    assert not config.features & FEATURE_DETECT
    raw = "raw_tracepoint"
    if variant is None:
        assert config.features == FEATURE_LATENCY
        assert probe.handlers() == ((raw, "block_rq_issue"), (raw, "block_rq_complete"))
        assert probe.provenance() == [
            f"{raw}:block:block_rq_issue",
            f"{raw}:block:block_rq_complete",
        ]
    else:
        assert config.features == FEATURE_STAMPED
        assert config.stamp_word_io_start == 14
        assert probe.handlers() == ((raw, "block_rq_complete"),)
        assert probe.provenance() == [f"{raw}:block:block_rq_complete", f"request.{variant}"]
    # Checked once per disk: a second configure reads nothing.
    monkeypatch.setattr("perfcheck.probes.block.read_directly", lambda node: pytest.fail("read"))
    probe.configure(program, {"dev": 0x700001, "block_sample": 4})
    assert probe.stamp == variant
    assert probe.provenance()[-1] == "sample:1/4"
    BlockLatencyProbe().release(program)
    assert not program[b"pc_blk_config"].values[0].features & (FEATURE_LATENCY | FEATURE_STAMPED)


def test_the_bio_probe_has_no_block_counters_for_the_request_cross_check(
    block_program: FakeProgram, fixed_layouts: None
) -> None:
    # rounds.cross_check compares block.* counters with fio's I/O count: a bio-only
    # session must not enter it with zero requests.
    program = FakeProgram(build_program([BlockBioLatencyProbe()]))
    BlockBioLatencyProbe().configure(program, {"dev": 0x700001})
    seen = BlockBioLatencyProbe().read(program)
    assert seen.counters == {}
    assert set(seen.histograms) == {f"block.bio_latency.{op}" for op in BLOCK_OPS_NAMES}


# --- every probe configures and reads against its own C -------------------------------------


@pytest.fixture
def fixed_layouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offsets without a kernel: the fake maps only check names and sizes."""
    monkeypatch.setattr("perfcheck.probes.block.block_layout", lambda: LAYOUT)
    monkeypatch.setattr("perfcheck.probes.block.bio_layout", lambda: BIO_LAYOUT)
    # No run-time check of the request timestamps without a kernel: two programs.
    monkeypatch.setattr("perfcheck.probes.block.stamp_layout", lambda: None)
    monkeypatch.setattr(
        "perfcheck.probes.sched.task_layout", lambda: TaskLayout(1264, 1268, 2376, 112, 256, 96)
    )
    monkeypatch.setattr("perfcheck.probes.net.softirq_vectors", lambda: {"NET_TX": 2, "NET_RX": 3})
    monkeypatch.setattr("perfcheck.probes.syscall.syscall_names", lambda: {35: "nanosleep"})
    monkeypatch.setattr(
        "perfcheck.probes.func.resolve_library", lambda name: Path("/lib/libc.so.6")
    )


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_each_probe_configures_and_reads_the_maps_its_c_declares(
    name: str, fixed_layouts: None
) -> None:
    probe = CATALOG[name]()
    program = FakeProgram(build_program([probe]))
    probe.configure(program, {"dev": 1 << 20, "pid": 42, "cgroup_id": 7, "port": 5201})
    seen = probe.read(program)
    assert all(hist.total == 0 for hist in seen.histograms.values())
    assert isinstance(probe, CatalogProbe)
    for series in seen.histograms:
        assert series.startswith(name.split(".")[0] + ".")


def test_filters_reach_the_config_maps(fixed_layouts: None) -> None:
    program = FakeProgram(build_program([SchedRunqLatencyProbe(), SyscallLatencyProbe()]))
    SchedRunqLatencyProbe().configure(program, {"pid": 42, "cgroup_id": 9})
    SyscallLatencyProbe().configure(program, {"cgroup_id": 9})
    sched = program[b"pc_sched_config"].values[0]
    assert (sched.tgid, sched.cgroup_id, sched.ready, sched.off_task_tgid) == (42, 9, 1, 1268)
    sys_config = program[b"pc_sys_config"].values[0]
    assert (sys_config.tgid, sys_config.cgroup_id, sys_config.ready) == (0, 9, 1)
    # exit/exit_group are unknown in this fake table: they map to a number never timed.
    assert sys_config.nr_exit == sys_config.nr_exit_group == 512
    tcp = FakeProgram(build_program([TcpSrttProbe()]))
    TcpSrttProbe().configure(tcp, {"port": 5201})
    assert tcp[b"pc_tcp_port"].values[0].value == 5201
    with pytest.raises(ValueError, match="must be a TCP port"):
        TcpSrttProbe().configure(tcp, {"port": 70000})


def test_softirq_entries_from_before_configure_are_forgotten(fixed_layouts: None) -> None:
    # Detached between a softirq's entry and exit, the probe must not time that softirq
    # from its stale entry when it is attached again for another scenario.
    probe = NetSoftirqProbe()
    program = FakeProgram(build_program([probe]))
    program[b"pc_softirq_running"].values[0].start_ns = 123
    probe.configure(program, {})
    assert program[b"pc_softirq_running"].values[0].start_ns == 0
    assert program[b"pc_softirq_config"].values[0].ready == 1


def test_settings_must_be_non_negative_ints() -> None:
    assert setting({}, "pid") == 0
    for bad in (-1, True, "3"):
        with pytest.raises(ValueError, match="non-negative int"):
            setting({"pid": bad}, "pid")  # type: ignore[dict-item]


def test_ufunc_attaches_once_per_pid_and_reattaches_for_another(fixed_layouts: None) -> None:
    probe = UserFuncLatencyProbe("c:nanosleep")
    program = FakeProgram(build_program([probe]))
    probe.configure(program, {"pid": 42})
    probe.configure(program, {"pid": 42})
    assert [call for call, _ in program.attached] == ["attach_uprobe", "attach_uretprobe"]
    assert program.attached[0][1]["pid"] == 42
    assert program.attached[0][1]["name"] == b"/lib/libc.so.6"
    probe.configure(program, {})
    assert [call for call, _ in program.attached][2:] == [
        "detach_uretprobe",
        "detach_uprobe",
        "attach_uprobe",
        "attach_uretprobe",
    ]
    assert program.attached[-1][1]["pid"] == -1
    assert probe.provenance() == [
        "uprobe:/lib/libc.so.6:nanosleep",
        "uretprobe:/lib/libc.so.6:nanosleep",
    ]


def test_released_function_probes_detach_and_attach_again_when_configured(
    fixed_layouts: None,
) -> None:
    ufunc, kfunc = UserFuncLatencyProbe("c:nanosleep"), FuncLatencyProbe("vfs_read")
    program = FakeProgram(build_program([ufunc, kfunc]))
    ufunc.configure(program, {"pid": 42})
    kfunc.configure(program, {"pid": 42})
    ufunc.release(program)
    kfunc.release(program)
    kfunc.release(program)  # twice: nothing more to detach
    calls = [call for call, _ in program.attached]
    assert calls[4:] == ["detach_uretprobe", "detach_uprobe", "detach_kretprobe", "detach_kprobe"]
    assert program.attached[5][1]["pid"] == 42
    assert program.attached[6][1] == {"event": b"vfs_read"}
    ufunc.configure(program, {"pid": 42})
    assert [call for call, _ in program.attached][8:] == ["attach_uprobe", "attach_uretprobe"]


def test_a_function_that_cannot_be_attached_is_a_probe_error(fixed_layouts: None) -> None:
    class Refusing(FakeProgram):
        def attach_kprobe(self, **kwargs: Any) -> None:
            raise Exception("Failed to attach BPF program pc_kfunc_entry to kprobe no_such")

    probe = FuncLatencyProbe("no_such")
    with pytest.raises(
        ProbeError, match=re.escape("func.latency: cannot attach kprobes to no_such")
    ):
        probe.configure(Refusing(build_program([probe])), {})


def test_user_function_targets_are_library_colon_function(tmp_path: Path) -> None:
    assert split_target("c:nanosleep") == ("c", "nanosleep")
    assert split_target("/usr/bin/x:main") == ("/usr/bin/x", "main")
    for bad in ("nanosleep", "c:", ":main"):
        with pytest.raises(ValueError, match="LIBRARY:FUNCTION"):
            split_target(bad)
    assert resolve_library(str(tmp_path / "lib.so")) == tmp_path / "lib.so"


# --- syscalls, softirqs ---------------------------------------------------------------------


def test_unistd_headers_give_syscall_names() -> None:
    text = "#define __NR_read 0\n#define __NR_nanosleep 35\n#define __NR_fcntl __NR3264_fcntl\n"
    names = parse_unistd(text)
    assert names == {0: "read", 35: "nanosleep"}
    assert syscall_name(35, names) == "nanosleep"
    assert syscall_name(999, names) == "syscall_999"


def test_sparse_syscall_histograms_are_grouped_per_syscall() -> None:
    class Key(ctypes.Structure):
        _fields_ = [("nr", ctypes.c_uint32), ("slot", ctypes.c_uint32)]

    items = [
        (Key(35, bucket_index(10_000_000)), ctypes.c_uint64(20)),
        (Key(0, bucket_index(2_000)), 5),  # batch reads give plain ints
        (Key(0, bucket_index(3_000)), ctypes.c_uint64(1)),
    ]
    hists = histograms_by_syscall(items, {0: "read", 35: "nanosleep"})
    assert hists["syscall.latency.nanosleep"] == LogLinearHistogram.from_values([10_000_000] * 20)
    assert hists["syscall.latency.read"].total == 6


def test_top_syscalls_orders_by_total_time() -> None:
    counters = {
        "syscall.calls.read": 100,
        "syscall.time_ns.read": 5_000,
        "syscall.calls.nanosleep": 2,
        "syscall.time_ns.nanosleep": 20_000_000,
        "syscall.calls.close": 1,
        "syscall.time_ns.close": 0,
    }
    assert top_syscalls(counters) == [("nanosleep", 2, 20_000_000), ("read", 100, 5_000)]
    assert top_syscalls(counters, limit=1) == [("nanosleep", 2, 20_000_000)]


def test_softirq_vectors_follow_the_row_order_of_proc_softirqs(tmp_path: Path) -> None:
    proc = tmp_path / "softirqs"
    proc.write_text(
        "                    CPU0       CPU1\n"
        "          HI:          0          0\n"
        "       TIMER:        100        200\n"
        "      NET_TX:          1          2\n"
        "      NET_RX:         10         20\n"
    )
    assert softirq_vectors(proc) == {"HI": 0, "TIMER": 1, "NET_TX": 2, "NET_RX": 3}


# --- availability ---------------------------------------------------------------------------


def test_unavailable_probes_are_skipped_with_their_reason() -> None:
    class Missing(CatalogProbe):
        name = "test.missing"
        summary = "never available"
        tracepoints = ()
        C_SOURCE = ""

        @classmethod
        def unavailable(cls) -> Unavailable | None:
            return Unavailable("kprobes are absent", "use another kernel")

        def configure(self, bpf: Any, settings: Any) -> None: ...

        def read(self, bpf: Any) -> Any: ...

    class Present(Missing):
        name = "test.present"

        @classmethod
        def unavailable(cls) -> Unavailable | None:
            return None

    present, missing = Present(), Missing()
    loadable, skipped = partition_available([missing, present])
    assert loadable == [present]
    assert str(skipped["test.missing"]) == "kprobes are absent; fix: use another kernel"


def test_missing_tracepoints_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "events" / "block" / "block_rq_issue").mkdir(parents=True)
    monkeypatch.setattr(features_module, "tracefs_root", lambda: tmp_path)
    assert features_module.missing_tracepoints([("block", "block_rq_issue")]) is None
    why = features_module.missing_tracepoints([("block", "block_rq_issue"), ("tcp", "tcp_probe")])
    assert why is not None and "tcp:tcp_probe" in why.reason and "block:" not in why.reason
    monkeypatch.setattr(features_module, "tracefs_root", lambda: None)
    why = features_module.missing_tracepoints([("tcp", "tcp_probe")])
    assert why is not None and why.reason == "tracefs is not mounted"


def test_raw_tracepoint_prototypes_are_checked(tmp_path: Path) -> None:
    btf_file = tmp_path / "vmlinux"
    b = BTFBuilder()
    u32 = b.int_type("unsigned int", 4)
    proto = b.func_proto([b.ptr(0), u32])
    b.typedef("btf_trace_softirq_entry", b.ptr(proto))
    btf_file.write_bytes(b.blob())
    check = features_module.missing_raw_tracepoints
    assert check([("softirq_entry", ("unsigned int",))], btf_file) is None
    why = check([("softirq_entry", ("struct request *",))], btf_file)
    assert why is not None and "takes (unsigned int), perfcheck reads (struct request *)" in (
        why.reason
    )
    why = check([("sched_switch", ())], btf_file)
    assert why is not None and "sched_switch is not declared" in why.reason
    why = check([("sched_switch", ())], tmp_path / "absent")
    assert why is not None and "CONFIG_DEBUG_INFO_BTF" in why.fix


def test_cgroup2_is_found_in_mountinfo(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "29 23 0:26 / /sys/fs/cgroup rw,relatime shared:9 - tmpfs tmpfs rw,mode=755\n"
        "30 29 0:27 / /sys/fs/cgroup/unified rw,relatime shared:10 - cgroup2 cgroup2 rw\n"
    )
    assert cgroup2_root(mountinfo) == Path("/sys/fs/cgroup/unified")
    mountinfo.write_text("29 23 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n")
    assert cgroup2_root(mountinfo) is None


# --- the CLI's side ---------------------------------------------------------------------------


def test_catalog_rows_report_machine_wide_gaps_for_every_probe() -> None:
    rows = cli_probe.catalog_rows(prerequisites=lambda: Unavailable("no root", "run as root"))
    assert {row.name for row in rows} == set(CATALOG)
    assert not any(row.available for row in rows)
    func_row = next(row for row in rows if row.name == "func.latency")
    assert func_row.optional and func_row.attach == "kprobe"


def test_catalog_covers_the_issue_table() -> None:
    assert set(CATALOG) == {
        "block.latency",
        "block.queue_latency",
        "block.size",
        "block.bio_latency",
        "sched.runqlat",
        "net.softirq",
        "tcp.srtt",
        "syscall.latency",
        "func.latency",
        "ufunc.latency",
    }


def test_a_histogram_renders_like_a_bcc_tool_with_percentiles() -> None:
    hist = LogLinearHistogram.from_values([20_000] * 90 + [200_000] * 10)
    text = cli_probe.render_histogram("block.latency.read", hist, "usecs")
    assert "usecs" in text and "16 -> 31" in text and "128 -> 255" in text
    assert "count 100" in text
    assert re.search(r"p50 20\.\d us {2}p90 20\.\d us {2}p99 20\d\.\d us", text)


def test_sizes_render_in_bytes() -> None:
    hist = LogLinearHistogram.from_values([4096] * 5)
    text = cli_probe.render_histogram("block.size.read", hist, "bytes")
    assert "bytes" in text and "nsecs" not in text and "4096 -> 8191" in text
    assert "p50 41" in text and " B" in text


def test_an_empty_interval_says_so() -> None:
    seen = NetSoftirqProbe().read(FakeProgram(build_program([NetSoftirqProbe()])))
    text = cli_probe.render_interval(NetSoftirqProbe(), seen, 3, 1.0, "usecs")
    assert "net.softirq  interval 3 (1.00 s)" in text and "(no events)" in text


def test_interval_json_holds_histograms_in_the_results_schema() -> None:
    program = FakeProgram(build_program([BlockLatencyProbe()]))
    program[b"pc_blk_latency_hist"].per_cpu[bucket_index(9_000)] = [10, 0]
    probe = BlockLatencyProbe()
    document = cli_probe.interval_document(probe, probe.read(program), 0, 1.0)
    parsed = json.loads(json.dumps(document))
    assert list(parsed["histograms"]) == ["block.latency.read"]
    hist = LogLinearHistogram.from_dict(parsed["histograms"]["block.latency.read"])
    assert hist == LogLinearHistogram.from_values([9_000] * 10)
    assert parsed["provenance"] == probe.provenance()
    assert parsed["counters"]["block.requests.read"] == 10


def _probe_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli_probe.add_probe_arguments(parser)
    return parser.parse_args(argv)


def test_ebpf_prints_the_generated_program_without_loading_it() -> None:
    out = io.StringIO()
    assert cli_probe.cmd_probe(_probe_args("block.queue_latency", "--ebpf"), out) == 0
    text = out.getvalue()
    assert "RAW_TRACEPOINT_PROBE(block_rq_insert)" in text and "perfcheck_bucket" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("block.latency",), "times one disk: pass --device"),
        (("block.latency", "--pid", "1"), "--pid does not apply to block.latency"),
        (("tcp.srtt", "--cgroup", "/x"), "--cgroup does not apply to tcp.srtt"),
        (("net.softirq", "--port", "80"), "filters on: nothing"),
        (
            ("block.queue_latency", "--device", "/dev/null", "--sample", "4"),
            "--sample does not apply to block.queue_latency",
        ),
        (("syscall.latency", "--sample", "4"), "--sample does not apply to syscall.latency"),
    ],
)
def test_filters_that_do_not_apply_are_refused(argv: tuple[str, ...], message: str) -> None:
    args = _probe_args(*argv)
    with pytest.raises(TargetError, match=re.escape(message)):
        cli_probe.probe_settings(args, cli_probe.make_probe(args.name, None))


def test_function_applies_only_to_function_probes() -> None:
    with pytest.raises(TargetError, match="--function applies to"):
        cli_probe.make_probe("block.latency", "vfs_read")
    with pytest.raises(TargetError, match="LIBRARY:FUNCTION"):
        cli_probe.make_probe("ufunc.latency", "nanosleep")
    probe = cli_probe.make_probe("ufunc.latency", "c:getpid")
    assert isinstance(probe, UserFuncLatencyProbe) and probe.symbol == "getpid"


def test_devices_must_be_block_devices(tmp_path: Path) -> None:
    regular = tmp_path / "file"
    regular.write_text("x")
    with pytest.raises(TargetError, match="not a block device"):
        cli_probe.device_dev_t(str(regular))
    with pytest.raises(TargetError, match="No such file"):
        cli_probe.device_dev_t(str(tmp_path / "absent"))


def test_probe_base_class_contract_is_kept() -> None:
    for cls in CATALOG.values():
        assert issubclass(cls, Probe) and issubclass(cls, CatalogProbe)
        assert cls.summary and cls.C_SOURCE.strip()
