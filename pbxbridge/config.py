"""Settings: a TOML file, environment overrides, and validation that names every bad key."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
import typing
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import phonenumbers

ENV_PREFIX = "PBXBRIDGE_"
CONFIG_ENV = "PBXBRIDGE_CONFIG"

# FreePBX's contexts in which a call from a carrier starts.
FREEPBX_INBOUND_CONTEXTS: tuple[str, ...] = (
    "from-trunk",
    "from-pstn",
    "from-did-direct",
    "ext-did",
    "from-sip-external",
)


class ConfigError(Exception):
    """Raised with every problem found, each prefixed by its dotted key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))
        self.problems = problems


@dataclass(slots=True)
class DatabaseConfig:
    url: str = "sqlite:///var/pbxbridge.sqlite3"


@dataclass(slots=True)
class RecordingsConfig:
    # Where the PBX's monitor directory is mounted or synced on this host.
    root: str = "recordings"
    # The directory MixMonitor writes under on the PBX; stripped from its paths.
    spool_prefix: str = "/var/spool/asterisk/monitor"
    # Where the PBX's voicemail spool (/var/spool/asterisk/voicemail) is mounted or
    # synced: a message a caller left is attached to the call from there.
    voicemail_root: str = "/var/spool/asterisk/voicemail"


@dataclass(slots=True)
class PhoneConfig:
    default_region: str = "RU"


@dataclass(slots=True)
class PbxConfig:
    name: str = "main"
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "pbxbridge"
    secret: str = ""
    inbound_contexts: tuple[str, ...] = FREEPBX_INBOUND_CONTEXTS
    extension_pattern: str = r"^\d{2,5}$"
    # The PBX's asteriskcdrdb for back-fill of calls AMI did not carry
    # (mysql://user:password@host:3306/asteriskcdrdb or postgresql://...); empty: none.
    cdr_url: str = ""
    # The zone of the PBX's clock, in which CEL and CDR keep their times; empty: kpi.timezone.
    cdr_timezone: str = ""


@dataclass(slots=True)
class WebConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    secret_key: str = ""
    # The address others reach the web app at (https://pbx.example.ru): amoCRM fetches recordings there.
    public_url: str = ""
    # Mark session cookies Secure even when a proxy in front speaks HTTPS for us.
    secure_cookies: bool = False
    # The web app's language when neither the user nor the browser says: ru or en.
    language: str = "ru"


@dataclass(slots=True)
class TranscriptionConfig:
    engine: str = "faster-whisper"
    # Empty: the Whisper base model installed with pbxbridge[model].
    model: str = ""
    device: str = "cpu"
    # auto: int8 on a CPU, float16 on a GPU.
    compute_type: str = "auto"
    language: str = "ru"
    beam_size: int = 5
    threads: int = 2
    # Worker processes the daemon starts itself; 0 when pbxbridge-transcriber@ units run them.
    workers: int = 1
    max_attempts: int = 3
    # Skip silence before decoding: Whisper invents words in long silences.
    vad: bool = True
    # Who speaks on the left and right channel of a two-channel recording.
    channel_speakers: tuple[str, ...] = ("client", "manager")
    # Whisper's re-decoding at rising temperatures when output looks wrong (slower).
    temperature_fallback: bool = False
    # Product, company and place names the model should spell as written here
    # (["Гимпульс", "Фитнес Плюс"]); a one-word name heard as these letters is written so.
    vocabulary: tuple[str, ...] = ()
    # faster-whisper's batched pipeline (with vad on): speech chunks decoded side by side, each once;
    # less CPU on some calls, but it can drop a chunk's last sentence.
    batched: bool = False


@dataclass(slots=True)
class KpiConfig:
    timezone: str = "Europe/Moscow"
    lost_lead_after_s: int = 900
    short_abandon_s: int = 5
    service_level_s: int = 20
    daily_outbound_norm: int = 30
    # Warn this long before a missed caller becomes a lost lead.
    alert_before_s: int = 300


@dataclass(slots=True)
class RoutingConfig:
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    ring_timeout_s: int = 20
    max_waiting: int = 2
    policy: str = "least_busy"


