"""tests/require.py: a missing dependency skips locally and fails under CI=true."""

import pytest

from tests.require import in_ci, require


@pytest.mark.parametrize("value", ["true", "1", "TRUE", "yes"])
def test_ci_is_recognised(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    assert in_ci()


@pytest.mark.parametrize("value", ["", "false", "0"])
def test_not_ci(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    assert not in_ci()


def test_a_present_dependency_goes_on(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert require(True, "never shown") is None


def test_missing_locally_skips_with_the_reason(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        require(False, "needs Node.js")
    assert skipped.value.msg == "needs Node.js"


def test_missing_in_ci_fails_with_the_reason(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception) as failed:
        require("", "needs Redis")
    assert failed.value.msg == "CI=true and a test dependency is missing: needs Redis"
