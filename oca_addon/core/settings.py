"""The settings file: where it lives, what it may hold, and reloading it when it changes.

Same files and keys as the original TypeScript oca-proxy, so users switching over keep
their settings: `~/.config/oca/oca-proxy.config.json` (older: `~/.oca/oca-proxy-config.json`),
or the same keys in YAML (`~/.config/oca/oca-proxy.yaml`).
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from oca_addon.core import private

log = logging.getLogger(__name__)

REASONING_EFFORTS = ("minimal", "low", "medium", "high")
MODES = ("internal", "external")
ALLOWED_PORTS = (8669, 8668, 8667)
DEFAULT_MODEL = "oca/gpt-4.1"


def config_dir() -> Path:
    return Path.home() / ".config" / "oca"


def candidate_paths() -> list[Path]:
    """Where a settings file is looked for, first match wins."""
    return [
        config_dir() / "oca-proxy.config.json",
        config_dir() / "oca-proxy.yaml",
        config_dir() / "oca-proxy.yml",
        Path.home() / ".oca" / "oca-proxy-config.json",
    ]


def find_config_file(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The file to read (it may not exist yet: then it is where a save goes)."""
    if explicit:
        return Path(explicit).expanduser()
    for path in candidate_paths():
        if path.exists():
            return path
    return candidate_paths()[0]


class ConfigError(Exception):
    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


@dataclass(frozen=True)
class MappingTarget:
    target: str
    reasoning_effort: str | None = None


