"""Which real slow-down a kernel offers, and the kernel facts doctor reports: sysfs and
/proc/config.gz faked both ways (with and without bfq), so the choice is tested on any
kernel, whatever the machine running the tests has."""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import pytest

from perfcheck import doctor
from perfcheck.kernel_config import (
    cgroup_layout,
    config_facts,
    io_schedulers,
    parse_kernel_config,
    read_kernel_config,
    scratch_io_schedulers,
)
from perfcheck.plugin import queue_setting_arg
from perfcheck.scenario import load_scenario
from perfcheck.slowdowns import (
    SLOWDOWNS,
    choose_slowdown,
    holding_scheduler,
    offered_slowdowns,
)

WITH_BFQ = "[none] mq-deadline kyber bfq \n"
WITHOUT_BFQ = "[none] mq-deadline kyber \n"


def fake_sysfs(tmp_path: Path, scheduler_text: str | None, disks: tuple[str, ...]) -> Path:
    sysfs = tmp_path / "sys-block"
    for disk in disks:
        queue = sysfs / disk / "queue"
        queue.mkdir(parents=True)
        if scheduler_text is not None:
            (queue / "scheduler").write_text(scheduler_text)
    sysfs.mkdir(exist_ok=True)
    return sysfs


def test_a_kernel_with_bfq_gets_the_bfq_slowdown(tmp_path: Path) -> None:
    sysfs = fake_sysfs(tmp_path, WITH_BFQ, ("vda", "loop3", "loop10"))
    schedulers = scratch_io_schedulers(sysfs)
    assert schedulers == ["none", "mq-deadline", "kyber", "bfq"]
    chosen = choose_slowdown(schedulers)
    assert chosen is not None and chosen.name == "bfq-qd1"
    assert chosen.pytest_args() == ["--perfcheck-scheduler=bfq"]
    assert chosen.environment_change() == ("target.scheduler", "bfq")
    assert holding_scheduler(schedulers) == "bfq"


def test_a_kernel_without_bfq_gets_mq_deadline_with_four_requests(tmp_path: Path) -> None:
    sysfs = fake_sysfs(tmp_path, WITHOUT_BFQ, ("loop0",))
    schedulers = scratch_io_schedulers(sysfs)
    chosen = choose_slowdown(schedulers)
    assert chosen is not None and chosen.name == "mq-deadline-nr4-qd16"
    assert chosen.pytest_args() == [
        "--perfcheck-scheduler=mq-deadline",
        "--perfcheck-queue=nr_requests=4",
    ]
    assert chosen.job["iodepth"] == "16" and chosen.job["ioengine"] == "libaio"
    assert "bfq" not in {s.scheduler for s in offered_slowdowns(schedulers)}
    assert holding_scheduler(schedulers) == "mq-deadline"


def test_a_kernel_with_no_scheduler_gets_the_tag_shortage(tmp_path: Path) -> None:
    chosen = choose_slowdown(scratch_io_schedulers(fake_sysfs(tmp_path, "[none] \n", ("loop0",))))
    assert chosen is not None and chosen.name == "tags-nr4-qd16"
    assert chosen.environment_change() == ("target.queue.nr_requests", "4")
    # Side A of an A/B run must undo it although the scheduler stays none.
    assert "nr_tags > /sys/block/loop9/queue/nr_requests" in chosen.undo_command("loop9")
    assert holding_scheduler(["none"]) is None


def test_no_loop_device_or_a_bio_based_one_offers_nothing(tmp_path: Path) -> None:
    assert scratch_io_schedulers(fake_sysfs(tmp_path / "a", WITH_BFQ, ("vda",))) == []
    assert io_schedulers("zram0", fake_sysfs(tmp_path / "b", None, ("zram0",))) == []
    assert choose_slowdown([]) is None
    assert offered_slowdowns([]) == []


def test_every_slowdown_writes_a_scenario_the_plugin_loads(tmp_path: Path) -> None:
    for slowdown in SLOWDOWNS:
        path = slowdown.write_scenario(tmp_path / "scenarios")
        scenario = load_scenario(path)
        assert scenario.name == slowdown.name
        assert list(scenario.probes) == ["block.latency"]
        assert f"iodepth={slowdown.job['iodepth']}" in path.with_suffix(".fio").read_text()


def test_shell_commands_set_the_scheduler_before_the_queue() -> None:
    [mq] = [s for s in SLOWDOWNS if s.name == "mq-deadline-nr4-qd16"]
    assert mq.shell_command("loop1") == (
        "echo mq-deadline > /sys/block/loop1/queue/scheduler"
        " && echo 4 > /sys/block/loop1/queue/nr_requests"
    )


def test_queue_option_values_are_checked_where_declared() -> None:
    assert queue_setting_arg("nr_requests=4") == ("nr_requests", "4")
    for bad in ("nr_requests", "=4", "nr_requests=", "../scheduler=bfq", "a/b=1"):
        with pytest.raises(argparse.ArgumentTypeError, match="give NAME=VALUE"):
            queue_setting_arg(bad)


# -- kernel config facts ----------------------------------------------------------------------

