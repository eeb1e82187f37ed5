"""Fixtures: every process a test starts is stopped and reaped at teardown,
and every edge must still be running then and exit 0 on SIGTERM (drain)."""
import pytest

import meridian_test as mt


@pytest.fixture
def stack(tmp_path):
    """A Stack for this test only: torn down (and edges checked) after it."""
    s = mt.Stack(tmp_path)
    try:
        yield s
    finally:
        problems = s.close()
    assert not problems, "\n".join(problems)
