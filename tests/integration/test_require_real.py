"""PERFCHECK_REQUIRE_REAL=1 turns skipped real-capability tests into failures (conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFTEST_PATH = Path(__file__).resolve().parents[1] / "conftest.py"

MARKERS_INI = """
[pytest]
markers =
    realbpf: needs real bcc
    realfio: needs real fio
"""

SAMPLE_TESTS = """
import pytest

@pytest.mark.realbpf
def test_bpf_skips_in_call():
    pytest.skip("bcc is not importable")

@pytest.mark.realfio
@pytest.mark.skipif(True, reason="fio not on PATH")
def test_fio_skips_in_setup():
    pass

@pytest.mark.realbpf
def test_bpf_runs():
    pass

def test_unmarked_skips():
    pytest.skip("not a real-capability test")

@pytest.mark.realbpf
@pytest.mark.xfail(reason="known kernel bug")
def test_bpf_expected_failure():
    assert False
"""


def _conftest_plugin(config: pytest.Config) -> object:
    """The already-imported tests/conftest.py module, to register in an inner pytest run."""
    for plugin in config.pluginmanager.get_plugins():
        if getattr(plugin, "__file__", None) == str(CONFTEST_PATH):
            return plugin
    raise LookupError(f"{CONFTEST_PATH} is not registered as a plugin")


def _run_sample(pytester: pytest.Pytester, config: pytest.Config) -> pytest.RunResult:
    pytester.makeini(MARKERS_INI)
    pytester.makepyfile(test_sample=SAMPLE_TESTS)
    # The perfcheck plugin is not what is tested here; keep the inner run independent of it.
    return pytester.runpytest_inprocess(
        "-p", "no:perfcheck", "-rA", plugins=[_conftest_plugin(config)]
    )


@pytest.fixture
def require_real(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERFCHECK_REQUIRE_REAL", "1")


def test_marked_skips_fail_with_their_reason_when_real_is_required(
    require_real: None, pytester: pytest.Pytester, request: pytest.FixtureRequest
) -> None:
    result = _run_sample(pytester, request.config)
    # A skip during setup (skipif, or a fixture that skips) becomes a setup error.
    result.assert_outcomes(passed=1, failed=1, errors=1, skipped=1, xfailed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_bpf_skips_in_call _*",
            "realbpf test skipped with PERFCHECK_REQUIRE_REAL=1*bcc is not importable",
        ]
    )
    result.stdout.fnmatch_lines(["FAILED test_sample.py::test_bpf_skips_in_call*"])
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_fio_skips_in_setup*",
            "realfio test skipped with PERFCHECK_REQUIRE_REAL=1*fio not on PATH",
        ]
    )
    result.stdout.fnmatch_lines(["*SKIPPED*not a real-capability test*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


@pytest.mark.parametrize("value", [None, "0", ""])
def test_marked_skips_stay_skipped_unless_real_is_required(
    value: str | None,
    monkeypatch: pytest.MonkeyPatch,
    pytester: pytest.Pytester,
    request: pytest.FixtureRequest,
) -> None:
    if value is None:
        monkeypatch.delenv("PERFCHECK_REQUIRE_REAL", raising=False)
    else:
        monkeypatch.setenv("PERFCHECK_REQUIRE_REAL", value)
    result = _run_sample(pytester, request.config)
    result.assert_outcomes(passed=1, skipped=3, xfailed=1)
    assert result.ret == pytest.ExitCode.OK
