"""Where the harness points and with what: targets, credentials, directories, timeouts.

Precedence, highest first: command-line options, ``HARBOR_*`` environment variables, then a
``locker-harness.toml`` (or ``[tool.locker-harness]`` in ``pyproject.toml``) in the working
directory. Secrets come only from the environment: a secret in a file is refused, because
files get committed.

Tower ids are parsed here, once, into ``harness.model.TowerId`` (any case in, upper-case out):
one spelling keeps requests, ledgers and reports comparable.

Every bad input is a ``UsageError`` whose message is one line saying what to change.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
import stat
import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from harness.assumptions import Assumed
from harness.errors import UsageError
from harness.hosts import (
    INSECURE_HTTP_VARIABLE,
    PRODUCTION_WRITES_FLAG,
    HarborHost,
    HostError,
    WirePolicy,
    canonical_url,
    harbor_host,
    is_loopback_host,
    url_host,
)
from harness.model import InvalidTowerId, TowerId
from harness.redaction import Secret

__all__ = [
    "CONFIG_FILE_NAME",
    "DEFAULT_LOCAL_TOWER",
    "ENVIRONMENT",
    "FILE_KEYS",
    "FILE_TABLES",
    "INSECURE_HTTP_VARIABLE",
    "MAX_CONFIG_BYTES",
    "PRODUCTION_WRITES_FLAG",
    "PRODUCTION_WRITES_VALUE",
    "PROJECT_ROOT",
    "BleBackend",
    "Credentials",
    "Secret",
    "Settings",
    "Target",
    "TargetKind",
    "file_table",
    "is_loopback_host",
    "load_settings",
    "parse_target",
    "target_environment",
]

CONFIG_FILE_NAME: Final = "locker-harness.toml"
#: The seeded virtual tower of the embedded sandbox (docs/design.md, "Seeded world").
DEFAULT_LOCAL_TOWER: Final = TowerId("0100000000000014")
PRODUCTION_WRITES_VALUE: Final = "yes-write-to-production"
#: The checkout the harness runs from: where contracts/, hw_tests/, loadtests/ and benchmarks/ live.
PROJECT_ROOT: Final = Path(__file__).resolve().parents[1]

_TOKEN_PATH: Final = "/realms/harbor/protocol/openid-connect/token"
_MAX_TIMEOUT: Final = 600.0


class TargetKind(enum.StrEnum):
    LOCAL = "local"
    SANDBOX = "sandbox"
    PRODUCTION = "production"
    URL = "url"


class BleBackend(enum.StrEnum):
    """How BLE steps reach a tower: the virtual radio, or the OS Bluetooth stack through bleak."""

    VIRTUAL = "virtual"
    BLEAK = "bleak"


# Reference section 1: REST host (the SDK API is the same host under /sdk/v1) and Keycloak host.
_HARBOR_HOSTS: Final[Mapping[TargetKind, tuple[str, str]]] = {
    TargetKind.SANDBOX: ("https://api.sandbox.harborlockers.com", "https://accounts.sandbox.harborlockers.com"),
    TargetKind.PRODUCTION: ("https://api.harborlockers.com", "https://accounts.harborlockers.com"),
}


@dataclass(frozen=True, slots=True)
class Target:
    """Whose lockers these are: the embedded sandbox, Harbor's sandbox, production, or a URL.

    ``api_url`` is ``None`` for ``local`` until the harness has started the sandbox
    (``Target.running_at``).
    """

    kind: TargetKind
    api_url: str | None = None
    token_url: str | None = None

    @classmethod
    def local(cls) -> Target:
        return cls(TargetKind.LOCAL)

    @property
    def name(self) -> str:
        """``local``, ``sandbox``, ``production``, or the URL itself."""
        if self.kind is TargetKind.URL and self.api_url is not None:
            return self.api_url
        return self.kind.value

    @property
    def sdk_url(self) -> str | None:
        """Base of the SDK API (``/sdk/v1/``), as the native SDKs spell it."""
        return None if self.api_url is None else f"{self.api_url}/sdk/v1/"

    @property
    def is_production(self) -> bool:
        return self.kind is TargetKind.PRODUCTION

    def running_at(self, api_url: str, token_url: str | None = None) -> Target:
        """This target bound to a running server (the embedded sandbox once started)."""
        api_url = _check_url(api_url, "sandbox URL")
        return dataclasses.replace(self, api_url=api_url, token_url=token_url or api_url + _TOKEN_PATH)


@dataclass(frozen=True, slots=True)
class Credentials:
    """An OAuth2 client (Keycloak client id and secret)."""

    client_id: str
    client_secret: Secret


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a run needs to know, resolved and validated once."""

    target: Target = dataclasses.field(default_factory=Target.local)
    client_id: str | None = None
    client_secret: Secret | None = None
    second_client_id: str | None = None
    second_client_secret: Secret | None = None
    #: The tower to test, or ``None`` when none was given for a Harbor target.
    tower_id: TowerId | None = DEFAULT_LOCAL_TOWER
    ble: BleBackend = BleBackend.VIRTUAL
    allow_production_writes: bool = False
    #: ``HARBOR_ALLOW_INSECURE_HTTP``: plain ``http://`` to another machine (the secret in clear).
    allow_insecure_http: bool = False
    reports_dir: Path = Path("reports")
    state_dir: Path = Path(".locker-harness")
    #: Seconds for one HTTP request (connect, read, write) and for connecting.
    timeout: float = 10.0
    connect_timeout: float = 5.0
    #: Seconds the flow waits for the API to show a status before calling it a defect.
    status_timeout: float = 15.0
    #: The file that contributed settings, if any (for ``--verbose``).
    config_file: Path | None = None
    #: The assumptions in effect: the registry's, with those adopted in ``[assume]`` and
    #: ``HARBOR_ASSUME_*`` over them (``harness.assumptions``).
    assume: Assumed = dataclasses.field(default_factory=Assumed)

    def credentials(self) -> Credentials:
        """The main identity, or a ``UsageError`` naming the variables to set."""
        return _pair(self.client_id, self.client_secret, "HARBOR_CLIENT_ID", "HARBOR_CLIENT_SECRET", self.target)

    def second_credentials(self) -> Credentials:
        """A second identity (cross-party checks), or a ``UsageError`` naming the variables to set."""
        return _pair(
            self.second_client_id,
            self.second_client_secret,
            "HARBOR_SECOND_CLIENT_ID",
            "HARBOR_SECOND_CLIENT_SECRET",
            self.target,
        )

    def tower(self) -> TowerId:
        """The tower to test, or a ``UsageError`` saying how to name one."""
        if self.tower_id is None:
            raise UsageError(f"no tower for target {self.target.name}: pass --tower or set HARBOR_TOWER_ID")
        return self.tower_id

    def check_writes_allowed(self, what: str) -> None:
        """Refuse a write against production unless the user opted in, loudly."""
        if self.target.is_production and not self.allow_production_writes:
            raise UsageError(
                f"refusing to {what} on production: pass {PRODUCTION_WRITES_FLAG} "
                f"or set HARBOR_ALLOW_PRODUCTION_WRITES={PRODUCTION_WRITES_VALUE}"
            )

    def wire_policy(self) -> WirePolicy:
        """The guard every request of this run passes at the wire, whatever the target was called."""
        return WirePolicy(
            allow_production_writes=self.allow_production_writes, allow_insecure_http=self.allow_insecure_http
        )

    def with_target(self, target: Target) -> Settings:
        return dataclasses.replace(self, target=target)

    def with_credentials(self, main: Credentials, second: Credentials | None = None) -> Settings:
        """These settings with identities filled in (the embedded sandbox's throwaway ones)."""
        changes: dict[str, Any] = {"client_id": main.client_id, "client_secret": main.client_secret}
        if second is not None:
            changes |= {"second_client_id": second.client_id, "second_client_secret": second.client_secret}
        return dataclasses.replace(self, **changes)


