"""The redaction layer's extensions: secrets learnt from answers, every encoding of a secret, any JWT, and the
last pass over a run's files."""

from __future__ import annotations

import base64
import html
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.api import Locker, LockerToken, LockerType, SessionToken
from harness.model import LockerStatus, TokenKind
from harness.redaction import MASK, Redactor, Secret

TOWER = "0100000000000014"
#: Shaped like the sandbox's bearer tokens (HS256 JWT); not a token of anything.
JWT = (
    ".".join(
        base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")
        for part in ({"alg": "HS256", "typ": "JWT"}, {"azp": "someone", "exp": 1})
    )
    + ".c2lnbmF0dXJlLW9mLWEtdGVzdA"
)


def test_answer_fields_named_like_secrets_are_registered() -> None:
    """A locker token's payload_auth and a session's seed are hidden once the answer was read; the payload is not."""
    redactor = Redactor()
    locker = Locker(1401, "1", TOWER, LockerStatus.RENTED, LockerType(1, "small"), False, "public")
    token = LockerToken(7, TokenKind.DROPOFF, TOWER, locker, "a1b2c3d4e5f6", "feedfacecafebeef", datetime.now(UTC))
    session = SessionToken(TOWER, "0011223344", "99887766554433", "5eed5eed5eed5eed")
    redactor.register_fields([token, {"nested": session}])
    text = f"sent {token.payload} {token.payload_auth} seed={session.session_seed} auth {session.payload_auth}"
    assert redactor.text(text) == f"sent a1b2c3d4e5f6 {MASK} seed={MASK} auth {MASK}"


def test_bytes_are_hidden_as_hex_in_either_case() -> None:
    """A session key registered as bytes is hidden as lower- and upper-case hex."""
    redactor = Redactor()
    key = bytes(range(16))
    redactor.register(key)
    assert redactor.text(f"{key.hex()} {key.hex().upper()}") == f"{MASK} {MASK}"


def test_url_encoded_secret_is_hidden() -> None:
    """A secret with reserved characters is hidden as it is and as a form body or query string spells it."""
    redactor = Redactor()
    redactor.register(Secret("p@ss/word+1 x"))
    assert (
        redactor.text("grant=client_credentials&secret2=p%40ss%2Fword%2B1+x")
        == f"grant=client_credentials&secret2={MASK}"
    )
    assert redactor.text("p%40ss%2Fword%2B1%20x and p@ss/word+1 x") == f"{MASK} and {MASK}"


def test_any_jwt_is_masked_without_its_key() -> None:
    """A bearer token the harness never registered is still masked when it stands alone in text."""
    assert (
        Redactor().text(f"failure: GET /x?token={JWT} refused; saw {JWT}.")
        == f"failure: GET /x?token={MASK} refused; saw {MASK}."
    )


def test_tree_rewrites_text_files_and_leaves_binary_ones(tmp_path: Path) -> None:
    """The last pass masks secrets in every text file under a folder, names the files it changed, and never
    touches an image or a database."""
    redactor = Redactor([Secret("canary-secret-value")])
    (tmp_path / "har").mkdir()
    har = tmp_path / "har" / "contract.har"
    har.write_text(json.dumps({"request": {"headers": [{"name": "Authorization", "value": f"Bearer {JWT}"}]}}))
    csv = tmp_path / "load_failures.csv"
    csv.write_text("Method,Name,Error\nPOST,token,client_secret=canary-secret-value refused\n")
    clean = tmp_path / "summary.md"
    clean.write_text("nothing secret\n")
    png = tmp_path / "latency.png"
    png.write_bytes(b"\x89PNG canary-secret-value")
    changed = redactor.tree(tmp_path)
    assert sorted(changed) == sorted([csv, har])
    assert "canary-secret-value" not in csv.read_text() and JWT not in har.read_text()
    assert png.read_bytes() == b"\x89PNG canary-secret-value"
    assert clean.read_text() == "nothing secret\n"


def test_secrets_learnt_from_answers_are_bounded() -> None:
    """After ten thousand tokens' secrets the newest are hidden, the set stays bounded, and the client secret is
    never pushed out."""
    redactor = Redactor([Secret("the-client-secret")])
    for n in range(10_000):
        redactor.register_fields({"payload_auth": f"{n:064x}"})
    assert len(redactor) <= 4096 + 1
    newest = f"{9_999:064x}"
    assert redactor.text(f"{newest} the-client-secret") == f"{MASK} {MASK}"


