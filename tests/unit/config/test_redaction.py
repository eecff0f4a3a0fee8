"""The redaction layer: registered secrets and secret keys never reach output."""

from __future__ import annotations

import io
import json
import logging

import pytest

from harness.redaction import MASK, RedactingFilter, Redactor, Secret, redactor


def test_registered_value_is_masked_anywhere() -> None:
    """A registered secret is hidden wherever it appears in a text."""
    r = Redactor(["client-secret-value"])
    assert r.text("error: client-secret-value was refused") == f"error: {MASK} was refused"


def test_secret_objects_register_by_value() -> None:
    """A Secret registers its value, and is masked when it appears in a structure."""
    r = Redactor()
    r.register(Secret("abcdef123456"))
    assert r.text("x=abcdef123456") == f"x={MASK}"
    assert r.value({"note": Secret("zzzzzzzz")}) == {"note": MASK}


def test_longest_secret_is_masked_whole() -> None:
    """A secret containing another is masked as one, leaving no tail behind."""
    r = Redactor(["abcdef", "abcdefghijkl"])
    assert r.text("abcdefghijkl") == MASK


def test_short_values_are_not_registered() -> None:
    """Values too short to be secrets are ignored, so output stays readable."""
    r = Redactor(["1", "abc", ""])
    assert len(r) == 0
    assert r.text("1 abc") == "1 abc"


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        ("client_id=me&client_secret=hunter22&grant_type=client_credentials", "hunter22", "grant_type=client"),
        ('{"access_token": "eyJ.abc.def", "expires_in": 300}', "eyJ.abc.def", '"expires_in": 300'),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.x", "eyJhbGciOiJIUzI1NiJ9", "Authorization: "),
        ('{"payload": "a1b2", "payload_auth": "c3d4"}', "c3d4", '"payload": "a1b2"'),
        ("payloadAuth='c3d4'", "c3d4", "payloadAuth="),
        ('"session_seed":"00ff"', "00ff", '"session_seed":'),
        ("refresh_token: abc", "abc", "refresh_token: "),
    ],
)
def test_secret_keys_are_masked_in_text(text: str, secret: str, kept: str) -> None:
    """Values of secret keys in form bodies, JSON text and headers are masked; the rest stays."""
    out = Redactor().text(text)
    assert MASK in out
    assert secret not in out
    assert kept in out


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (r"Session(session_seed=b'\x01\x02abcdef', tower='x')", f"Session(session_seed=b'{MASK}', tower='x')"),
        (r'session_key=b"it\'s\x00\"key" rest', f'session_key=b"{MASK}" rest'),
        (r"payloadAuth=B'ab\'cd'", f"payloadAuth=B'{MASK}'"),
        ("password=bob&user=me", f"password={MASK}&user=me"),  # a bare value starting with "b" is no literal
    ],
)
def test_a_bytes_literal_of_a_secret_key_is_masked_whole(text: str, masked: str) -> None:
    """A secret key's Python bytes literal (a repr) is masked whole, keeping its b and quotes, never just its b."""
    assert Redactor().text(text) == masked
    assert Redactor().text(masked) == masked


def test_bare_bearer_token_is_masked() -> None:
    """A bearer token outside any key (a pasted header value) is masked."""
    assert Redactor().text("sent Bearer abc.def.ghi to the API") == f"sent Bearer {MASK} to the API"


def test_json_values_are_redacted_by_key() -> None:
    """Nested JSON bodies lose the values of secret keys and keep everything else."""
    body = {
        "access_token": "tok",
        "locker": {"id": 1401, "payload_auth": "aa", "payload": "bb"},
        "items": [{"session_seed": "cc", "tower_id": "0100000000000014"}],
        "refresh_token": None,
    }
    out = Redactor().value(body)
    assert out == {
        "access_token": MASK,
        "locker": {"id": 1401, "payload_auth": MASK, "payload": "bb"},
        "items": [{"session_seed": MASK, "tower_id": "0100000000000014"}],
        "refresh_token": None,
    }
    assert '"tok"' not in json.dumps(out)


def test_headers_are_redacted_by_name() -> None:
    """Authorization headers are masked whatever their case; others pass."""
    out = Redactor().headers({"authorization": "Bearer x", "Accept": "application/json"})
    assert out == {"authorization": MASK, "Accept": "application/json"}


def test_logging_filter_redacts_messages_and_arguments() -> None:
    """Log records pass through the redactor, arguments included."""
    r = Redactor(["secret-token-xyz"])
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "sent %s", ("secret-token-xyz",), None)
    assert RedactingFilter(r).filter(record)
    assert record.getMessage() == f"sent {MASK}"


def test_logging_filter_redacts_a_logged_traceback() -> None:
    """log.exception's traceback, formatted by the handler after the filter ran, shows no secret."""
    r = Redactor(["secret-token-xyz"])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(r))
    log = logging.getLogger("test.redaction.traceback")
    log.propagate = False
    log.addHandler(handler)
    try:
        try:
            raise RuntimeError("the tower refused token secret-token-xyz")
        except RuntimeError:
            log.exception("could not close the door", stack_info=True)
    finally:
        log.removeHandler(handler)
    shown = stream.getvalue()
    assert "Traceback (most recent call last)" in shown and "RuntimeError" in shown
    assert "Stack (most recent call last)" in shown
    assert "secret-token-xyz" not in shown
    assert MASK in shown


def test_secret_cannot_be_pickled() -> None:
    """A Secret refuses pickling, so it cannot slip into a file by accident."""
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(Secret("value-123"))


def test_process_redactor_is_shared() -> None:
    """redactor() returns one process-wide instance that parts register with."""
    assert redactor() is redactor()


@pytest.mark.parametrize(
    "text",
    [
        '{"refresh_token": null, "access_token": "abc123xyz"}',
        "Authorization: [Filtered]",
        "client_secret=hunter2hunter2&scope=service_provider",
        'payload_auth: "00ff00ff00ff"',
        "Authorization: Bearer eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl",
    ],
)
def test_masking_twice_changes_nothing_and_json_stays_json(text: str) -> None:
    """Redaction is idempotent (no "[REDACTED]]"), and a JSON null stays a JSON null."""
    redactor = Redactor()
    once = redactor.text(text)
    assert redactor.text(once) == once
    assert "]]" not in once
    if text.startswith("{"):
        assert json.loads(once) == {"refresh_token": None, "access_token": "[REDACTED]"}
