"""Options for the project's own tests."""

import pytest


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