@dataclass(frozen=True)
class Settings:
    model_mapping: dict[str, MappingTarget] = field(default_factory=dict)
    default_model: str = DEFAULT_MODEL
    default_reasoning_effort: str | None = None
    base_url: str | None = None
    idcs_url: str | None = None
    client_id: str | None = None
    mode: str | None = None
    port: int | None = None
    log_level: str | None = None
    proxy_api_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The file form: a mapping value stays a bare id unless it carries an effort."""
        mapping: dict[str, Any] = {}
        for name, t in self.model_mapping.items():
            mapping[name] = (
                {"target": t.target, "reasoning_effort": t.reasoning_effort}
                if t.reasoning_effort
                else t.target
            )
        out: dict[str, Any] = {"model_mapping": mapping, "default_model": self.default_model}
        for key in (
            "default_reasoning_effort",
            "base_url",
            "idcs_url",
            "client_id",
            "mode",
            "port",
            "log_level",
            "proxy_api_key",
        ):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


def _str_or_none(data: dict[str, Any], key: str, path: Path) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(path, f"'{key}' must be a string, not {type(value).__name__}")
    return value


def _effort(value: Any, where: str, path: Path) -> str | None:
    if value is None or value == "":
        return None
    if value not in REASONING_EFFORTS:
        raise ConfigError(
            path, f"{where} must be one of {', '.join(REASONING_EFFORTS)}, not {value!r}"
        )
    return str(value)


def parse_settings(data: Any, path: Path | str = "<settings>") -> Settings:
    """Validate the raw file contents; every problem names the key and what is wrong."""
    path = Path(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, "the file must hold an object of settings")
    raw_mapping = data.get("model_mapping")
    if raw_mapping is None:
        raw_mapping = {}
    if not isinstance(raw_mapping, dict):
        raise ConfigError(path, "'model_mapping' must be an object of name -> model")
    mapping: dict[str, MappingTarget] = {}
    for name, value in raw_mapping.items():
        where = f"model_mapping[{name!r}]"
        if isinstance(value, str) and value:
            mapping[str(name)] = MappingTarget(value)
        elif isinstance(value, dict):
            target = value.get("target") or value.get("model")
            if not isinstance(target, str) or not target:
                raise ConfigError(path, f"{where} needs a 'target' model id")
            effort = _effort(value.get("reasoning_effort"), f"{where}.reasoning_effort", path)
            mapping[str(name)] = MappingTarget(target, effort)
        else:
            raise ConfigError(
                path, f"{where} must be a model id or {{target, reasoning_effort}}, not {value!r}"
            )
    default_model = _str_or_none(data, "default_model", path) or DEFAULT_MODEL
    mode = _str_or_none(data, "mode", path)
    if mode is not None and mode not in MODES:
        raise ConfigError(path, f"'mode' must be 'internal' or 'external', not {mode!r}")
    port = data.get("port")
    if port is not None:
        if isinstance(port, str) and port.isdigit():
            port = int(port)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ConfigError(path, f"'port' must be a port number, not {port!r}")
    return Settings(
        model_mapping=mapping,
        default_model=default_model,
        default_reasoning_effort=_effort(
            data.get("default_reasoning_effort"), "'default_reasoning_effort'", path
        ),
        base_url=_str_or_none(data, "base_url", path),
        idcs_url=_str_or_none(data, "idcs_url", path),
        client_id=_str_or_none(data, "client_id", path),
        mode=mode,
        port=port,
        log_level=_str_or_none(data, "log_level", path),
        proxy_api_key=_str_or_none(data, "proxy_api_key", path),
    )


def _is_yaml(path: Path) -> bool:
    return path.suffix.lower() in (".yaml", ".yml")


def load_settings(path: Path) -> Settings:
    """Read and validate one file. A missing file is the defaults. A file that another
    user owns or may write (or in a folder they may write) is refused: it says where the
    login goes (private.py)."""
    try:
        raw = private.read_private(path)
    except FileNotFoundError:
        return Settings()
    except private.FileRefused as e:
        raise ConfigError(path, e.problem) from None
    except OSError as e:
        raise ConfigError(path, f"cannot read the file: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(path, "the file is not UTF-8 text") from None
    if not text.strip():
        return Settings()
    try:
        data = yaml.safe_load(text) if _is_yaml(path) else json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(
            path, f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}"
        ) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(path, f"invalid YAML{where}: {getattr(e, 'problem', e)}") from None
    except RecursionError:
        raise ConfigError(path, "the file is nested too deeply") from None
    return parse_settings(data, path)


def save_settings(path: Path, settings: Settings) -> None:
    """Write atomically in the file's own format: 0600, its folder made 0700 if missing,
    whatever the umask (private.py)."""
    data = settings.to_dict()
    text = (
        yaml.safe_dump(data, sort_keys=False)
        if _is_yaml(path)
        else json.dumps(data, indent=2) + "\n"
    )
    private.write_private(path, text.encode("utf-8"))


class SettingsFile:
    """The settings, re-read when the file changes (checked at most once a second).

    A broken edit keeps the last good settings and logs what is wrong once, so a typo
    never takes the proxy down.
    """

    def __init__(self, path: Path, check_interval: float = 1.0) -> None:
        self.path = path
        self.check_interval = check_interval
        self.error: ConfigError | None = None
        self._settings = Settings()
        self._stamp: tuple[float, int] | None = None
        self._next_check = 0.0
        self.reload(initial=True)

    def _file_stamp(self) -> tuple[float, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime, st.st_size)

    def reload(self, initial: bool = False) -> None:
        self._stamp = self._file_stamp()
        try:
            self._settings = load_settings(self.path)
        except ConfigError as e:
            self.error = e
            log.error(
                "Settings file problem, %s (keeping the %s settings)",
                e,
                "default" if initial else "previous",
            )
            return
        if self.error or not initial:
            log.info("Settings loaded from %s", self.path)
        self.error = None

    def get(self) -> Settings:
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + self.check_interval
            if self._file_stamp() != self._stamp:
                self.reload()
        return self._settings

    def save(self, settings: Settings) -> None:
        save_settings(self.path, settings)
        self._settings = settings
        self._stamp = self._file_stamp()
        self.error = None


@dataclass(frozen=True)
class ModelChoice:
    """Which OCA model a client's model name ends up on, and why."""

    requested: str
    target: str
    reasoning_effort: str | None
    via: str  # "oca" | "mapping" | "pattern" | "catalog" | "default"