def test_an_answer_after_every_new_secret_compiles_the_secrets_a_few_times_not_once_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A suite masks each call's record as the call's token is learnt: compiling every secret again on
    each call was quadratic (the contract stage spent two thirds of its time there). Compiles grow
    with the logarithm of the secrets, and each record is still masked at once."""
    compiles: list[str] = []
    real_compile = re.compile
    monkeypatch.setattr(
        re, "compile", lambda pattern, *flags: compiles.append(pattern) or real_compile(pattern, *flags)
    )
    redactor = Redactor([Secret("the-client-secret")])
    for n in range(1_000):
        secret = f"{n:064x}"
        redactor.register_fields({"payload_auth": secret})
        assert redactor.text(f"record {n}: {secret} by the-client-secret") == f"record {n}: {MASK} by {MASK}"
    assert len(compiles) <= 30, len(compiles)


def test_a_secret_learnt_inside_or_around_a_compiled_one_is_hidden_whole() -> None:
    """Values registered since the last compile are matched apart from it: a stretch that holds both,
    one inside the other, is masked as one, so no part of either shows."""
    redactor = Redactor([Secret("outer-secret-value-0123456789"), *(Secret(f"other-{n:08d}") for n in range(40))])
    assert redactor.text("x") == "x"  # compiles these; the two below are too few to compile again
    redactor.register("secret-value", ephemeral=True)  # inside the compiled one
    redactor.register("wrapping-outer-secret-value-0123456789-too", ephemeral=True)  # around it
    assert redactor.text("a wrapping-outer-secret-value-0123456789-too b") == f"a {MASK} b"
    assert redactor.text("a outer-secret-value-0123456789 b") == f"a {MASK} b"
    assert redactor.text("a secret-value b secret-value") == f"a {MASK} b {MASK}"


def test_two_compiled_secrets_that_share_characters_are_both_hidden() -> None:
    """Found in one pass, overlapping ones too: a page holding two secrets that share characters (the
    end of one the start of the other) shows no part of either."""
    redactor = Redactor([Secret("alpha-secret-0123"), Secret("0123-beta-secret")])
    assert redactor.known("x alpha-secret-0123-beta-secret y") == f"x {MASK} y"
    assert redactor.known("0123-beta-secret and alpha-secret-0123") == f"{MASK} and {MASK}"


@pytest.mark.perf
def test_secrets_learnt_from_answers_are_cheap() -> None:
    """Ten thousand tokens' secrets register in under two seconds (a timing budget: ``-m perf``)."""
    redactor = Redactor([Secret("the-client-secret")])
    started = time.perf_counter()
    for n in range(10_000):
        redactor.register_fields({"payload_auth": f"{n:064x}"})
    assert time.perf_counter() - started < 2.0


#: Two lines of the React bundle inside Locust's report page (locust/webui/dist/report.html): to a rule by
#: shape, both hold a key named like a secret and its value.
LOCUST_SCRIPT = (
    "n={color:!0,date:!0,email:!0,month:!0,number:!0,password:!0,range:!0,search:!0};\n"
    'return"input"===t?!!n[e.type]:("url"===e.type||"password"===e.type)||"textarea"===t;\n'
)


def test_tree_leaves_a_page_script_intact_and_masks_the_run_s_secrets_in_it(tmp_path: Path) -> None:
    """An HTML page another tool wrote keeps its script byte for byte (masking ``password:!0`` stopped
    Locust's page); a secret the run knows is masked there as it is, HTML-escaped and JSON-escaped."""
    secret = 'canary<&>secret"value'
    redactor = Redactor([Secret(secret)])
    page = tmp_path / "load" / "locust.html"
    page.parent.mkdir()
    data = f'window.templateArgs = {{"failures": [{{"error": {json.dumps(secret)}}}]}};'
    body = f"<p>{html.escape(secret)}</p>"
    page.write_text(f"<script type=module>{LOCUST_SCRIPT}</script><script>{data}</script>{body}<i>{secret}</i>")
    script = tmp_path / "bundle.js"
    script.write_text(LOCUST_SCRIPT)

    assert redactor.tree(tmp_path) == [page]
    masked = page.read_text()
    assert LOCUST_SCRIPT in masked and script.read_text() == LOCUST_SCRIPT
    assert "canary" not in masked, masked
    assert masked.count(MASK) == 3


def test_patterns_still_mask_the_harness_s_own_text() -> None:
    """The harness's own text keeps the rules by key and by shape; only pages and scripts are masked by value."""
    redactor = Redactor()
    line = f"password: hunter22 Authorization: Bearer {JWT}"
    assert "hunter22" not in redactor.document(line, ".log") and JWT not in redactor.document(line, ".log")
    assert redactor.document(LOCUST_SCRIPT, ".html") == LOCUST_SCRIPT


def test_client_credentials_are_hidden_as_http_basic_too() -> None:
    """A client's id and secret together, base64-encoded as HTTP Basic carries them, are masked by value."""
    redactor = Redactor()
    redactor.register_credentials("canary-client", Secret("canary-secret-1234"))
    basic = base64.b64encode(b"canary-client:canary-secret-1234").decode()
    assert redactor.known(f"Authorization: Basic {basic}; {basic}") == f"Authorization: Basic {MASK}; {MASK}"
