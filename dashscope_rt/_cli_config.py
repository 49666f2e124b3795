"""``dashscope-rt config``: saved profiles (key, region, workspace, default model and voice).

Profiles live in ``config.json`` in the user's config directory (``$DASHSCOPE_RT_CONFIG_DIR``
overrides it), written with 0600 permissions. ``--profile NAME`` picks one for a command; the
current profile (``config use``) is the default.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

import attrs

from ._cli_common import EXIT_OK, EXIT_USAGE, CliError, safe_streams
from ._endpoint import URL_ENV

__all__ = [
    "CONFIG_DIR_ENV",
    "PROFILE_ENV",
    "ConfigFile",
    "Profile",
    "Settings",
    "add_parser",
    "add_profile_argument",
    "add_profile_everywhere",
    "cmd_config",
    "config_dir",
    "config_path",
    "load",
    "mask_key",
    "resolve",
    "save",
]

CONFIG_DIR_ENV = "DASHSCOPE_RT_CONFIG_DIR"
PROFILE_ENV = "DASHSCOPE_RT_PROFILE"
_FIELDS = ("api_key", "region", "workspace", "model", "voice", "url")


@attrs.frozen(kw_only=True)
class Profile:
    """One saved profile; empty fields fall back to flags, the environment and defaults."""

    name: str
    api_key: str | None = attrs.field(default=None, repr=False)
    region: str | None = None
    workspace: str | None = None
    model: str | None = None
    voice: str | None = None
    url: str | None = None

    def to_json(self) -> dict[str, str]:
        return {k: v for k in _FIELDS if (v := getattr(self, k))}


@attrs.define
class ConfigFile:
    """The whole config file: the profiles and the name of the current one."""

    current: str | None = None
    profiles: dict[str, Profile] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class Settings:
    """What a command connects with, after flags, profile and environment are combined."""

    api_key: str | None = attrs.field(default=None, repr=False)
    region: str = "cn"
    workspace: str | None = None
    url: str | None = None
    model: str | None = None
    voice: str | None = None
    profile: str | None = None
    key_source: str = "none"


def config_dir() -> Path:
    """``$DASHSCOPE_RT_CONFIG_DIR``, else the platform's user config directory."""
    override = os.environ.get(CONFIG_DIR_ENV)
    if override:
        return Path(override)
    if sys.platform == "win32":
        base = os.environ.get("APPDATA") or str(Path.home() / "AppData" / "Roaming")
        return Path(base) / "dashscope-rt"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "dashscope-rt"
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return Path(xdg if xdg else Path.home() / ".config") / "dashscope-rt"


def config_path() -> Path:
    return config_dir() / "config.json"


def load(path: Path | None = None) -> ConfigFile:
    """Read the config file (an empty config if there is none)."""
    path = path or config_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ConfigFile()
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {path}: {exc}") from None
    profiles: dict[str, Profile] = {}
    for name, fields in dict(raw.get("profiles") or {}).items():
        if isinstance(fields, dict):
            kw = {k: str(v) for k, v in fields.items() if k in _FIELDS and v}
            profiles[str(name)] = Profile(name=str(name), **kw)
    current = raw.get("current")
    return ConfigFile(current=current if current in profiles else None, profiles=profiles)


