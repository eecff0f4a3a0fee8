"""The virtual radio keeps bumble's controller quiet about crossed link terminations only."""

from __future__ import annotations

import logging

import pytest

import harness.sim.radio  # noqa: F401  (installs the filter on bumble's controller logger)


def _record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("bumble.controller", logging.ERROR, __file__, 1, message, args, None)


def test_a_control_pdu_for_a_link_already_closed_is_not_an_error_on_the_console(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The tower ending a session while the phone disconnects: bumble's ERROR never reaches a run's stderr."""
    logger = logging.getLogger("bumble.controller")
    with caplog.at_level(logging.ERROR, logger="bumble.controller"):
        logger.handle(_record("Cannot find a connection for %s", "D0:00:00:00:00:01"))
        logger.handle(_record("unexpected PDU %s", "something else"))
    assert [record.getMessage() for record in caplog.records] == ["unexpected PDU something else"]
