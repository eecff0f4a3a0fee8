"""Configuration: target parsing, precedence of the three sources, and every bad input."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from harness.config import (
    CONFIG_FILE_NAME,
    DEFAULT_LOCAL_TOWER,
    ENVIRONMENT,
    FILE_KEYS,
    MAX_CONFIG_BYTES,
    PROJECT_ROOT,
    BleBackend,
    Secret,
    Settings,
    Target,
    TargetKind,
    is_loopback_host,
    load_settings,
    parse_target,
    target_environment,
)
from harness.errors import UsageError
from harness.model import TowerId

SANDBOX_TOKEN = "https://accounts.sandbox.harborlockers.com/realms/harbor/protocol/openid-connect/token"


def load(
    options: dict[str, object] | None = None, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Settings:
    return load_settings(options, environ=env or {}, cwd=cwd or Path("/nonexistent-dir"))


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- targets ------------------------------------------------------------------------------------


def test_default_target_is_local_with_the_seeded_tower() -> None:
    """With nothing configured, the target is the embedded sandbox and its seeded tower."""
    settings = load()
    assert settings.target == Target.local()
    assert settings.target.api_url is None
    assert settings.tower_id == DEFAULT_LOCAL_TOWER
    assert settings.ble is BleBackend.VIRTUAL


def test_sandbox_target_uses_harbors_hosts() -> None:
    """``sandbox`` points at Harbor's sandbox API, SDK base and Keycloak token URL (reference 1)."""
    target = parse_target("sandbox")
    assert target.kind is TargetKind.SANDBOX
    assert target.api_url == "https://api.sandbox.harborlockers.com"
    assert target.sdk_url == "https://api.sandbox.harborlockers.com/sdk/v1/"
    assert target.token_url == SANDBOX_TOKEN


def test_production_target_uses_harbors_hosts() -> None:
    """``production`` points at Harbor's production hosts."""
    target = parse_target("PRODUCTION")
    assert target.is_production
    assert target.api_url == "https://api.harborlockers.com"
    assert target.token_url == "https://accounts.harborlockers.com/realms/harbor/protocol/openid-connect/token"


def test_url_target_serves_its_own_token_endpoint() -> None:
    """Any other URL is its own API and token host (a second virtual sandbox, a staging server)."""
    target = parse_target("http://127.0.0.1:8765/")
    assert target.kind is TargetKind.URL
    assert target.api_url == "http://127.0.0.1:8765"
    assert target.name == "http://127.0.0.1:8765"
    assert target.token_url == "http://127.0.0.1:8765/realms/harbor/protocol/openid-connect/token"


def test_url_naming_a_harbor_host_is_that_target() -> None:
    """Spelling out production's URL still makes it production, so the write guard holds."""
    assert parse_target("https://api.harborlockers.com").kind is TargetKind.PRODUCTION
    assert parse_target("https://API.sandbox.harborlockers.com/").kind is TargetKind.SANDBOX


@pytest.mark.parametrize(
    "url",
    [
        "https://api.harborlockers.com:443",
        "https://api.harborlockers.com./",
        "HTTPS://API.HARBORLOCKERS.COM.:443/",
        "https://api.harborlockers.com:8443",
    ],
)
def test_any_spelling_of_productions_host_keeps_the_guard(url: str) -> None:
    """A port, a trailing dot or upper case still name production: writes refused, load refused."""
    settings = load({"target": url})
    assert settings.target.kind is TargetKind.PRODUCTION
    with pytest.raises(UsageError, match="refusing to reserve a locker on production"):
        settings.check_writes_allowed("reserve a locker")


@pytest.mark.parametrize("url", ["http://api.harborlockers.com", "http://api.sandbox.harborlockers.com.:80/"])
def test_plain_http_to_harbor_is_refused(url: str) -> None:
    """Harbor's hosts are only ever reached over https."""
    with pytest.raises(UsageError, match="use https://"):
        load({"target": url})


