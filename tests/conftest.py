"""Options for the project's own tests, and what every test is held to."""

import pytest
from report_schema import ReportSchemaError, reports_written_under, validate_report


def pytest_addoption(parser):
    parser.addoption(
        "--differential-graphs",
        type=int,
        default=200,
        help="how many generated cases tests/test_differential.py checks (200)",
    )
    parser.addoption("--differential-seed", type=int, default=0, help="root seed of those cases (0)")


def pytest_generate_tests(metafunc):
    if "differential_index" in metafunc.fixturenames:
        count = metafunc.config.getoption("--differential-graphs")
        seed = metafunc.config.getoption("--differential-seed")
        metafunc.parametrize(
            ("differential_seed", "differential_index"),
            [(seed, i) for i in range(count)],
            ids=[f"g{i:05d}-s{seed}" for i in range(count)],
        )


@pytest.fixture(autouse=True)
def failure_database_of_its_own(tmp_path_factory, monkeypatch):
    """Each test's audits keep their failing cases in a failure database of the test's own (the
    CLIs it starts inherit the variable), never in the checkout's `.autodiff-audit/`."""
    monkeypatch.setenv("AUTODIFF_AUDIT_FAILURES", str(tmp_path_factory.mktemp("failure-database")))


@pytest.fixture(scope="session", autouse=True)
def every_report_the_suite_writes_matches_the_schema(tmp_path_factory):
    """At the end of the session, every report.json the harness wrote in the suite's temporary
    folders is validated against docs/report.schema.json: the schema is what users' CI scripts read."""
    yield
    reports = reports_written_under(tmp_path_factory.getbasetemp())
    problems = []
    for report in reports:
        try:
            validate_report(report)
        except ReportSchemaError as error:
            problems.append(str(error))
    assert not problems, f"{len(problems)} of {len(reports)} reports break the schema:\n" + "\n".join(problems[:5])
