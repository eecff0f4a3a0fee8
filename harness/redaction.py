"""One redaction layer: everything the harness prints, logs or saves passes through a ``Redactor``.

Two defences, because either alone leaks:

- **Known values.** The harness registers every live secret the moment it learns it (the client
  secret from the environment, each bearer token, ``payload_auth``, session seeds and keys), and
  the redactor replaces those exact strings wherever they appear, whatever the format.
- **Known keys.** JSON bodies, form bodies and headers are redacted by key (``client_secret``,
  ``access_token``, ``Authorization``, ``payload_auth``, ``session_seed``, ``refresh_token``, ...),
  so a secret the harness never saw (another party's token in a response) is hidden as well;
  so is anything shaped like a JSON Web Token, with or without its key.

``register_fields`` registers the secrets an API answer carries (a token's ``payload_auth``, a
session's seed); ``tree`` is the last pass over a run's folder, for files other tools wrote.

The rules by key and by shape are for text: the harness's own output, logs, CSV, JSON. Markup and
code another tool wrote (Locust's report page and its bundled script, Schemathesis's page) are
masked by value only (``known``): to a rule by shape, ``password:!0`` in a minified script is a
key and its value, and masking it leaves a page that does not run.

Stdlib only: configuration, the API client and the reports all sit above it.
"""

from __future__ import annotations

import base64
import dataclasses
import hmac
import html
import json
import logging
import re
import threading
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final, final

import ahocorasick

__all__ = [
    "CODE_SUFFIXES",
    "MASK",
    "SECRET_KEYS",
    "RedactingFilter",
    "Redactor",
    "Secret",
    "redactor",
]

#: What a redacted value is replaced with.
MASK: Final = "[REDACTED]"

#: Keys whose values are secret wherever they appear (compared case-insensitively, with ``-``
#: and ``_`` treated alike, so ``Payload-Auth`` and ``payloadAuth`` match too).
SECRET_KEYS: Final = frozenset(
    {
        "client_secret",
        "access_token",
        "refresh_token",
        "id_token",
        "authorization",
        "proxy_authorization",
        "payload_auth",
        "payloadauth",
        "session_seed",
        "sessionseed",
        "session_key",
        "sessionkey",
        "link_token",
        "linktoken",
        "password",
    }
)

#: Ephemeral secrets (learnt from answers) kept at most: enough for every token a run holds at once.
_RECENT_MAX: Final = 4096
#: Values shorter than this are not registered: masking every "1" would make output unreadable,
#: and no real secret is that short.
_MIN_SECRET_LENGTH: Final = 6