def test_plain_http_to_another_machine_is_refused() -> None:
    """http:// to a host other than loopback would send the client secret in clear: a usage error."""
    with pytest.raises(UsageError, match="HARBOR_ALLOW_INSECURE_HTTP=1") as caught:
        load({"target": "http://staging.example:8765"})
    assert "\n" not in str(caught.value)
    with pytest.raises(UsageError, match=r"token URL http://kc\.example/token"):
        load(env={"HARBOR_TARGET": "sandbox", "HARBOR_TOKEN_URL": "http://kc.example/token"})


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8765", "http://localhost:8765", "http://[::1]:8765", "http://127.9.0.1"]
)
def test_plain_http_to_loopback_is_accepted(url: str) -> None:
    """A sandbox on this machine (``locker-harness sim``) is reached over plain http."""
    assert load({"target": url}).target.kind is TargetKind.URL


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True), ("LocalHost.", True),
     ("0.0.0.0", False), ("10.0.0.5", False), ("example.com", False), ("localhost.example.com", False)],
)  # fmt: skip
def test_loopback_hosts(host: str, loopback: bool) -> None:
    """Names and addresses of this machine are loopback; any other host, and the wildcard, are not."""
    assert is_loopback_host(host) is loopback


def test_insecure_http_opt_in() -> None:
    """HARBOR_ALLOW_INSECURE_HTTP=1 (or the option) accepts http:// to another machine; never from a file."""
    assert load(env={"HARBOR_TARGET": "http://10.0.0.5:8765", "HARBOR_ALLOW_INSECURE_HTTP": "1"}).target.api_url == (
        "http://10.0.0.5:8765"
    )
    assert load({"target": "http://10.0.0.5:8765", "allow_insecure_http": True}).target.kind is TargetKind.URL
    with pytest.raises(UsageError, match="HARBOR_ALLOW_INSECURE_HTTP must be 1 or 0"):
        load(env={"HARBOR_TARGET": "http://10.0.0.5", "HARBOR_ALLOW_INSECURE_HTTP": "maybe"})


def test_token_url_override() -> None:
    """``HARBOR_TOKEN_URL`` replaces the token endpoint of a Harbor target."""
    settings = load(env={"HARBOR_TARGET": "sandbox", "HARBOR_TOKEN_URL": "https://kc.example/realms/x/token"})
    assert settings.target.token_url == "https://kc.example/realms/x/token"


def test_running_local_target_gets_urls() -> None:
    """A started sandbox binds the local target to its URL and token endpoint."""
    target = Target.local().running_at("http://127.0.0.1:4321")
    assert target.api_url == "http://127.0.0.1:4321"
    assert target.token_url == "http://127.0.0.1:4321/realms/harbor/protocol/openid-connect/token"
    assert target.name == "local"


# -- precedence ---------------------------------------------------------------------------------


def test_options_beat_environment_beat_file(tmp_path: Path) -> None:
    """Command-line options override HARBOR_* variables, which override the config file."""
    write(tmp_path, "locker-harness.toml", 'target = "https://file.test"\ntimeout = 3\nstate_dir = "from-file"\n')
    env = {"HARBOR_TARGET": "https://env.test", "HARBOR_TIMEOUT": "4"}
    settings = load({"target": "https://option.test"}, env, tmp_path)
    assert settings.target.api_url == "https://option.test"
    assert settings.timeout == 4.0
    assert settings.state_dir == Path("from-file")
    assert load(None, env, tmp_path).target.api_url == "https://env.test"
    assert load(None, {}, tmp_path).target.api_url == "https://file.test"
    assert load(None, {}, tmp_path).config_file == tmp_path / "locker-harness.toml"


def test_pyproject_table_is_read(tmp_path: Path) -> None:
    """``[tool.locker-harness]`` in pyproject.toml configures the harness when no locker-harness.toml exists."""
    write(tmp_path, "pyproject.toml", '[project]\nname = "x"\n[tool.locker-harness]\ntower_id = "0100000000000175"\n')
    assert load(cwd=tmp_path).tower_id == "0100000000000175"