def _pair(client_id: str | None, secret: Secret | None, id_var: str, secret_var: str, target: Target) -> Credentials:
    missing = [name for name, value in ((id_var, client_id), (secret_var, secret)) if value is None]
    if missing or client_id is None or secret is None:
        raise UsageError(f"target {target.name} needs credentials: set {' and '.join(missing)}")
    return Credentials(client_id, secret)


# -- parsing single values ----------------------------------------------------------------------


def _check_url(value: str, source: str) -> str:
    """An ``http(s)://`` URL with its host as the network reads it (``harness.hosts``), or a ``UsageError``."""
    text = value.strip()
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port  # raises ValueError for a port out of range or not a number
    except ValueError as exc:
        raise UsageError(f"{source} {value!r} is not a valid URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc.rpartition("@")[2]:
        raise UsageError(f"{source} {value!r} is not a valid URL: expected http(s)://host[:port][/path]")
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise UsageError(f"{source} {value!r} must not carry a query, fragment or user info")
    if port == 0:
        raise UsageError(f"{source} {value!r} has port 0")
    if "\\" in text or any(ord(char) < 0x20 or ord(char) == 0x7F for char in text):
        raise UsageError(f"{source} {value!r} holds a backslash or a control character")
    try:
        url = canonical_url(text)
    except HostError as exc:
        raise UsageError(f"{source} {value!r} is not a valid URL: {exc}") from None
    return url.rstrip("/")


def parse_target(value: str, *, token_url: str | None = None, source: str = "target") -> Target:
    """``local``, ``sandbox``, ``production`` or an ``http(s)://`` URL, as a ``Target``.

    A URL's host is read as the network reads it (``harness.hosts``: IDNA dots, full-width
    letters, percent-escapes, case, the root's dot, numeric IPv4 forms), and a URL on one of
    Harbor's sandbox or production hosts is that target, so neither the production guard nor the
    sandbox's request budget can be sidestepped by spelling the URL out; plain ``http://`` to
    Harbor's hosts is refused.
    """
    text = value.strip()
    name = text.lower()
    token = _check_url(token_url, "token URL (HARBOR_TOKEN_URL)") if token_url else None
    if name == TargetKind.LOCAL:
        if token:
            raise UsageError("HARBOR_TOKEN_URL cannot be used with target local: the sandbox serves its own")
        return Target.local()
    for kind, (api, accounts) in _HARBOR_HOSTS.items():
        if name == kind.value:
            return Target(kind, api, token or accounts + _TOKEN_PATH)
    if "://" not in text:
        shown = "" if source == "target" else f" ({source})"
        raise UsageError(f"unknown target {value!r}{shown}: use local, sandbox, production or an http(s):// URL")
    url = _check_url(text, "target URL" if source == "target" else source)
    harbor = harbor_host(url_host(url))
    if harbor in (HarborHost.SANDBOX, HarborHost.PRODUCTION):
        kind = TargetKind(harbor.value)
        if urllib.parse.urlsplit(url).scheme != "https":
            raise UsageError(f"target URL {value.strip()!r} is Harbor's {kind.value} host: use https://")
        return Target(kind, url, token or _HARBOR_HOSTS[kind][1] + _TOKEN_PATH)
    return Target(TargetKind.URL, url, token or url + _TOKEN_PATH)


def _check_transport(target: Target, allowed: bool) -> None:
    """Refuse plain ``http://`` to a host other than loopback: the client secret would travel in clear."""
    if allowed:
        return
    for what, url in (("target URL", target.api_url), ("token URL", target.token_url)):
        if url is not None and url.startswith("http://") and not is_loopback_host(url_host(url)):
            raise UsageError(
                f"{what} {url} is plain http to another machine: the client secret and tokens would travel "
                f"in clear; use https://, or set {INSECURE_HTTP_VARIABLE}=1 if this network is yours"
            )


def _seconds(value: object, source: str) -> float:
    if isinstance(value, bool):
        raise UsageError(f"{source} must be a number of seconds, not {value!r}")
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UsageError(f"{source} must be a number of seconds, not {value!r}") from None
    if not math.isfinite(seconds) or not 0 < seconds <= _MAX_TIMEOUT:
        raise UsageError(f"{source} must be more than 0 and at most {_MAX_TIMEOUT:g} seconds, not {value!r}")
    return seconds


def _ble(value: object, source: str) -> BleBackend:
    try:
        return BleBackend(str(value).strip().lower())
    except ValueError:
        raise UsageError(f"{source} must be virtual or bleak, not {value!r}") from None


def _folder(value: object, source: str) -> Path:
    """A folder path: non-empty text without control characters (a NUL ends a path at the OS)."""
    text = _text(value, source)
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in text):
        raise UsageError(f"{source} {text!r} holds a control character")
    return Path(text)