def resolve_model(
    requested: str | None, settings: Settings, known_models: set[str] | frozenset[str] = frozenset()
) -> ModelChoice:
    """`oca/...` passes through; then exact mapping, glob patterns, `oca/<name>`, default."""
    name = requested or ""
    default_effort = settings.default_reasoning_effort
    if name.startswith("oca/"):
        return ModelChoice(name, name, default_effort, "oca")
    mapping = settings.model_mapping
    hit = mapping.get(name)
    if hit is not None:
        return ModelChoice(name, hit.target, hit.reasoning_effort or default_effort, "mapping")
    lowered = name.lower()
    for pattern, target in mapping.items():
        if any(c in pattern for c in "*?[") and fnmatch.fnmatchcase(lowered, pattern.lower()):
            return ModelChoice(
                name, target.target, target.reasoning_effort or default_effort, "pattern"
            )
    if f"oca/{name}" in known_models:
        return ModelChoice(name, f"oca/{name}", default_effort, "catalog")
    return ModelChoice(name, settings.default_model, default_effort, "default")


API_PREFIX = "/20250206/app/litellm"


def api_base(url: str) -> str:
    """OCA's API base URL: one with no path gets OCA's API path (a deployment's address alone
    gave 404s for every call), as the reverse-mode target of the mitmdump form does."""
    url = url.strip().rstrip("/")
    return url + API_PREFIX if not urlsplit(url).path else url


@dataclass(frozen=True)
class Deployment:
    """One OCA deployment: where its API and its login live (see OCA-FACTS.md)."""

    base_url: str
    idcs_url: str
    client_id: str


DEPLOYMENTS = {
    "internal": Deployment(
        base_url="https://code-internal.aiservice.us-chicago-1.oci.oraclecloud.com" + API_PREFIX,
        idcs_url="https://idcs-9dc693e80d9b469480d7afe00e743931.identity.oraclecloud.com",
        client_id="a8331954c0cf48ba99b5dd223a14c6ea",
    ),
    "external": Deployment(
        base_url="https://code.aiservice.us-chicago-1.oci.oraclecloud.com" + API_PREFIX,
        idcs_url="https://login-ext.identity.oraclecloud.com",
        client_id="c1aba3deed5740659981a752714eba33",
    ),
}


ORACLE_DOMAINS = ("oraclecloud.com", "oracle.com")


def off_oracle(url: str) -> str | None:
    """Why `url` may send the login somewhere other than Oracle (None: an https URL on one
    of Oracle's domains). Such URLs are allowed (the simulator, tests), but announced."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
        parts.port  # noqa: B018 (raises on a malformed port)
    except ValueError:
        return "it is not a valid URL"
    if any(c.isspace() or c == "\\" for c in parts.netloc) or not host:
        return "it is not a valid URL"
    if not any(host == d or host.endswith("." + d) for d in ORACLE_DOMAINS):
        return f"{host} is not on Oracle's domains ({', '.join(ORACLE_DOMAINS)})"
    if parts.scheme != "https":
        return f"it is {parts.scheme or 'no scheme'}, not https"
    return None


def upstream_notices(base_url: str, idcs_url: str) -> list[str]:
    """What to say at start and on the dashboard about where the tokens go."""
    notices = []
    for what, url, goes in (
        ("OCA API URL (base_url)", base_url, "OCA access tokens go there"),
        ("login URL (idcs_url)", idcs_url, "your refresh token (the OCA login) goes there"),
    ):
        why = off_oracle(url)
        if why:
            notices.append(
                f"The {what} {url} is not Oracle's ({why}): {goes}. If you did not set it "
                "(settings file, --base-url, --idcs-url, the reverse-mode target), stop "
                "the proxy and check them."
            )
    return notices