def test_pyproject_without_table_is_ignored(tmp_path: Path) -> None:
    """A pyproject.toml without the harness's table contributes nothing."""
    write(tmp_path, "pyproject.toml", '[project]\nname = "x"\n[tool.other]\nanything = 1\n')
    settings = load(cwd=tmp_path)
    assert settings.config_file is None
    assert settings.target == Target.local()


def test_locker_harness_toml_wins_over_pyproject(tmp_path: Path) -> None:
    """When both files exist, locker-harness.toml is the one read."""
    write(tmp_path, "pyproject.toml", "[tool.locker-harness]\ntimeout = 7\n")
    write(tmp_path, "locker-harness.toml", "timeout = 8\n")
    assert load(cwd=tmp_path).timeout == 8.0


def test_explicit_config_file(tmp_path: Path) -> None:
    """``--config`` (or HARBOR_CONFIG) names the file to read."""
    path = write(tmp_path, "elsewhere.toml", "status_timeout = 2.5\n")
    assert load({"config": str(path)}).status_timeout == 2.5
    assert load(env={"HARBOR_CONFIG": str(path)}).status_timeout == 2.5


def test_every_environment_variable_is_read() -> None:
    """Each documented HARBOR_* variable reaches its setting."""
    env = {
        "HARBOR_TARGET": "sandbox",
        "HARBOR_CLIENT_ID": "me",
        "HARBOR_CLIENT_SECRET": "s3cret-value",
        "HARBOR_SECOND_CLIENT_ID": "other",
        "HARBOR_SECOND_CLIENT_SECRET": "other-secret",
        "HARBOR_TOWER_ID": "0100000000000014",
        "HARBOR_TOKEN_URL": "https://kc.example/token",
        "HARBOR_BLE": "virtual",
        "HARBOR_ALLOW_PRODUCTION_WRITES": "yes-write-to-production",
        "HARBOR_ALLOW_INSECURE_HTTP": "0",
        "HARBOR_REPORTS_DIR": "out",
        "HARBOR_STATE_DIR": "state",
        "HARBOR_TIMEOUT": "11",
        "HARBOR_CONNECT_TIMEOUT": "2",
        "HARBOR_STATUS_TIMEOUT": "9",
    }
    assert set(env) | {"HARBOR_CONFIG"} == set(ENVIRONMENT)
    settings = load(env=env)
    assert settings.credentials().client_id == "me"
    assert settings.credentials().client_secret == Secret("s3cret-value")
    assert settings.second_credentials().client_id == "other"
    assert settings.tower() == "0100000000000014"
    assert settings.target.token_url == "https://kc.example/token"
    assert settings.ble is BleBackend.VIRTUAL
    assert settings.allow_production_writes
    assert (settings.reports_dir, settings.state_dir) == (Path("out"), Path("state"))
    assert (settings.timeout, settings.connect_timeout, settings.status_timeout) == (11.0, 2.0, 9.0)


def test_every_file_key_is_read(tmp_path: Path) -> None:
    """Each documented file key reaches its setting."""
    text = "\n".join(
        [
            'target = "sandbox"',
            'tower_id = "0100000000000175"',
            'client_id = "file-client"',
            'second_client_id = "file-second"',
            'token_url = "https://kc.example/token"',
            'ble = "bleak"',
            'reports_dir = "r"',
            'state_dir = "s"',
            "timeout = 1",
            "connect_timeout = 1.5",
            "status_timeout = 30",
        ]
    )
    write(tmp_path, "locker-harness.toml", text)
    keys = {line.split(" =")[0] for line in text.splitlines()}
    assert keys == FILE_KEYS
    settings = load(cwd=tmp_path)
    assert (settings.client_id, settings.second_client_id) == ("file-client", "file-second")
    assert settings.tower_id == "0100000000000175"
    assert settings.status_timeout == 30.0


