"""tests/mutation_credit.py in a pytest run of its own: what a session fixture calls is credited to every test that
uses it, not only to the first, and a test that does not use it is credited with nothing of it."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

RUN = """
import pytest
from mutmut.state import state

@pytest.fixture(scope="session")
def plan():
    state()._stats.add("infra.compose")  # what mutmut's trampoline does when a mutated function runs

def test_first(plan):
    state()._stats.add("infra.check_first")

def test_second(plan):
    pass

def test_alone():
    pass
"""

FILING = """
import pytest
from mutmut.state import state

FILED = {}

@pytest.hookimpl
def pytest_runtest_teardown(item):  # what mutmut's stats collector does: file the hits under the test, then clear
    FILED[item.name] = set(state()._stats)
    state()._stats.clear()

def pytest_sessionfinish(session):
    import json, pathlib
    pathlib.Path("filed.json").write_text(json.dumps({k: sorted(v) for k, v in FILED.items()}))
"""


@pytest.mark.parametrize("credit", [True, False])
def test_a_session_fixtures_hits_go_to_every_test_that_uses_it(pytester: pytest.Pytester, credit: bool) -> None:
    import json

    from mutation_credit import SharedFixtureCredit

    pytester.makeconftest(FILING)
    pytester.makepyfile(test_run=RUN)
    plugins = [SharedFixtureCredit()] if credit else []
    pytester.runpytest_inprocess("-p", "no:cacheprovider", plugins=plugins).assert_outcomes(passed=3)
    filed = json.loads((pytester.path / "filed.json").read_text())
    second = ["infra.compose"] if credit else []  # without the plugin, the fixture's hits go to the first test only
    assert filed == {"test_first": ["infra.check_first", "infra.compose"], "test_second": second, "test_alone": []}
