"""Fixtures: every process a test starts is stopped and reaped at teardown,
and every edge must still be running then and exit 0 on SIGTERM (drain)."""
import os

import pytest

import meridian_test as mt


@pytest.fixture(scope="session", autouse=True)
def _binary():
    if not os.access(mt.BIN, os.X_OK):
        pytest.fail("MERIDIAN_BIN %s is not an executable; build first "
                    "(make build) or point MERIDIAN_BIN at one" % mt.BIN,
                    pytrace=False)


@pytest.fixture
def stack(tmp_path):
    """A Stack for this test only: torn down (and edges checked) after it."""
    s = mt.Stack(tmp_path)
    try:
        yield s
    finally:
        problems = s.close()
    assert not problems, "\n".join(problems)