def test_production_flag_option_left_false_does_not_mask_environment() -> None:
    """A flag left at False is 'not given': the environment's opt-in still counts."""
    env = {"HARBOR_TARGET": "production", "HARBOR_ALLOW_PRODUCTION_WRITES": "yes-write-to-production"}
    assert load({"allow_production_writes": False}, env).allow_production_writes


def test_tower_id_any_case_is_kept_upper() -> None:
    """Tower ids are accepted in any case (and around spaces) and kept upper-case, as the SDK sends them."""
    tower = load(env={"HARBOR_TOWER_ID": " 01000000000000aB "}).tower_id
    assert tower == "01000000000000AB" and isinstance(tower, TowerId)
    assert load({"tower_id": "0100000000000abc"}).tower_id == "0100000000000ABC"


def test_harbor_target_has_no_default_tower() -> None:
    """Harbor's towers are the user's to name: no default tower outside the embedded sandbox."""
    settings = load(env={"HARBOR_TARGET": "sandbox"})
    assert settings.tower_id is None
    with pytest.raises(UsageError, match="HARBOR_TOWER_ID"):
        settings.tower()


# -- secrets and the production guard -----------------------------------------------------------


def test_secret_never_shows_its_value() -> None:
    """repr, str and f-strings of a Secret hide the value; reveal() is the one way in."""
    secret = Secret("hunter2-but-longer")
    for shown in (repr(secret), str(secret), f"{secret}", repr(load(env={"HARBOR_CLIENT_SECRET": "hunter2-xx"}))):
        assert "hunter2" not in shown
    assert secret.reveal() == "hunter2-but-longer"


def test_settings_repr_hides_secrets() -> None:
    """Printing Settings (e.g. in --verbose) never shows a client secret."""
    settings = load(
        env={
            "HARBOR_CLIENT_ID": "me",
            "HARBOR_CLIENT_SECRET": "very-secret-1",
            "HARBOR_SECOND_CLIENT_SECRET": "very-secret-2",
        }
    )
    assert "very-secret" not in repr(settings)


def test_sandbox_without_credentials_names_the_variables() -> None:
    """Asking for credentials that are not set names the variables to set."""
    settings = load(env={"HARBOR_TARGET": "sandbox", "HARBOR_CLIENT_ID": "me"})
    with pytest.raises(UsageError, match=r"set HARBOR_CLIENT_SECRET$"):
        settings.credentials()
    with pytest.raises(UsageError, match="set HARBOR_SECOND_CLIENT_ID and HARBOR_SECOND_CLIENT_SECRET"):
        settings.second_credentials()


def test_production_writes_refused_without_opt_in() -> None:
    """A write against production is a UsageError naming the opt-in."""
    settings = load(env={"HARBOR_TARGET": "production"})
    with pytest.raises(UsageError, match="i-understand-this-writes-to-production"):
        settings.check_writes_allowed("reserve a locker")
    load({"allow_production_writes": True}, {"HARBOR_TARGET": "production"}).check_writes_allowed("reserve a locker")
    load(env={"HARBOR_TARGET": "sandbox"}).check_writes_allowed("reserve a locker")


# -- bad input: one UsageError each, with a one-line message --------------------------------------

BAD_OPTIONS = [
    ({"target": "staging"}, "unknown target 'staging'"),
    ({"target": "ftp://host"}, "not a valid URL"),
    ({"target": "http://"}, "not a valid URL"),
    ({"target": "http://host:99999"}, "not a valid URL"),
    ({"target": "http://host/x?y=1"}, "must not carry a query"),
    ({"tower_id": "01000000000000"}, "not a tower id"),
    ({"tower_id": "010000000000001G"}, "not a tower id"),
    ({"timeout": "soon"}, "number of seconds"),
    ({"timeout": "0"}, "more than 0"),
    ({"status_timeout": "nan"}, "more than 0"),
    ({"ble": "usb"}, "virtual or bleak"),
]


