"""Settings from a TOML file and the environment; every bad value named by its key."""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from pbxbridge.cli.common import add_common_options, config_from_args
from pbxbridge.config import SECTIONS, Config, ConfigError, PbxConfig, load_config

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config" / "pbxbridge.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pbxbridge.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path | None, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, env or {})
    return info.value.problems


def test_defaults_without_a_file() -> None:
    config = load_config(None, {})
    assert config.database.url == "sqlite:///var/pbxbridge.sqlite3"
    assert config.phone.default_region == "RU"
    assert [p.name for p in config.pbx] == ["main"]
    assert config.pbx[0].port == 5038 and "from-trunk" in config.pbx[0].inbound_contexts
    assert config.kpi.timezone == "Europe/Moscow"
    assert config.transcription.beam_size == 5


def test_example_file_documents_every_key_with_default_values() -> None:
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    for section, cls in SECTIONS.items():
        assert set(data[section]) == {f.name for f in dataclasses.fields(cls)}, section
    assert set(data["pbx"][0]) == {f.name for f in dataclasses.fields(PbxConfig)}
    # Each key, or the group of keys it stands in, has a comment right above it.
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()

    def is_key(line: str) -> bool:
        return "=" in line and not line.startswith(("#", "["))

    for i, line in enumerate(lines):
        if is_key(line):
            j = i - 1
            while is_key(lines[j]):
                j -= 1
            assert lines[j].startswith("#"), f"no comment for {line!r}"
    assert load_config(EXAMPLE, {}) == Config()


def test_file_values_are_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[database]
url = "postgresql://pbx@db:5432/pbxbridge"
[[pbx]]
name = "office"
host = "10.0.0.5"
secret = "s3cret"
[[pbx]]
name = "warehouse"
host = "10.0.1.5"
port = 5039
[managers]
"201" = "Ivan Petrov"
""",
    )
    config = load_config(path, {})
    assert config.database.url == "postgresql://pbx@db:5432/pbxbridge"
    assert [(p.name, p.host, p.port) for p in config.pbx] == [("office", "10.0.0.5", 5038), ("warehouse", "10.0.1.5", 5039)]
    assert config.pbx_by_name("office").secret == "s3cret"
    assert config.managers == {"201": "Ivan Petrov"}


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[web]\nport = 8080\n[[pbx]]\nname = "office"\nhost = "10.0.0.5"\n')
    env = {
        "PBXBRIDGE_WEB__PORT": "9090",
        "PBXBRIDGE_KPI__LOST_LEAD_AFTER_S": "600",
        "PBXBRIDGE_PBX__OFFICE__SECRET": "from-env",
        "PBXBRIDGE_PBX__OFFICE__INBOUND_CONTEXTS": "from-carrier, from-trunk",
        "PBXBRIDGE_MANAGERS__202": "Anna Kuznetsova",
        "PBXBRIDGE_LOG__LEVEL": "DEBUG",
        "UNRELATED": "x",
    }
    config = load_config(path, env)
    assert config.web.port == 9090
    assert config.kpi.lost_lead_after_s == 600
    office = config.pbx_by_name("office")
    assert office.secret == "from-env" and office.host == "10.0.0.5"
    assert office.inbound_contexts == ("from-carrier", "from-trunk")
    assert config.managers == {"202": "Anna Kuznetsova"}
    assert config.log.level == "DEBUG"


def test_environment_can_add_a_pbx_and_change_the_default_one() -> None:
    config = load_config(None, {"PBXBRIDGE_PBX__MAIN__HOST": "pbx.example.net", "PBXBRIDGE_PBX__MAIN__PORT": "5040"})
    assert [(p.name, p.host, p.port) for p in config.pbx] == [("main", "pbx.example.net", 5040)]


def test_every_bad_value_is_reported_with_its_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[database]
url = "mysql://pbx@db/pbx"
[phone]
default_region = "XX"
[kpi]
timezone = "Mars/Olympus"
service_level_s = -1
[web]
port = 70000
colour = "blue"
[[pbx]]
name = "main"
port = "abc"
extension_pattern = "(["
[log]
level = "LOUD"
[bogus]
x = 1
""",
    )
    problems = problems_of(path, {"PBXBRIDGE_TRANSCRIPTION__BEAM_SIZE": "wide"})
    assert "pbx.main.port: must be an integer 1-65535, got 'abc'" in problems
    keys = {p.split(":", 1)[0] for p in problems}
    assert keys == {
        "database.url",
        "phone.default_region",
        "kpi.timezone",
        "kpi.service_level_s",
        "web.port",
        "web.colour",
        "pbx.main.port",
        "pbx.main.extension_pattern",
        "log.level",
        "bogus",
        "transcription.beam_size",
    }
    assert any(p.startswith("web.colour: unknown key") for p in problems)
    assert any("'XX'" in p for p in problems if p.startswith("phone.default_region"))


def test_bad_env_value_named_by_key() -> None:
    problems = problems_of(
        None, {"PBXBRIDGE_PBX__MAIN__PORT": "abc", "PBXBRIDGE_WEB__PORT": "65536", "PBXBRIDGE_ROUTING__AGI_PORT": "0"}
    )
    # A port pbxbridge listens on may be 0 (any free one); the PBX's it connects to may not.
    assert problems == [
        "pbx.main.port: must be an integer 1-65535, got 'abc'", "web.port: must be an integer 0-65535, got 65536"
    ]


def test_unreadable_toml_is_a_config_error(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, "[database\nurl = 1"))
    assert len(problems) == 1 and "not valid TOML" in problems[0]


def test_command_line_overrides_database_and_recordings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[database]\nurl = "sqlite:///from-file.sqlite3"\n')
    monkeypatch.setenv("PBXBRIDGE_CONFIG", str(path))
    monkeypatch.setenv("PBXBRIDGE_RECORDINGS__ROOT", "/from/env")
    parser = argparse.ArgumentParser()
    add_common_options(parser)
    assert config_from_args(parser.parse_args([])).database.url == "sqlite:///from-file.sqlite3"
    args = parser.parse_args(["--db", "postgresql://u@h/db", "--recordings", "/srv/rec"])
    config = config_from_args(args)
    assert config.database.url == "postgresql://u@h/db" and config.recordings.root == "/srv/rec"
    with pytest.raises(ConfigError) as info:
        config_from_args(parser.parse_args(["--db", "oracle://x"]))
    assert info.value.problems[0].startswith("database.url:")


def run_check(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PBXBRIDGE_")}
    return subprocess.run(
        [sys.executable, "-m", "pbxbridge", "check-config", *args],
        capture_output=True,
        text=True,
        env={**clean, **env},
        cwd=REPO,
        timeout=120,
    )


def test_check_config_command(tmp_path: Path) -> None:
    good = run_check(["--config", str(EXAMPLE)], {})
    assert good.returncode == 0 and good.stdout.strip() == "ok"

    bad = write(tmp_path, '[phone]\ndefault_region = "XX"\n[kpi]\ntimezone = "Nowhere/Town"\n')
    result = run_check([], {"PBXBRIDGE_CONFIG": str(bad), "PBXBRIDGE_PBX__MAIN__PORT": "abc"})
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert "pbx.main.port: must be an integer 1-65535, got 'abc'" in lines
    assert {line.split(":", 1)[0] for line in lines} == {"pbx.main.port", "phone.default_region", "kpi.timezone"}