_KEY_NAMES = "|".join(sorted({re.escape(k) for k in SECRET_KEYS} | {"client[-_]secret", "payload[-_]auth"}))
# "key": "value", 'key': 'value', key=value (form bodies, query strings), key: value (headers).
_KEY_VALUE = re.compile(
    rf"""(?ix)
    (?P<key>["']?(?:{_KEY_NAMES})["']?)
    (?P<sep>\s*[:=]\s*)
    (?!Secret\()  # a Secret's repr already hides its value
    # JSON null and true/false are no secret and stay valid JSON; an earlier mask ([REDACTED],
    # Schemathesis's [Filtered]) is taken whole, so masking twice changes nothing.
    (?!(?:null|true|false)\b)
    # A bytes literal (a dataclass's repr of a session seed) is taken whole, or only its "b" would go.
    (?P<value>\[[A-Za-z]+\]|b"(?:[^"\\]|\\.)*"|b'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|'[^']*'
        |(?:bearer\s+|basic\s+)?[^\s&,;"'}}\]]+)
    """
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9\-._~+/]+=*")
# A JSON Web Token wherever it stands (a HAR entry, a Locust failure line, a URL): Keycloak's bearer
# tokens and the sandbox's are JWTs, and one seen without its key or its "Bearer" is still a token.
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{8,}")
#: Files ``Redactor.tree`` leaves alone: binary formats whose bytes a text pass would break.
_BINARY_SUFFIXES: Final = frozenset(
    {".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".pdf", ".zip", ".gz", ".sqlite", ".db", ".woff", ".woff2"}
)
#: Markup and code other tools write (report pages, their scripts and styles): masked by value only.
CODE_SUFFIXES: Final = frozenset({".html", ".htm", ".xhtml", ".svg", ".js", ".mjs", ".cjs", ".css"})


def _normal_key(key: str) -> str:
    return key.lower().replace("-", "_")


def is_secret_key(key: str) -> bool:
    """Whether a JSON, form or header key names a secret."""
    normal = _normal_key(key)
    return normal in SECRET_KEYS or normal.replace("_", "") in SECRET_KEYS


@final
class Secret:
    """A secret string whose ``repr`` and ``str`` never show it; ``reveal()`` is the one way in."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise ValueError("a secret must be a non-empty string")
        self._value = value

    def reveal(self) -> str:
        """The value itself: only for the one place that must send it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> Any:
        # A pickled secret ends up in a file sooner or later.
        raise TypeError("a Secret cannot be pickled")


class Redactor:
    """Hides registered secret values and the values of secret keys; thread-safe, cheap to call."""

    def __init__(self, secrets: Iterable[str | Secret] = ()) -> None:
        self._lock = threading.Lock()
        self._values: frozenset[str] = frozenset()
        #: Secrets learnt from answers (a token's payload_auth): the newest ``_RECENT_MAX``, oldest
        #: first. A soak makes tens of thousands of tokens, each dead after its delivery.
        self._recent: dict[str, None] = {}
        #: An Aho-Corasick automaton of the values known when it was built, and the values
        #: registered since, searched one by one until there are enough to build it again.
        self._automaton: ahocorasick.Automaton | None = None
        self._compiled_values: frozenset[str] = frozenset()
        self._pending: frozenset[str] = frozenset()
        for secret in secrets:
            self.register(secret)

    @staticmethod
    def _forms(secret: str | bytes | Secret) -> set[str]:
        """Every spelling of a secret a file may hold: as it is, URL-encoded (a form body, a query
        string), JSON-escaped (inside a string of a document) and HTML-escaped (inside a page)."""
        if isinstance(secret, bytes):
            forms = {secret.hex(), secret.hex().upper()}
        else:
            value = secret.reveal() if isinstance(secret, Secret) else secret
            forms = {
                value,
                urllib.parse.quote(value, safe=""),
                urllib.parse.quote_plus(value),
                json.dumps(value)[1:-1],
                json.dumps(value, ensure_ascii=False)[1:-1],
                html.escape(value),
                html.escape(value, quote=False),
            }
        return {form for form in forms if len(form) >= _MIN_SECRET_LENGTH}

    def register(self, secret: str | bytes | Secret | None, *, ephemeral: bool = False) -> None:
        """Remember a live secret so that every later output hides it.

        Bytes (a session seed or key) are registered as the hex the harness would print them as,
        in both cases; a string as itself and URL-encoded (a form body, a query string).
        ``ephemeral`` secrets (one token's) are kept among the newest few thousand only; the key
        patterns still hide an older one wherever its key is shown.
        """
        if secret is None:
            return
        forms = self._forms(secret)
        with self._lock:
            if ephemeral:
                new = [form for form in forms if form not in self._recent and form not in self._values]
                if not new:
                    return
                self._recent.update(dict.fromkeys(new))
                while len(self._recent) > _RECENT_MAX:
                    del self._recent[next(iter(self._recent))]
            else:
                if forms <= self._values:
                    return
                self._values = self._values | forms
            # Not built here: a long run registers thousands of token secrets, and building the
            # whole automaton again on each one (the next text() after every answer) was quadratic.
            self._pending = self._pending | (set(forms) - self._compiled_values)

    def _matchers(self, text_length: int) -> tuple[ahocorasick.Automaton | None, frozenset[str]]:
        """The automaton and the values registered since. The automaton is built again once the
        values since are a quarter of it (so building stays linear in what is registered), or
        sooner when searching them one by one in this text would cost more."""
        pending = self._pending
        if not pending or (len(pending) * 4 < len(self._compiled_values) and len(pending) * text_length < 1 << 20):
            return self._automaton, pending
        with self._lock:
            if self._pending:
                # Every value registered now, the evicted recent ones dropped. Aho-Corasick finds
                # every occurrence of thousands of values in one pass over the text (a regular
                # expression's alternation tried each value at each place: seconds a report page),
                # overlapping and nested ones too.
                values = self._values | self._recent.keys()
                automaton = None
                if values:
                    automaton = ahocorasick.Automaton()
                    for value in values:
                        automaton.add_word(value, len(value))
                    automaton.make_automaton()
                self._automaton = automaton
                self._compiled_values = frozenset(values)
                self._pending = frozenset()
            return self._automaton, self._pending

    def register_credentials(self, client_id: str, secret: str | Secret) -> None:
        """Register a client's secret, and the client id and secret together as HTTP Basic spells them."""
        value = secret.reveal() if isinstance(secret, Secret) else secret
        self.register(value)
        pair = f"{client_id}:{value}".encode()
        self.register(base64.b64encode(pair).decode("ascii"))
        self.register(base64.urlsafe_b64encode(pair).decode("ascii"))

    def register_fields(self, value: object) -> None:
        """Register every secret a result carries: fields named like a secret key (``payload_auth``,
        ``session_seed``, ``access_token``...) of a dataclass, mapping or list, however deep."""
        self._register_fields(value, depth=0)

    def _register_fields(self, value: object, depth: int) -> None:
        if depth > 8:  # answers are shallow; a cycle or a huge tree is not a result
            return
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            items: Iterable[tuple[object, object]] = (
                (f.name, getattr(value, f.name)) for f in dataclasses.fields(value)
            )
        elif isinstance(value, Mapping):
            items = value.items()
        elif isinstance(value, list | tuple):
            for item in value:
                self._register_fields(item, depth + 1)
            return
        else:
            return
        for key, item in items:
            if isinstance(key, str) and is_secret_key(key) and isinstance(item, str | bytes | Secret):
                self.register(item, ephemeral=True)
            else:
                self._register_fields(item, depth + 1)

    def __len__(self) -> int:
        return len(self._values) + len(self._recent)

    def known(self, text: str) -> str:
        """``text`` with every registered secret masked, in each of its spellings, and nothing else
        changed: for markup and code another tool wrote, which a rule by shape would rewrite."""
        automaton, pending = self._matchers(len(text))
        spans = [(end + 1 - length, end + 1) for end, length in automaton.iter(text)] if automaton is not None else []
        for value in pending:
            start = text.find(value)
            while start != -1:
                spans.append((start, start + len(value)))
                start = text.find(value, start + 1)
        if not spans:
            return text
        # Overlapping or nested matches (two secrets sharing characters, a value registered since
        # inside or around a compiled one) are masked as one stretch: no part of either shows.
        spans.sort()
        pieces, shown_to = [], 0
        merged_start, merged_end = spans[0]
        for start, end in spans[1:]:
            if start < merged_end:
                merged_end = max(merged_end, end)
                continue
            pieces += [text[shown_to:merged_start], MASK]
            shown_to, merged_start, merged_end = merged_end, start, end
        pieces += [text[shown_to:merged_start], MASK, text[merged_end:]]
        return "".join(pieces)

    def text(self, text: str) -> str:
        """``text`` with every registered secret and every ``key=value`` of a secret key masked."""
        text = self.known(text)
        text = _KEY_VALUE.sub(_mask_key_value, text)
        text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
        return _JWT.sub(MASK, text)

    def document(self, text: str, suffix: str) -> str:
        """The text of a file named ``*suffix`` masked as its kind allows: markup and code (an HTML
        page, a script) by value only (``known``), anything else by value, key and shape (``text``)."""
        return self.known(text) if suffix.lower() in CODE_SUFFIXES else self.text(text)

    def file(self, path: Path) -> bool:
        """Rewrite one text file with its secrets masked (``document``); whether it changed. Binary
        files are left."""
        if path.suffix.lower() in _BINARY_SUFFIXES:
            return False
        try:
            raw = path.read_bytes()
            text = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError):
            return False  # not text (or gone): nothing a text pass could mask safely
        masked = self.document(text, path.suffix)
        if masked == text:
            return False
        path.write_text(masked, encoding="utf-8")
        return True

    def tree(self, root: Path) -> list[Path]:
        """``file`` on every file under ``root``: the last pass over a run's evidence, whichever
        tool wrote it (Locust's CSV and HTML, Schemathesis's page, pytest's JUnit); the files it
        changed. Pages and scripts keep their code: only the secrets the run knows are masked there."""
        return [path for path in sorted(root.rglob("*")) if path.is_file() and self.file(path)]

    def value(self, value: Any) -> Any:
        """A copy of a JSON-like value with secret keys and registered secrets masked."""
        if isinstance(value, Mapping):
            return {
                key: MASK if isinstance(key, str) and is_secret_key(key) and item is not None else self.value(item)
                for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.value(item) for item in value]
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Secret):
            return MASK
        return value

    def headers(self, headers: Iterable[tuple[str, str]] | Mapping[str, str]) -> dict[str, str]:
        """Headers with secret ones (``Authorization``, ...) masked."""
        items = headers.items() if isinstance(headers, Mapping) else headers
        return {key: MASK if is_secret_key(key) else self.text(val) for key, val in items}


def _mask_key_value(match: re.Match[str]) -> str:
    value = match.group("value")
    # A quoted value keeps its quotes (and a bytes literal its prefix): JSON and reprs stay readable.
    prefix = value[0] if value[:1] in ("b", "B") and value[1:2] in ('"', "'") else ""
    quote = value[len(prefix)] if value[len(prefix) : len(prefix) + 1] in ('"', "'") else ""
    return f"{match.group('key')}{match.group('sep')}{prefix}{quote}{MASK}{quote}"


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's message; install it on every handler."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._redactor.text(record.getMessage())
        record.args = None
        # A handler's formatter fills exc_text from exc_info only after the filters ran, unredacted:
        # format the traceback here, redact it, and leave the formatter nothing else to format.
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        record.exc_info = None
        if record.exc_text:
            record.exc_text = self._redactor.text(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redactor.text(record.stack_info)
        return True


_TRACEBACKS = logging.Formatter()


_PROCESS_REDACTOR = Redactor()


def redactor() -> Redactor:
    """The process-wide redactor: parts that learn a secret register it here unless given another."""
    return _PROCESS_REDACTOR