@pytest.mark.parametrize(("options", "message"), BAD_OPTIONS, ids=[m for _, m in BAD_OPTIONS])
def test_bad_option_is_one_line_usage_error(options: dict[str, object], message: str) -> None:
    """Each malformed option is a UsageError with one line naming the problem."""
    with pytest.raises(UsageError) as caught:
        load(options)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


BAD_ENVIRONMENT = [
    ({"HARBOR_TARGET": "nowhere"}, "unknown target"),
    ({"HARBOR_ALLOW_PRODUCTION_WRITES": "yes"}, "must be exactly yes-write-to-production"),
    ({"HARBOR_TOKEN_URL": "not a url", "HARBOR_TARGET": "sandbox"}, "token URL"),
    ({"HARBOR_TOKEN_URL": "https://kc.example/token"}, "cannot be used with target local"),
    ({"HARBOR_CONFIG": "/no/such/file.toml"}, "does not exist"),
    ({"HARBOR_TOWER_ID": "xyz"}, "HARBOR_TOWER_ID 'xyz' is not a tower id"),
]


@pytest.mark.parametrize(("env", "message"), BAD_ENVIRONMENT, ids=[m for _, m in BAD_ENVIRONMENT])
def test_bad_environment_is_one_line_usage_error(env: dict[str, str], message: str) -> None:
    """Each malformed HARBOR_* variable is a UsageError naming the variable or the problem."""
    with pytest.raises(UsageError) as caught:
        load(env=env)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