def _text(value: object, source: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{source} must be a non-empty string, not {value!r}")
    return value.strip()


# -- the three sources --------------------------------------------------------------------------

#: Environment variables and what they set; the README lists the same table.
ENVIRONMENT: Final[Mapping[str, str]] = {
    "HARBOR_TARGET": "target",
    "HARBOR_CLIENT_ID": "client_id",
    "HARBOR_CLIENT_SECRET": "client_secret",
    "HARBOR_SECOND_CLIENT_ID": "second_client_id",
    "HARBOR_SECOND_CLIENT_SECRET": "second_client_secret",
    "HARBOR_TOWER_ID": "tower_id",
    "HARBOR_TOKEN_URL": "token_url",
    "HARBOR_BLE": "ble",
    "HARBOR_ALLOW_PRODUCTION_WRITES": "allow_production_writes",
    INSECURE_HTTP_VARIABLE: "allow_insecure_http",
    "HARBOR_REPORTS_DIR": "reports_dir",
    "HARBOR_STATE_DIR": "state_dir",
    "HARBOR_TIMEOUT": "timeout",
    "HARBOR_CONNECT_TIMEOUT": "connect_timeout",
    "HARBOR_STATUS_TIMEOUT": "status_timeout",
    "HARBOR_CONFIG": "config",
}

#: Keys a configuration file may set.
FILE_KEYS: Final = frozenset(
    {
        "target",
        "tower_id",
        "client_id",
        "second_client_id",
        "token_url",
        "ble",
        "reports_dir",
        "state_dir",
        "timeout",
        "connect_timeout",
        "status_timeout",
    }
)
#: Tables a configuration file may hold for other parts, which read them with ``file_table``:
#: ``[load]`` and ``[slo]`` (``harness.load``); ``[assume]`` is read here, into ``Settings.assume``.
FILE_TABLES: Final = frozenset({"load", "slo", "assume"})
_FILE_SECRETS: Final = {"client_secret": "HARBOR_CLIENT_SECRET", "second_client_secret": "HARBOR_SECOND_CLIENT_SECRET"}

#: Option names ``load_settings`` accepts (the CLI passes ``None`` for options not given).
OPTION_KEYS: Final = (FILE_KEYS - {"client_id", "second_client_id"}) | {
    "config",
    "allow_production_writes",
    "allow_insecure_http",
}
_OPTION_FLAGS: Final = {"tower_id": "--tower", "allow_production_writes": PRODUCTION_WRITES_FLAG}


#: The largest configuration file read (a pyproject.toml is a few KiB; this is generous).
MAX_CONFIG_BYTES: Final = 1 << 20


def _read_bytes(path: Path, *, explicit: bool) -> bytes | None:
    """A configuration file's bytes: a regular file reached by a live path, at most
    ``MAX_CONFIG_BYTES``; ``None`` if an implicit one is absent. Never blocks (a FIFO) and never
    reads without end (``/dev/zero``)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        if os.path.lexists(path):
            raise UsageError(f"configuration file {path} is a symbolic link to nothing") from None
        if explicit:
            raise UsageError(f"configuration file {path} does not exist") from None
        return None
    except OSError as exc:
        raise UsageError(f"cannot read configuration file {path}: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):  # before fdopen, which refuses a directory with its own error
        os.close(fd)
        what = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise UsageError(f"configuration file {path} is {what}")
    with os.fdopen(fd, "rb") as file:
        if info.st_size > MAX_CONFIG_BYTES:
            raise UsageError(f"configuration file {path} is larger than {MAX_CONFIG_BYTES // 1024} KiB")
        raw = file.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise UsageError(f"configuration file {path} is larger than {MAX_CONFIG_BYTES // 1024} KiB")
    return raw


def _read_file(path: Path, *, explicit: bool) -> tuple[dict[str, Any], str]:
    """The harness's table from a TOML file, and how to name its keys in messages."""
    if "\0" in str(path):
        raise UsageError(f"configuration file {str(path)!r} holds a NUL character")
    raw = _read_bytes(path, explicit=explicit)
    if raw is None:
        return {}, str(path)
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise UsageError(f"{path} is not valid TOML: nested too deeply") from None
    if path.name == "pyproject.toml":
        tool = document.get("tool", {})
        if not isinstance(tool, dict):
            raise UsageError(f"tool in {path} must be a table ([tool])")
        table = tool.get("locker-harness", {})
        where = f"[tool.locker-harness] in {path}"
    else:
        table, where = document, str(path)
    if not isinstance(table, dict):
        raise UsageError(f"{where} must be a table of settings")
    return table, where


def _file_settings(path: Path, *, explicit: bool) -> tuple[dict[str, Any], Path | None, Assumed]:
    """The file's settings (key -> (value, where)), the file if it held any, and its ``[assume]``
    table's values over the registry's."""
    table, where = _read_file(path, explicit=explicit)
    for key in table:
        if key in FILE_TABLES:
            if not isinstance(table[key], dict):
                raise UsageError(f"{key} in {where} must be a table ([{key}])")
            continue
        if key in _FILE_SECRETS:
            raise UsageError(
                f"{key} found in {where}: secrets are read only from the environment, "
                f"remove it and set {_FILE_SECRETS[key]}"
            )
        if key == "allow_production_writes":
            raise UsageError(
                f"allow_production_writes found in {where}: the production opt-in is never read from a file, "
                f"pass {PRODUCTION_WRITES_FLAG} or set HARBOR_ALLOW_PRODUCTION_WRITES={PRODUCTION_WRITES_VALUE}"
            )
        if key == "allow_insecure_http":
            raise UsageError(
                f"allow_insecure_http found in {where}: sending secrets in clear is never allowed from a file, "
                f"set {INSECURE_HTTP_VARIABLE}=1"
            )
        if key not in FILE_KEYS:
            raise UsageError(f"unknown key {key!r} in {where}; known keys: {', '.join(sorted(FILE_KEYS))}")
    values = {key: (value, f"{key} in {where}") for key, value in table.items() if key not in FILE_TABLES}
    assumed = Assumed.of(table.get("assume", {}), f"[assume] of {where}", {})
    return values, (path if table else None), assumed


def file_table(settings: Settings, name: str) -> tuple[dict[str, Any], str]:
    """The ``[name]`` table (one of ``FILE_TABLES``) of the file ``settings`` came from, and how
    to name it in messages; empty when there is no file or no such table."""
    if name not in FILE_TABLES:
        raise ValueError(f"not a configuration table: {name!r}")
    if settings.config_file is None:
        return {}, name
    table, where = _read_file(settings.config_file, explicit=True)
    found = table.get(name, {})
    return (dict(found) if isinstance(found, dict) else {}), f"[{name}] of {where}"


def _find_file(cwd: Path, explicit: str | None) -> tuple[Path, bool] | None:
    if explicit:
        return Path(explicit), True
    for candidate in (cwd / CONFIG_FILE_NAME, cwd / "pyproject.toml"):
        # A link to nothing (dangling, looping) is found too: reading it says what is wrong with it.
        if candidate.is_file() or os.path.lexists(candidate):
            return candidate, False
    return None


def load_settings(
    options: Mapping[str, object] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Resolve settings: ``options`` (None = not given) > ``HARBOR_*`` > config file > defaults."""
    # A flag left at its default (False) is "not given": it must not mask the environment.
    options = {key: value for key, value in (options or {}).items() if value is not None and value is not False}
    unknown = set(options) - OPTION_KEYS
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
    env = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else cwd

    # key -> (value, where it came from), lowest precedence first, each layer overriding.
    chosen: dict[str, tuple[object, str]] = {}
    env_values = {key: (env[var], var) for var, key in ENVIRONMENT.items() if env.get(var, "").strip()}

    config_choice = options.get("config") or (env_values.get("config", (None, ""))[0])
    found = _find_file(cwd, str(config_choice) if config_choice else None)
    config_file = None
    from_file = Assumed()
    if found is not None:
        file_values, config_file, from_file = _file_settings(found[0], explicit=found[1])
        chosen |= file_values
    chosen |= env_values
    chosen |= {key: (value, _OPTION_FLAGS.get(key, f"--{key.replace('_', '-')}")) for key, value in options.items()}
    # HARBOR_ASSUME_* over the file's [assume], as every variable is over the file.
    from_env = Assumed.of({}, "", env)
    assumed = Assumed({**from_file.adopted, **from_env.adopted}, {**from_file.sources, **from_env.sources})
    return _resolve(chosen, config_file, assumed)


def _resolve(chosen: Mapping[str, tuple[object, str]], config_file: Path | None, assumed: Assumed) -> Settings:
    def get(key: str) -> tuple[object, str] | None:
        return chosen.get(key)

    token_url = get("token_url")
    target_value = get("target")
    token = _text(*token_url) if token_url else None
    if target_value:
        target = parse_target(_text(*target_value), token_url=token, source=target_value[1])
    else:
        target = parse_target("local", token_url=token)

    values: dict[str, Any] = {"target": target, "config_file": config_file, "assume": assumed}
    for key in ("client_id", "second_client_id"):
        if (item := get(key)) is not None:
            values[key] = _text(*item)
    for key in ("client_secret", "second_client_secret"):
        if (item := get(key)) is not None:
            values[key] = Secret(_text(*item))  # only ever from the environment (see _file_settings)

    tower = get("tower_id")
    if tower is not None:
        try:
            values["tower_id"] = TowerId(_text(*tower))
        except InvalidTowerId as exc:
            raise UsageError(f"{tower[1]} {exc}") from None
    elif target.kind is not TargetKind.LOCAL:
        values["tower_id"] = None  # Harbor's towers are the user's to name

    ble = get("ble")
    # Harbor's towers are real ones; local and URL targets are virtual sandboxes (doors via /_sim or the radio).
    harbor = target.kind in (TargetKind.SANDBOX, TargetKind.PRODUCTION)
    values["ble"] = _ble(*ble) if ble else (BleBackend.BLEAK if harbor else BleBackend.VIRTUAL)

    values["allow_production_writes"] = _production_opt_in(get("allow_production_writes"))
    values["allow_insecure_http"] = _insecure_http_opt_in(get("allow_insecure_http"))
    _check_transport(target, values["allow_insecure_http"])
    for key in ("reports_dir", "state_dir"):
        if (item := get(key)) is not None:
            values[key] = _folder(*item)
    for key in ("timeout", "connect_timeout", "status_timeout"):
        if (item := get(key)) is not None:
            values[key] = _seconds(*item)
    return Settings(**values)


def _insecure_http_opt_in(item: tuple[object, str] | None) -> bool:
    if item is None:
        return False
    value, source = item
    if isinstance(value, bool):  # the option
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes"):
        return True
    if text in ("0", "false", "no"):
        return False
    raise UsageError(f"{source} must be 1 or 0, not {value!r}")


def _production_opt_in(item: tuple[object, str] | None) -> bool:
    if item is None:
        return False
    value, source = item
    if value is True:  # the command-line flag
        return True
    if value is False:
        return False
    if str(value).strip() == PRODUCTION_WRITES_VALUE:
        return True
    raise UsageError(f"{source} must be exactly {PRODUCTION_WRITES_VALUE} to allow writes to production")


# -- the same table in reverse: a child process's environment -------------------------------------

#: Settings a child process is not handed: it writes under its stage's folder (``reports_dir``), and
#: reads no configuration file (``config``: everything it needs is resolved here and passed on).
_NOT_PASSED_ON: Final = frozenset({"reports_dir", "config"})


def target_environment(settings: Settings, *, seed: int) -> dict[str, str]:
    """``HARBOR_*`` variables that point a child process (pytest, Locust) at this run's target:
    ``ENVIRONMENT`` in reverse, plus the run's seed (``LOCKER_HARNESS_SEED``).

    Secrets travel in the environment only, never on a command line (``ps`` shows those).
    The embedded sandbox is passed as its URL: the child tests the very sandbox this run
    started, with its bug switches and faults. Both opt-ins are written out either way, so a child
    never inherits one from the parent's environment unasked.
    """
    env = {
        variable: value
        for variable, key in ENVIRONMENT.items()
        if key not in _NOT_PASSED_ON and (value := _passed_on(settings, key)) is not None
    }
    env["LOCKER_HARNESS_SEED"] = str(seed)
    # The child reads no configuration file: the adopted assumptions travel as HARBOR_ASSUME_*.
    env |= settings.assume.environment()
    return env


def _passed_on(settings: Settings, key: str) -> str | None:
    """The value of ``ENVIRONMENT``'s ``key`` that gives a child these settings, or ``None`` to leave it unset."""
    target = settings.target
    served_here = target.kind in (TargetKind.LOCAL, TargetKind.URL) and target.api_url is not None
    match key:
        case "target":
            return target.api_url if served_here and target.api_url else target.name
        case "token_url":
            return target.token_url if served_here and target.token_url else None
        case "client_id" | "second_client_id" | "tower_id":
            value = getattr(settings, key)
            return None if value is None else str(value)
        case "client_secret" | "second_client_secret":
            secret: Secret | None = getattr(settings, key)
            return None if secret is None else secret.reveal()
        case "ble":
            return settings.ble.value
        case "allow_production_writes":
            return PRODUCTION_WRITES_VALUE if settings.allow_production_writes else None
        case "allow_insecure_http":
            return "1" if settings.allow_insecure_http else "0"
        case "state_dir":
            # Absolute: a child runs from the checkout, and its ledger rows belong with this run's.
            return str(settings.state_dir.resolve())
        case "timeout" | "connect_timeout" | "status_timeout":
            return repr(getattr(settings, key))
    raise ValueError(f"no rule to pass {key!r} on to a child process")
