"""During mutmut's stats run, credit what a shared fixture calls to every test that uses the fixture.

mutmut maps each mutated function to the tests that call it, by noting the test that is running when the function
is hit; later it runs only those tests against the function's mutants. A session or module fixture (a stack's plan)
runs once, inside the first test that asks for it, so only that test would be credited with the whole composition:
a composition mutant would then run that one test and survive whatever the others check. This plugin keeps a
shared fixture's hits apart and adds them to each test that uses the fixture, before mutmut files the test's hits
(`tryfirst` on teardown). It is registered by conftest.py only while mutmut collects its stats.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Generator
from typing import Any

import pytest
from mutmut.state import state


class SharedFixtureCredit:
    def __init__(self) -> None:
        self.hits: defaultdict[Any, set[str]] = defaultdict(set)
        """A non-function FixtureDef -> the mutated functions its setups called (every module's, for a module one)."""

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef: Any, request: Any) -> Generator[None, None, None]:
        if fixturedef.scope == "function":
            yield
            return
        stats = state()._stats
        before = set(stats)
        stats.clear()
        try:
            yield
        finally:
            self.hits[fixturedef] |= stats
            stats |= before

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> None:
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            return
        for definitions in info.name2fixturedefs.values():
            for definition in definitions:
                state()._stats.update(self.hits.get(definition, ()))