def save(cfg: ConfigFile, path: Path | None = None) -> Path:
    """Write the config atomically, readable by the owner only (0600)."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = {
        "current": cfg.current,
        "profiles": {name: p.to_json() for name, p in sorted(cfg.profiles.items())},
    }
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    if hasattr(os, "chmod"):
        os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def mask_key(key: str | None) -> str:
    """``sk-…a1b2``: enough to tell keys apart, never the key."""
    if not key:
        return "-"
    if len(key) <= 10:
        return "****"
    return f"{key[:3]}…{key[-4:]}"


def add_profile_argument(parser: argparse.ArgumentParser) -> None:
    """``--profile NAME`` (accepted before or after the command name)."""
    parser.add_argument(
        "--profile",
        default=argparse.SUPPRESS,
        metavar="NAME",
        help=f"use a saved profile (default: the current one, or ${PROFILE_ENV})",
    )


def add_profile_everywhere(parser: argparse.ArgumentParser, sub: Any) -> None:
    """Accept ``--profile`` on the main parser and on every command that lacks it."""
    add_profile_argument(parser)
    for command in sub.choices.values():
        if not any("--profile" in a.option_strings for a in command._actions):
            add_profile_argument(command)


def resolve(args: argparse.Namespace) -> Settings:
    """Combine flags, the chosen profile and ``$DASHSCOPE_API_KEY``.

    Flags win. The key comes from an explicitly chosen profile (``--profile``), else from
    ``$DASHSCOPE_API_KEY``, else from the current profile; the URL likewise, with
    ``$DASHSCOPE_RT_URL``.
    """
    explicit = getattr(args, "profile", None) or os.environ.get(PROFILE_ENV) or None
    cfg = load()
    profile: Profile | None = None
    if explicit:
        profile = cfg.profiles.get(explicit)
        if profile is None:
            known = ", ".join(sorted(cfg.profiles)) or "none saved yet"
            raise CliError(
                f"no profile named {explicit!r} (profiles: {known}); add one with "
                "`dashscope-rt config add NAME`",
                EXIT_USAGE,
            )
    elif cfg.current:
        profile = cfg.profiles.get(cfg.current)

    env_key = os.environ.get("DASHSCOPE_API_KEY") or None
    key, source = None, "none"
    if explicit and profile is not None and profile.api_key:
        key, source = profile.api_key, f"profile {profile.name!r}"
    elif env_key:
        key, source = env_key, "DASHSCOPE_API_KEY"
    elif profile is not None and profile.api_key:
        key, source = profile.api_key, f"profile {profile.name!r}"

    def pick(name: str) -> str | None:
        flag = getattr(args, name, None)
        if flag:
            return str(flag)
        return getattr(profile, name, None) if profile is not None else None

    # The URL, like the key: flag, an explicitly chosen profile, $DASHSCOPE_RT_URL, the current one.
    url = getattr(args, "url", None) or (profile.url if explicit and profile is not None else None)
    url = url or os.environ.get(URL_ENV, "").strip() or pick("url")

    return Settings(
        api_key=key,
        region=pick("region") or "cn",
        workspace=pick("workspace"),
        url=url,
        model=pick("model"),
        voice=pick("voice"),
        profile=profile.name if profile is not None else None,
        key_source=source,
    )


# -- the command ----------------------------------------------------------------------------------


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``config`` and its sub-commands."""
    p: argparse.ArgumentParser = sub.add_parser(
        "config",
        help="saved profiles: key, region, workspace, default model and voice",
        description="Manage saved profiles (stored with 0600 permissions in "
        f"{config_path()}; set ${CONFIG_DIR_ENV} to use another directory).",
    )
    add_profile_argument(p)
    csub = p.add_subparsers(dest="config_command", metavar="ACTION")

    add = csub.add_parser("add", help="add or replace a profile")
    add.add_argument("name")
    add.add_argument(
        "--api-key",
        metavar="KEY",
        help="the DashScope key; '-' reads it from stdin (default: prompt, or none if "
        "stdin is not a terminal, then $DASHSCOPE_API_KEY is used at run time)",
    )
    add.add_argument("--region", choices=("cn", "intl"), help="cn (Beijing) or intl (Singapore)")
    add.add_argument("--workspace", help="workspace id (X-DashScope-WorkSpace)")
    add.add_argument("--model", help="default model")
    add.add_argument("--voice", help="default voice")
    add.add_argument("--url", help="endpoint URL instead of the region's (e.g. a simulator)")
    add.add_argument("--use", action="store_true", help="make it the current profile")

    use = csub.add_parser("use", help="make a profile the current one")
    use.add_argument("name")

    csub.add_parser("list", help="list profiles (keys masked)")

    delete = csub.add_parser("delete", help="delete a profile")
    delete.add_argument("name")

    show = csub.add_parser("show", help="show the settings a command would use (key masked)")
    show.add_argument("name", nargs="?", help="a profile (default: the current one, or --profile)")
    add_profile_argument(show)

    csub.add_parser("path", help="print the config file's path")
    p.set_defaults(func=cmd_config, config_parser=p)
    return p


def _read_key(value: str | None) -> str | None:
    if value == "-":
        return sys.stdin.readline().strip() or None
    if value:
        return value.strip()
    if sys.stdin.isatty():
        entered = getpass.getpass("API key (empty: use $DASHSCOPE_API_KEY at run time): ")
        return entered.strip() or None
    return None


def cmd_config(args: argparse.Namespace) -> int:
    """Run ``config add|use|list|delete|show|path``; returns the exit status."""
    safe_streams()
    try:
        return _config(args)
    except CliError as exc:
        print(f"dashscope-rt: error: {exc.message}", file=sys.stderr)
        return exc.code


def _config(args: argparse.Namespace) -> int:
    action = getattr(args, "config_command", None)
    if action is None:
        args.config_parser.print_help()
        return EXIT_USAGE
    if action == "path":
        print(config_path())
        return EXIT_OK
    if action == "show":
        if args.name:
            args.profile = args.name
        s = resolve(args)
        print(f"profile:   {s.profile or '-'}")
        print(f"api key:   {mask_key(s.api_key)} (from {s.key_source})")
        print(f"region:    {s.region}")
        for name in ("workspace", "url", "model", "voice"):
            print(f"{name + ':':<10} {getattr(s, name) or '-'}")
        return EXIT_OK
    cfg = load()
    if action == "list":
        if not cfg.profiles:
            print("No profiles yet. Add one: dashscope-rt config add NAME --region cn")
            return EXIT_OK
        rows = [("", "NAME", "KEY", "REGION", "WORKSPACE", "MODEL", "VOICE", "URL")]
        for name, prof in sorted(cfg.profiles.items()):
            rows.append(
                (
                    "*" if name == cfg.current else "",
                    name,
                    mask_key(prof.api_key),
                    prof.region or "-",
                    prof.workspace or "-",
                    prof.model or "-",
                    prof.voice or "-",
                    prof.url or "-",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip())
        return EXIT_OK
    name = args.name
    if action == "add":
        key = _read_key(args.api_key)
        cfg.profiles[name] = Profile(
            name=name,
            api_key=key,
            region=args.region,
            workspace=args.workspace,
            model=args.model,
            voice=args.voice,
            url=args.url,
        )
        if args.use or cfg.current is None:
            cfg.current = name
        path = save(cfg)
        current = " (current)" if cfg.current == name else ""
        print(f"Saved profile {name!r}{current}, key {mask_key(key)}, in {path}")
        return EXIT_OK
    if name not in cfg.profiles:
        known = ", ".join(sorted(cfg.profiles)) or "none"
        raise CliError(f"no profile named {name!r} (profiles: {known})", EXIT_USAGE)
    if action == "use":
        cfg.current = name
        save(cfg)
        print(f"Current profile: {name}")
        return EXIT_OK
    # delete
    del cfg.profiles[name]
    if cfg.current == name:
        cfg.current = None
    save(cfg)
    print(f"Deleted profile {name!r}")
    return EXIT_OK
