from __future__ import annotations

import pytest

from tests.deploy.engine import BUILT


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not BUILT:
        return
    terminalreporter.section("service images")
    for built in sorted(BUILT.values(), key=lambda b: b.service):
        terminalreporter.write_line(
            f"{built.service:<16} {built.size / 1e6:7.1f} MB ({(built.size - built.base) / 1e6:6.1f} MB over the base"
            f" image)   built in {built.seconds:5.1f} s   {built.image.short_id}"
        )