@dataclass(slots=True)
class ClickToCallConfig:
    channel: str = "Local/{ext}@from-internal"
    context: str = "from-internal"
    caller_id: str = "{ext}"
    timeout_ms: int = 30000


@dataclass(slots=True)
class LogConfig:
    level: str = "INFO"
    format: str = "json"


@dataclass(slots=True)
class RetentionConfig:
    # Recording files of calls older than this many days are deleted; 0 keeps them forever.
    recordings_days: int = 0
    # Transcripts of calls older than this many days are deleted; 0 keeps them forever.
    transcripts_days: int = 0


@dataclass(slots=True)
class WorkflowConfig:
    # A missed client not reached within this many minutes is shown as overdue.
    callback_due_min: int = 15
    # Which manager a card without one gets from its calls: the first who talked with the
    # client, the latest, or nobody (cards are then assigned by hand only).
    assign_manager: str = "first_answered"
    # How many days back from the newest call the missed-calls list looks; 0: the whole journal.
    missed_days: int = 90


@dataclass(slots=True)
class DemoConfig:
    # auto: demo mode when no PBX is configured beyond the defaults; on/off force it.
    mode: str = "auto"


@dataclass(slots=True)
class Bitrix24Config:
    # The inbound webhook's address, ".../rest/<user>/<token>/"; empty: Bitrix24 is not fed.
    webhook_url: str = ""
    # The inner number a call is put on when it has no manager (nobody's handset rang).
    default_user: str = ""
    # Bitrix24 drains its request counter by 2 a second (5 on Enterprise plans).
    requests_per_s: int = 2
    # The application token Bitrix24 sends with its events (OnExternalCallStart: a click on a number);
    # empty: clicks in Bitrix24 are refused.
    application_token: str = ""


@dataclass(slots=True)
class AmoCrmConfig:
    # https://<subdomain>.amocrm.ru; empty: amoCRM is not fed.
    base_url: str = ""
    # A long-lived token of the integration.
    token: str = ""
    requests_per_s: int = 7
    # How long a call's recording link works (amoCRM plays it from pbxbridge; web.public_url and
    # web.secret_key must be set for calls to carry one).
    link_valid_days: int = 365


@dataclass(slots=True)
class CrmConfig:
    # A delivery the CRM keeps failing becomes a dead letter after this many tries.
    max_attempts: int = 15
    # Waits between tries grow from this to the cap, doubling.
    retry_initial_ms: int = 2000
    retry_max_ms: int = 600_000
    # Delivered rows are kept this many days (what was sent, when), then deleted; 0 keeps them.
    keep_delivered_days: int = 30
    bitrix24: Bitrix24Config = field(default_factory=Bitrix24Config)
    amocrm: AmoCrmConfig = field(default_factory=AmoCrmConfig)


@dataclass(slots=True)
class WebhookConfig:
    url: str = ""
    # Signs every body (HMAC-SHA256); the receiver checks with the same secret.
    secret: str = ""
    # Which events it is sent; empty: all of them.
    events: tuple[str, ...] = ()
    # Names it in the outbox; the URL when empty.
    name: str = ""
    requests_per_s: int = 10