BAD_FILES = [
    ("target = [", "is not valid TOML"),
    ('client_secret = "abc"', "secrets are read only from the environment"),
    ('second_client_secret = "abc"', "set HARBOR_SECOND_CLIENT_SECRET"),
    ("allow_production_writes = true", "never read from a file"),
    ("allow_insecure_http = true", "never allowed from a file"),
    ("tower = 1", "unknown key 'tower'"),
    ('timeout = "fast"', "timeout in"),
    ("target = 3", "must be a non-empty string"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES, ids=[m for _, m in BAD_FILES])
def test_bad_config_file_is_one_line_usage_error(tmp_path: Path, text: str, message: str) -> None:
    """A malformed file, a secret in a file or an unknown key is a UsageError with one line."""
    write(tmp_path, "locker-harness.toml", text + "\n")
    with pytest.raises(UsageError) as caught:
        load(cwd=tmp_path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_secret_in_pyproject_is_refused(tmp_path: Path) -> None:
    """The pyproject table is held to the same rule: no secrets in files."""
    write(tmp_path, "pyproject.toml", '[tool.locker-harness]\nclient_secret = "abc"\n')
    with pytest.raises(UsageError, match=r"client_secret found in \[tool.locker-harness\]"):
        load(cwd=tmp_path)


# -- configuration files that are not what they seem ----------------------------------------------


def test_a_tool_key_that_is_not_a_table_is_one_usage_error(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", "tool = 5\n")
    with pytest.raises(UsageError, match=r"tool in .*pyproject.toml must be a table"):
        load(cwd=tmp_path)


def test_a_config_that_is_not_a_regular_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    """/dev/zero would be read without end, a FIFO would block for ever: both are refused at once."""
    with pytest.raises(UsageError, match="/dev/zero is not a regular file"):
        load(env={"HARBOR_CONFIG": "/dev/zero"})
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match=r"fifo\.toml is not a regular file"):
        load(env={"HARBOR_CONFIG": str(fifo)})


def test_a_config_file_is_size_bounded(tmp_path: Path) -> None:
    big = write(tmp_path, "big.toml", "# " + "x" * MAX_CONFIG_BYTES + "\n")
    with pytest.raises(UsageError, match="larger than 1024 KiB"):
        load(env={"HARBOR_CONFIG": str(big)})


def test_dangling_and_looping_config_links_are_errors_not_silence(tmp_path: Path) -> None:
    """A link to nothing where the config file should be is said, never skipped as if absent."""
    (tmp_path / CONFIG_FILE_NAME).symlink_to(tmp_path / "nowhere.toml")
    with pytest.raises(UsageError, match="symbolic link to nothing"):
        load(cwd=tmp_path)
    (tmp_path / CONFIG_FILE_NAME).unlink()
    (tmp_path / "loop.toml").symlink_to(tmp_path / "loop.toml")
    (tmp_path / CONFIG_FILE_NAME).symlink_to(tmp_path / "loop.toml")
    with pytest.raises(UsageError, match="Too many levels of symbolic links"):
        load(cwd=tmp_path)


def test_toml_nested_too_deep_is_invalid_toml(tmp_path: Path) -> None:
    deep = write(tmp_path, "deep.toml", "a = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(UsageError, match="nested too deeply"):
        load(env={"HARBOR_CONFIG": str(deep)})


@pytest.mark.parametrize("key", ["state_dir", "reports_dir"])
def test_folders_with_a_nul_or_control_character_are_refused(tmp_path: Path, key: str) -> None:
    write(tmp_path, CONFIG_FILE_NAME, f'{key} = "a\\u0000b"\n')
    with pytest.raises(UsageError, match="holds a control character"):
        load(cwd=tmp_path)
    with pytest.raises(UsageError, match="holds a control character"):
        load(env={"HARBOR_" + key.upper(): "a\x01b"})


# -- a child process's environment: the same table in reverse ---------------------------------------


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"HARBOR_TARGET": "http://127.0.0.1:8765", "HARBOR_CLIENT_ID": "me", "HARBOR_CLIENT_SECRET": "s3cret"},
        {
            "HARBOR_TARGET": "production",
            "HARBOR_TOWER_ID": "0100000000000abc",
            "HARBOR_SECOND_CLIENT_ID": "two",
            "HARBOR_SECOND_CLIENT_SECRET": "other",
            "HARBOR_BLE": "virtual",
            "HARBOR_ALLOW_PRODUCTION_WRITES": "yes-write-to-production",
            "HARBOR_TIMEOUT": "2.5",
            "HARBOR_CONNECT_TIMEOUT": "1",
            "HARBOR_STATUS_TIMEOUT": "30",
            "HARBOR_STATE_DIR": "/tmp/state",
        },
        {
            "HARBOR_TARGET": "http://10.0.0.9:8000",
            "HARBOR_ALLOW_INSECURE_HTTP": "1",
            "HARBOR_TOKEN_URL": "http://10.0.0.9:9/t",
        },
    ],
)
def test_a_child_given_target_environment_resolves_the_same_settings(env: dict[str, str]) -> None:
    """``target_environment`` is ``ENVIRONMENT`` in reverse: a child reading it resolves the parent's settings."""
    parent = load(env=env)
    child = load(env=target_environment(parent, seed=7))
    # The state folder travels absolute: the child runs from the checkout, not the parent's folder.
    assert child == dataclasses.replace(parent, state_dir=parent.state_dir.resolve())
    assert target_environment(parent, seed=7)["LOCKER_HARNESS_SEED"] == "7"


def test_a_child_is_never_handed_an_opt_in_it_was_not_given() -> None:
    """Both opt-ins are written out either way, so a child cannot inherit one from the parent's environment."""
    env = target_environment(load(), seed=0)
    assert env["HARBOR_ALLOW_INSECURE_HTTP"] == "0" and "HARBOR_ALLOW_PRODUCTION_WRITES" not in env
    assert not {"HARBOR_REPORTS_DIR", "HARBOR_CONFIG"} & set(env)


def test_project_root_is_the_checkout() -> None:
    """``PROJECT_ROOT`` is the checkout the harness runs from (where loadtests/ and contracts/ live)."""
    assert (PROJECT_ROOT / "harness" / "config.py").is_file() and (PROJECT_ROOT / "loadtests").is_dir()
