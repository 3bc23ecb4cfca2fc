"""Why applying events failed decides their fate: an event that fails on its data is a dead
letter (the partition moves on), a dependency away or a bug brings the batch again later."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from asyncpg.exceptions import _base as asyncpg_base
from pydantic import ValidationError

from shared.event_consumer import UnusableEvent, failure_kind, unusable_reason
from shared.events import Envelope

SECRET = "3171012345678901"  # stands for any input value (a NIK) that must not be quoted
BAD_DATE = f'invalid input syntax for type date: "{SECRET}"'


def driver_error(text: str) -> Exception:
    """asyncpg's client-side DataError (an InterfaceError and a ValueError)."""
    return asyncpg_base.DataError(text)


def encoding_error(value: object) -> Exception:
    """What asyncpg raises for an argument it cannot encode (SQLSTATE 22000, never sent)."""
    return asyncpg.exceptions.DataError(
        f"invalid input for query argument $3: {value!r} (value out of int32 range)")


def a_validation_error() -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        Envelope.model_validate({"id": SECRET, "type": "participant.registered", "source": "x",
                                 "occurred_at": datetime.now(UTC), "subject": "s",
                                 "sequence": 0, "data": {}})
    return caught.value


@pytest.mark.parametrize("exc", [
    asyncpg.exceptions.InvalidDatetimeFormatError(BAD_DATE),
    asyncpg.exceptions.NumericValueOutOfRangeError(f"value {SECRET} is out of range"),
    asyncpg.exceptions.CharacterNotInRepertoireError("invalid byte sequence for encoding"),
    asyncpg.exceptions.DataError("22000"),
    asyncpg.exceptions.ForeignKeyViolationError(f"Key (id)=({SECRET}) is not present"),
    asyncpg.exceptions.UniqueViolationError("duplicate key"),
    asyncpg.exceptions.NotNullViolationError("null value"),
], ids=type)
def test_a_value_the_database_refuses_is_about_the_data(exc):
    assert failure_kind(exc) == "data"


def test_a_value_the_driver_cannot_encode_is_about_the_data():
    exc = driver_error(f"invalid input for query argument $3: [{SECRET}0000000000000] "
                       "(value out of int64 range)")
    assert failure_kind(exc) == "data"
    assert failure_kind(encoding_error(2**40)) == "data"
    # Also when the input is crafted to read like an outage.
    assert failure_kind(driver_error("invalid input for query argument $1: "
                                     "['the connection is closed']")) == "data"


@pytest.mark.parametrize("exc", [
    UnusableEvent("participant.registered has a registered_on that is not an ISO date"),
    ValueError(f"Invalid isoformat string: '{SECRET}'"),
    UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
    OverflowError("date value out of range"),
], ids=type)
def test_an_unusable_event_and_values_python_refuses_are_about_the_data(exc):
    assert failure_kind(exc) == "data"


def test_a_payload_pydantic_refuses_is_about_the_data():
    assert failure_kind(a_validation_error()) == "data"


@pytest.mark.parametrize("exc", [
    ConnectionRefusedError(111, "Connection refused"),
    ConnectionResetError(104, "Connection reset by peer"),
    TimeoutError(),
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle"),
    asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
    asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.exceptions.SerializationError("could not serialize access"),
    asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
    asyncpg.InterfaceError("cannot call Connection.fetch(): connection is closed"),
    KafkaConnectionError("Unable to bootstrap"),
    KafkaTimeoutError(),
], ids=type)
def test_a_database_or_broker_away_is_a_dependency_and_never_a_dead_letter(exc):
    assert failure_kind(exc) == "dependency"


@pytest.mark.parametrize("exc", [
    RuntimeError("boom"), KeyError("x"), TypeError("x"), AttributeError("x"),
    asyncpg.exceptions.UndefinedTableError('relation "members" does not exist'),
    asyncpg.exceptions.SyntaxOrAccessError("syntax error"),
    asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
], ids=type)
def test_anything_else_is_a_bug_and_the_batch_comes_again(exc):
    assert failure_kind(exc) == "bug"


@pytest.mark.parametrize("exc", [
    asyncpg.exceptions.InvalidDatetimeFormatError(BAD_DATE),
    asyncpg.exceptions.ForeignKeyViolationError(f"Key (id)=({SECRET}) is not present"),
    driver_error(f"invalid input for query argument $3: [{SECRET}] (value out of int64 range)"),
    encoding_error(SECRET),
    ValueError(f"Invalid isoformat string: '{SECRET}'"),
    a_validation_error(),
], ids=type)
def test_a_dead_letters_reason_names_the_error_and_never_quotes_the_input(exc):
    reason = unusable_reason(exc)
    assert SECRET not in reason
    assert type(exc).__name__ in reason


def test_a_database_reason_gives_the_sqlstate_and_a_driver_reason_the_argument():
    assert "SQLSTATE 22007" in unusable_reason(
        asyncpg.exceptions.InvalidDatetimeFormatError("bad"))
    assert "query argument $3" in unusable_reason(
        driver_error(f"invalid input for query argument $3: [{SECRET}] (out of range)"))
    assert unusable_reason(encoding_error(SECRET)) == (
        "database refused the event: DataError (SQLSTATE 22000): "
        "invalid input for query argument $3")
    validation = unusable_reason(a_validation_error())
    assert "id: uuid_parsing" in validation and "sequence: greater_than_equal" in validation


def test_an_unusable_events_reason_is_its_own_words():
    assert unusable_reason(UnusableEvent("has a sequence beyond 2^31-1")) == (
        "unusable event: has a sequence beyond 2^31-1")


def test_uuid_is_not_a_secret_placeholder():  # guards the SECRET-based checks above
    with pytest.raises(ValueError):
        uuid.UUID(SECRET)