@dataclass(slots=True)
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    recordings: RecordingsConfig = field(default_factory=RecordingsConfig)
    phone: PhoneConfig = field(default_factory=PhoneConfig)
    pbx: list[PbxConfig] = field(default_factory=lambda: [PbxConfig()])
    # Extension -> the manager's name as the sales head knows them.
    managers: dict[str, str] = field(default_factory=dict)
    web: WebConfig = field(default_factory=WebConfig)
    transcription: TranscriptionConfig = field(default_factory=TranscriptionConfig)
    kpi: KpiConfig = field(default_factory=KpiConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    click_to_call: ClickToCallConfig = field(default_factory=ClickToCallConfig)
    log: LogConfig = field(default_factory=LogConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)
    workflow: WorkflowConfig = field(default_factory=WorkflowConfig)
    crm: CrmConfig = field(default_factory=CrmConfig)
    webhooks: list[WebhookConfig] = field(default_factory=list)

    def pbx_by_name(self, name: str) -> PbxConfig:
        """The PBX section with that name (KeyError when none)."""
        for pbx in self.pbx:
            if pbx.name == name:
                return pbx
        raise KeyError(name)


SECTIONS: dict[str, type] = {
    "database": DatabaseConfig,
    "recordings": RecordingsConfig,
    "phone": PhoneConfig,
    "web": WebConfig,
    "transcription": TranscriptionConfig,
    "kpi": KpiConfig,
    "routing": RoutingConfig,
    "click_to_call": ClickToCallConfig,
    "log": LogConfig,
    "retention": RetentionConfig,
    "demo": DemoConfig,
    "workflow": WorkflowConfig,
}

PORT_FIELDS = {"port", "agi_port"}
# Ports pbxbridge listens on rather than connects to: 0 has the system pick a free
# one (the log says which), for daemons started side by side, as the tests start them.
LISTEN_PORT_KEYS = {"web.port", "routing.agi_port"}
POSITIVE_FIELDS = {
    "beam_size", "threads", "max_attempts", "timeout_ms", "ring_timeout_s", "callback_due_min",
    "retry_initial_ms", "retry_max_ms", "requests_per_s",
}
CHOICES: dict[str, tuple[str, ...]] = {
    "log.level": ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
    "log.format": ("json", "text"),
    "transcription.engine": ("faster-whisper", "openai-whisper"),
    "transcription.device": ("cpu", "cuda", "auto"),
    "transcription.compute_type": ("auto", "int8", "int8_float16", "int8_float32", "int16", "float16", "bfloat16", "float32"),
    "routing.policy": ("least_busy", "longest_idle", "round_robin"),
    "demo.mode": ("auto", "on", "off"),
    "web.language": ("ru", "en"),
    "workflow.assign_manager": ("first_answered", "last_answered", "none"),
}
DB_SCHEMES = ("sqlite", "postgresql", "postgres")
PBX_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def _coerce(value: Any, kind: Any, key: str, problems: list[str], from_env: bool) -> Any:
    """Turn a TOML or environment value into the field's type, noting a problem if it won't go."""
    name = key.rsplit(".", 1)[-1]
    if kind is int:
        if isinstance(value, str) and from_env:
            try:
                value = int(value.strip())
            except ValueError:
                pass
        if not isinstance(value, int) or isinstance(value, bool):
            if name in PORT_FIELDS:
                problems.append(f"{key}: must be an integer {_lowest_port(key)}-65535, got {value!r}")
            else:
                problems.append(f"{key}: must be an integer, got {value!r}")
            return None
        return value
    if kind is str:
        if not isinstance(value, str):
            problems.append(f"{key}: must be a string, got {value!r}")
            return None
        return value
    if kind is bool:
        if isinstance(value, str) and from_env:
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
        if not isinstance(value, bool):
            problems.append(f"{key}: must be true or false, got {value!r}")
            return None
        return value
    origin = typing.get_origin(kind)
    if origin in (tuple, list):
        if isinstance(value, str) and from_env:
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError:
                    problems.append(f"{key}: must be a list of strings, got {value!r}")
                    return None
            else:
                value = [part.strip() for part in text.split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(f"{key}: must be a list of strings, got {value!r}")
            return None
        return tuple(value) if origin is tuple else list(value)
    raise TypeError(f"unsupported config field type {kind!r} for {key}")


def _build(cls: type, raw: Mapping[str, Any], prefix: str, problems: list[str], env_keys: set[str]) -> Any:
    """A section dataclass from a mapping, reporting unknown keys and wrong types."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        dotted = f"{prefix}.{key}"
        if key not in hints:
            problems.append(f"{dotted}: unknown key")
            continue
        coerced = _coerce(value, hints[key], dotted, problems, from_env=dotted in env_keys)
        if coerced is not None:
            values[key] = coerced
    return cls(**values)


def _set_path(tree: dict[str, Any], path: list[str], value: str) -> None:
    node = tree
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def _apply_env(data: dict[str, Any], env: Mapping[str, str], problems: list[str]) -> set[str]:
    """Merge PBXBRIDGE_<SECTION>__<KEY> variables into the parsed file; return the dotted keys set."""
    env_keys: set[str] = set()
    for var, value in sorted(env.items()):
        if not var.startswith(ENV_PREFIX) or var == CONFIG_ENV or "__" not in var:
            continue
        parts = var[len(ENV_PREFIX):].split("__")
        section = parts[0].lower()
        if section == "pbx":
            if len(parts) != 3 or not parts[1] or not parts[2]:
                problems.append(f"{var}: expected PBXBRIDGE_PBX__<NAME>__<KEY>")
                continue
            pbx_name, key = parts[1], parts[2].lower()
            entries = data.setdefault("pbx", [])
            if not isinstance(entries, list):
                continue
            target = next(
                (e for e in entries if isinstance(e, dict) and str(e.get("name", "main")).lower() == pbx_name.lower()),
                None,
            )
            if target is None:
                target = {"name": pbx_name.lower()}
                entries.append(target)
            target[key] = value
            env_keys.add(f"pbx.{target.get('name', 'main')}.{key}")
            continue
        if section == "managers":
            if len(parts) != 2 or not parts[1]:
                problems.append(f"{var}: expected PBXBRIDGE_MANAGERS__<EXTENSION>")
                continue
            managers = data.setdefault("managers", {})
            if isinstance(managers, dict):
                managers[parts[1]] = value
            continue
        if section == "crm" and len(parts) == 3 and parts[1] and parts[2]:
            # A CRM's token belongs in the environment, not the file: PBXBRIDGE_CRM__BITRIX24__WEBHOOK_URL.
            _set_path(data, ["crm", parts[1].lower(), parts[2].lower()], value)
            env_keys.add(f"crm.{parts[1].lower()}.{parts[2].lower()}")
            continue
        if len(parts) != 2 or not parts[1]:
            problems.append(f"{var}: expected PBXBRIDGE_<SECTION>__<KEY>")
            continue
        key = parts[1].lower()
        _set_path(data, [section, key], value)
        env_keys.add(f"{section}.{key}")
    return env_keys


def _validate(config: Config, problems: list[str]) -> None:
    """Checks that need more than a type: ranges, choices, regions, zones, URLs."""
    for section_name in SECTIONS:
        _check_section(section_name, getattr(config, section_name), problems)
    seen: set[str] = set()
    for pbx in config.pbx:
        prefix = f"pbx.{pbx.name}"
        if not PBX_NAME.match(pbx.name):
            problems.append(f"{prefix}.name: must be letters, digits, '-' or '_', got {pbx.name!r}")
        if pbx.name in seen:
            problems.append(f"{prefix}.name: more than one [[pbx]] is named {pbx.name!r}")
        seen.add(pbx.name)
        _check_section(prefix, pbx, problems)
        try:
            re.compile(pbx.extension_pattern)
        except re.error as exc:
            problems.append(f"{prefix}.extension_pattern: not a regular expression ({exc})")
        if not pbx.host:
            problems.append(f"{prefix}.host: must not be empty")
    for ext, name in config.managers.items():
        if not isinstance(name, str):
            problems.append(f"managers.{ext}: must be a string, got {name!r}")
    url = config.database.url
    scheme = url.split(":", 1)[0].split("+", 1)[0] if ":" in url else ""
    if scheme not in DB_SCHEMES:
        problems.append(
            f"database.url: scheme must be sqlite:// or postgresql://, got {url!r}"
        )
    region = config.phone.default_region
    if region not in phonenumbers.SUPPORTED_REGIONS:
        problems.append(f"phone.default_region: not a region code phonenumbers knows (e.g. 'RU'), got {region!r}")
    try:
        zoneinfo.ZoneInfo(config.kpi.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        problems.append(f"kpi.timezone: not an IANA time zone (e.g. 'Europe/Moscow'), got {config.kpi.timezone!r}")
    _validate_crm(config, problems)
    if len(config.transcription.channel_speakers) != 2:
        problems.append(
            "transcription.channel_speakers: must name two speakers, left channel then right, "
            f"got {list(config.transcription.channel_speakers)!r}"
        )
    _validate_vocabulary(config.transcription, problems)


# Whisper reads at most 223 tokens of hints, and every token of them is one
# less for the words it writes; a Russian name costs 2-5 tokens.
VOCABULARY_MAX_CHARS = 400


def _validate_vocabulary(section: TranscriptionConfig, problems: list[str]) -> None:
    """Names, not blanks or repeats, short enough in all for the model to read every one."""
    seen: set[str] = set()
    for index, entry in enumerate(section.vocabulary):
        word = entry.strip()
        if not word:
            problems.append(f"transcription.vocabulary[{index}]: an empty name")
        elif word.casefold() in seen:
            problems.append(f"transcription.vocabulary[{index}]: {word!r} is listed twice")
        seen.add(word.casefold())
    total = len(", ".join(w.strip() for w in section.vocabulary))
    if total > VOCABULARY_MAX_CHARS:
        problems.append(
            f"transcription.vocabulary: {total} characters in all, at most {VOCABULARY_MAX_CHARS} "
            "(the model reads no more; keep the names it gets wrong)"
        )


# What a [[webhooks]] entry may ask to be sent.
WEBHOOK_EVENTS = (
    "call.ringing", "call.answered", "call.finished", "call.missed", "recording.ready", "transcript.ready",
)
_CRM_SECTIONS: dict[str, type] = {"bitrix24": Bitrix24Config, "amocrm": AmoCrmConfig}


def _build_crm(section: str, raw: Any, problems: list[str], env_keys: set[str]) -> Any:
    """``[crm]`` with its ``[crm.bitrix24]`` / ``[crm.amocrm]`` tables, or the ``[[webhooks]]`` list."""
    if section == "webhooks":
        if not isinstance(raw, list) or not all(isinstance(entry, dict) for entry in raw):
            problems.append("webhooks: must be a list of [[webhooks]] tables")
            return []
        return [_build(WebhookConfig, entry, f"webhooks.{index}", problems, env_keys) for index, entry in enumerate(raw)]
    if not isinstance(raw, dict):
        problems.append("crm: must be a table")
        return CrmConfig()
    flat = {key: value for key, value in raw.items() if key not in _CRM_SECTIONS}
    crm: CrmConfig = _build(CrmConfig, flat, "crm", problems, env_keys)
    for key, cls in _CRM_SECTIONS.items():
        if key in raw:
            if isinstance(raw[key], dict):
                setattr(crm, key, _build(cls, raw[key], f"crm.{key}", problems, env_keys))
            else:
                problems.append(f"crm.{key}: must be a table")
    return crm


def _validate_crm(config: Config, problems: list[str]) -> None:
    crm = config.crm
    # Numbers as in every other section (retries, request rates at least 1; the rest not negative).
    _check_section("crm", crm, problems)
    _check_section("crm.bitrix24", crm.bitrix24, problems)
    _check_section("crm.amocrm", crm.amocrm, problems)
    targets: list[tuple[str, str]] = [("crm.bitrix24", crm.bitrix24.webhook_url), ("crm.amocrm", crm.amocrm.base_url)]
    url = crm.bitrix24.webhook_url
    if url and not url.endswith("/"):
        problems.append(f"crm.bitrix24.webhook_url: must end with '/' (…/rest/<user>/<token>/), got {_hide_token(url)!r}")
    if crm.amocrm.base_url and not crm.amocrm.token:
        problems.append("crm.amocrm.token: must be set when crm.amocrm.base_url is (a long-lived token)")
    names: set[str] = set()
    for index, hook in enumerate(config.webhooks):
        prefix = f"webhooks.{index}"
        _check_section(prefix, hook, problems)
        targets.append((prefix, hook.url))
        if not hook.url:
            problems.append(f"{prefix}.url: must be set")
        if not hook.secret:
            problems.append(f"{prefix}.secret: must be set (the receiver checks every body's signature with it)")
        for event in hook.events:
            if event not in WEBHOOK_EVENTS:
                problems.append(f"{prefix}.events: {event!r} is not one of {', '.join(WEBHOOK_EVENTS)}")
        name = hook.name or hook.url
        if name in names:
            problems.append(f"{prefix}.name: another [[webhooks]] is named {name!r}")
        names.add(name)
    for prefix, address in targets:
        if address and not re.match(r"^https?://[^/\s]+", address):
            problems.append(f"{prefix}: the address must start with http:// or https://, got {_hide_token(address)!r}")


def crm_secrets(config: Config) -> list[str]:
    """The CRMs' tokens and the webhooks' secrets, for the log to hide (Bitrix24's is its address's last part)."""
    bitrix = config.crm.bitrix24.webhook_url.rstrip("/")
    token = bitrix.rsplit("/", 1)[-1] if "/rest/" in bitrix else ""
    return [s for s in (token, config.crm.amocrm.token, config.crm.bitrix24.application_token,
                        *(hook.secret for hook in config.webhooks)) if s]


def _hide_token(url: str) -> str:
    """A Bitrix24 webhook address names its token in the path: never print it back."""
    return re.sub(r"(/rest/[^/]+/)[^/]+", r"\1…", url)


def _lowest_port(key: str) -> int:
    return 0 if key in LISTEN_PORT_KEYS else 1


def _check_section(prefix: str, section: Any, problems: list[str]) -> None:
    """Every field of a section dataclass checked by its name and value (a table inside is left to its own call)."""
    for f in dataclasses.fields(section):
        _check_value(f"{prefix}.{f.name}", f.name, getattr(section, f.name), problems)


def _check_value(key: str, name: str, value: Any, problems: list[str]) -> None:
    if isinstance(value, int) and not isinstance(value, bool):
        if name in PORT_FIELDS and not _lowest_port(key) <= value <= 65535:
            problems.append(f"{key}: must be an integer {_lowest_port(key)}-65535, got {value!r}")
        elif name in POSITIVE_FIELDS and value < 1:
            problems.append(f"{key}: must be at least 1, got {value!r}")
        elif value < 0:
            problems.append(f"{key}: must not be negative, got {value!r}")
    choices = CHOICES.get(key)
    if choices and value not in choices:
        problems.append(f"{key}: must be one of {', '.join(choices)}, got {value!r}")


def config_from_mapping(data: dict[str, Any], env: Mapping[str, str] | None = None) -> Config:
    """Build and validate a Config from parsed TOML plus environment overrides."""
    problems: list[str] = []
    data = json.loads(json.dumps(data))  # a private deep copy the environment may change
    env_keys = _apply_env(data, env or {}, problems)

    kwargs: dict[str, Any] = {}
    for section, raw in data.items():
        if section == "pbx":
            if not isinstance(raw, list):
                problems.append("pbx: must be a list of [[pbx]] tables")
                continue
            pbxes: list[PbxConfig] = []
            for index, entry in enumerate(raw):
                if not isinstance(entry, dict):
                    problems.append(f"pbx.{index}: must be a table")
                    continue
                label = str(entry.get("name", "main"))
                pbxes.append(_build(PbxConfig, entry, f"pbx.{label}", problems, env_keys))
            kwargs["pbx"] = pbxes
        elif section == "managers":
            if not isinstance(raw, dict):
                problems.append("managers: must be a table of extension = \"name\"")
                continue
            kwargs["managers"] = {str(k): v for k, v in raw.items()}
        elif section in ("crm", "webhooks"):
            kwargs[section] = _build_crm(section, raw, problems, env_keys)
        elif section in SECTIONS:
            if not isinstance(raw, dict):
                problems.append(f"{section}: must be a table")
                continue
            kwargs[section] = _build(SECTIONS[section], raw, section, problems, env_keys)
        else:
            problems.append(f"{section}: unknown section")
    config = Config(**kwargs)
    _validate(config, problems)
    if problems:
        raise ConfigError(problems)
    return config


def default_config_path(env: Mapping[str, str] | None = None) -> Path | None:
    """$PBXBRIDGE_CONFIG when set, else no file (built-in defaults)."""
    env = os.environ if env is None else env
    value = env.get(CONFIG_ENV)
    return Path(value) if value else None


def load_config(path: Path | str | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read the TOML file (if any), apply PBXBRIDGE_* overrides, validate."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError([f"config: file not found: {path}"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"config: {path} is not valid TOML ({exc})"]) from None
    return config_from_mapping(data, env)
