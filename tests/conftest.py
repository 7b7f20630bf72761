"""Session-wide reporting: which server backends this run covers, said at the start and the end."""

from __future__ import annotations


def pytest_report_header(config):
    from tests.server.prefect_server import backends_report

    return backends_report()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    from tests.server.prefect_server import backends_report

    line = backends_report()
    terminalreporter.write_line(line, yellow="only" in line or "fail" in line)