CONFIG_WITHOUT_BFQ = """\
# Automatically generated file; DO NOT EDIT.
CONFIG_BLK_DEV_THROTTLING=y
# CONFIG_IOSCHED_BFQ is not set
# CONFIG_KPROBES is not set
CONFIG_DEBUG_INFO_BTF=y
CONFIG_LOCALVERSION="-fc"
"""


def facts_by_name(config: dict[str, str] | None, **kw: object) -> dict[str, tuple[bool, str, str]]:
    args: dict[str, object] = {
        "schedulers": ["none", "mq-deadline", "kyber"],
        "nomodule": False,
        "cgroups": "hybrid",
        "btf_present": True,
    }
    args.update(kw)
    return {f.name: (f.ok, f.detail, f.fix) for f in config_facts(config, **args)}  # type: ignore[arg-type]


def test_config_is_parsed_with_unset_options_as_n(tmp_path: Path) -> None:
    path = tmp_path / "config.gz"
    path.write_bytes(gzip.compress(CONFIG_WITHOUT_BFQ.encode()))
    config = read_kernel_config(path)
    assert config == parse_kernel_config(CONFIG_WITHOUT_BFQ)
    assert config is not None
    assert config["CONFIG_IOSCHED_BFQ"] == "n"
    assert config["CONFIG_LOCALVERSION"] == "-fc"
    assert read_kernel_config(tmp_path / "absent.gz") is None
    (tmp_path / "bad.gz").write_bytes(b"not gzip")
    assert read_kernel_config(tmp_path / "bad.gz") is None


def test_bfq_fact_says_why_and_what_to_do_each_way() -> None:
    config = parse_kernel_config(CONFIG_WITHOUT_BFQ)
    ok, detail, fix = facts_by_name(config)["bfq"]
    assert not ok and "CONFIG_IOSCHED_BFQ not set" in detail and "real slow-down" in fix
    module = {**config, "CONFIG_IOSCHED_BFQ": "m"}
    assert facts_by_name(module)["bfq"] == (False, "built as a module, not loaded", "modprobe bfq")
    ok, detail, _ = facts_by_name(module, nomodule=True)["bfq"]
    assert not ok and "nomodule" in detail
    with_bfq = facts_by_name(config, schedulers=["none", "bfq"])
    assert with_bfq["bfq"][0] is True


def test_config_facts_cover_kprobes_btf_throttle_and_cgroups() -> None:
    facts = facts_by_name(parse_kernel_config(CONFIG_WITHOUT_BFQ))
    assert facts["CONFIG_KPROBES"][:2] == (False, "not set")
    assert facts["CONFIG_DEBUG_INFO_BTF"][0] is True
    assert facts["CONFIG_BLK_DEV_THROTTLING"][:2] == (True, "blk-throttle built in")
    assert facts["cgroup layout"][0] is True
    unknown = facts_by_name(None, cgroups="legacy", btf_present=False)
    assert "/proc/config.gz absent" in unknown["CONFIG_KPROBES"][1]
    assert unknown["cgroup layout"][0] is False and "cgroup2" in unknown["cgroup layout"][2]
    assert unknown["CONFIG_DEBUG_INFO_BTF"][0] is False


@pytest.mark.parametrize(
    ("fstypes", "layout"),
    [
        (["cgroup2"], "unified"),
        (["cgroup", "cgroup2"], "hybrid"),
        (["cgroup"], "legacy"),
        ([], "none"),
    ],
)
def test_cgroup_layout_from_mountinfo(tmp_path: Path, fstypes: list[str], layout: str) -> None:
    lines = [
        f"{30 + i} 1 0:{i} / /sys/fs/cgroup/x{i} rw - {t} {t} rw" for i, t in enumerate(fstypes)
    ]
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text("\n".join(["22 1 0:5 / /proc rw - proc proc rw", *lines]) + "\n")
    assert cgroup_layout(mountinfo) == layout


def test_doctor_lists_the_kernel_build_and_a_slowdown(tmp_path: Path) -> None:
    config = tmp_path / "config.gz"
    config.write_bytes(gzip.compress(CONFIG_WITHOUT_BFQ.encode()))
    checks = doctor.check_kernel_build(
        config_path=config,
        sysfs_block=fake_sysfs(tmp_path, WITHOUT_BFQ, ("loop0",)),
        cmdline=tmp_path / "no-cmdline",
        mountinfo=tmp_path / "no-mountinfo",
        btf=tmp_path / "no-btf",
    )
    by_name = {c.name: c for c in checks}
    assert by_name["I/O schedulers"].detail == "loop devices offer none, mq-deadline, kyber"
    assert by_name["real slow-down"].detail.startswith(
        "mq-deadline-nr4-qd16: --perfcheck-scheduler=mq-deadline --perfcheck-queue=nr_requests=4"
    )
    assert not any(c.required for c in checks)


def test_qd16_scenarios_gate_on_fio_and_only_gross_block_latency_changes(tmp_path: Path) -> None:
    [mq] = [s for s in SLOWDOWNS if s.name == "mq-deadline-nr4-qd16"]
    scenario = load_scenario(mq.write_scenario(tmp_path / "scenarios"))
    assert scenario.threshold_for("fio.clat.read.p50") == 0.25
    assert scenario.threshold_for("fio.iops.read") == 0.2
    assert scenario.threshold_for("block.latency.read.p50") == 3.0
    assert scenario.threshold_for("block.latency.read.p99") == 2.0
