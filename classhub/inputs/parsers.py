"""Value parsers that `.env`'s settings and `userlist`'s limits share: sizes, cores, image names,
durations, whole numbers. Each takes the raw text and a `Context` and returns the parsed value,
or raises `Invalid` with what is wrong and what to write instead.

Numbers are ASCII digits only: str.isdigit() and int() also take superscripts, full-width and
other scripts' digits (int() reads full-width 8000 as 8000), and float() takes '1_0' and 'nan'.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class Invalid(Exception):
    """A value a parser refuses: `reason` completes "KEY=value ...", `fix` says what to write."""

    def __init__(self, reason: str, fix: str):
        super().__init__(reason)
        self.reason = reason
        self.fix = fix


# Where hosts keep the CA certificates they trust (Debian and Ubuntu; Fedora and RHEL): image
# builds trust the first that exists unless BUILD_CA_BUNDLE says otherwise, so a network that
# intercepts HTTPS, whose CA the host already trusts, needs no edit.
HOST_CA_STORES = (
    Path("/etc/ssl/certs/ca-certificates.crt"),
    Path("/etc/pki/tls/certs/ca-bundle.crt"),
)


@dataclass(frozen=True)
class Context:
    """What parsers may need beyond the value itself."""

    root: Path
    cpu_count: int
    ca_stores: tuple[Path, ...] = HOST_CA_STORES


_WHOLE = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")


def whole_number(raw: str) -> int | None:
    """The whole number `raw` writes in ASCII digits, or None."""
    return int(raw) if _WHOLE.fullmatch(raw) else None


# A Docker image reference: [registry[:port]/]path[:tag][@digest], simplified from the reference
# grammar enough to refuse what Docker would refuse.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE = re.compile(
    rf"(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?"
)


def image(example: str) -> Callable[[str, Context], str]:
    def parse(raw: str, _: Context) -> str:
        if not _IMAGE.fullmatch(raw):
            raise Invalid(
                "is not a Docker image name",
                f"use NAME or NAME:TAG in lowercase, e.g. {example}",
            )
        return raw

    return parse


_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?) *([kmgt]?)(?:i?b)?", re.IGNORECASE | re.ASCII)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
MEM_LIMIT_MIN = 128 * 1024**2


def _bytes(raw: str, fix: str) -> int:
    """The size `raw` writes (a number, then K, M, G or T: units of 1024), else Invalid."""
    match = _SIZE.fullmatch(raw)
    if not match:
        raise Invalid("is not a size", fix)
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def size_with_unit(raw: str, example: str) -> int:
    """A size a task's option gives, e.g. 200M (K, M, G and T are units of 1024)."""
    return _bytes(raw.strip(), f"use a number with K, M, G or T, {example}")


def mem_limit(raw: str, _: Context) -> int:
    size = _bytes(
        raw, "use a size with a unit, e.g. MEM_LIMIT=2G or MEM_LIMIT=512M (M and G are MiB and GiB)"
    )
    if size < MEM_LIMIT_MIN:
        raise Invalid(
            "is too small: an idle JupyterLab alone needs about 110 MiB",
            "use at least 128M, e.g. MEM_LIMIT=2G",
        )
    return size


def cpu_limit(raw: str, ctx: Context) -> float:
    value = float(raw) if _DECIMAL.fullmatch(raw) else math.nan
    if not math.isfinite(value) or value < 0.01:
        raise Invalid("is not a number of cores", "use a number such as 1 or 0.5")
    if value > ctx.cpu_count:
        raise Invalid(
            f"is more than this server's {ctx.cpu_count} cores (Docker would refuse every server)",
            f"use at most {ctx.cpu_count}",
        )
    return value


DISK_LIMIT_MIN = 64 * 1024**2


def disk_size(key: str, example: str) -> Callable[[str, Context], int]:
    def parse(raw: str, _: Context) -> int:
        size = _bytes(
            raw, f"use a size with a unit, e.g. {key}={example} (M, G and T are MiB, GiB and TiB)"
        )
        if size < DISK_LIMIT_MIN:
            raise Invalid(
                "is too small: JupyterLab keeps its settings and history in a home",
                f"use at least 64M, e.g. {key}={example}",
            )
        return size

    return parse


_DURATION = re.compile(r"([0-9]+) *([smhd]?)", re.IGNORECASE | re.ASCII)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(raw: str, _: Context) -> int:
    match = _DURATION.fullmatch(raw)
    if not match:
        raise Invalid(
            "is not a duration",
            "use seconds or a number with s, m, h or d, e.g. CULL_IDLE_TIMEOUT=1h; 0 never stops idle servers",
        )
    return int(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]


@dataclass(frozen=True)
class EgressTarget:
    """An address or network students may reach although the egress policy refuses its range,
    on every port or on one (TCP and UDP)."""

    network: str  # "10.1.2.3/32", "fd00::/8"
    port: int | None = None


_EGRESS = re.compile(
    r"\[(?P<v6>[0-9A-Fa-f:.]+(?:/[0-9]+)?)\](?::(?P<v6port>[0-9]+))?"  # [fd00::1]:443, [fd00::/8]
    r"|(?P<bare6>[0-9A-Fa-f]*:[0-9A-Fa-f:.]*(?:/[0-9]+)?)"  # fd00::1, fd00::/8 (no port)
    r"|(?P<v4>[0-9.]+(?:/[0-9]+)?)(?::(?P<v4port>[0-9]+))?",  # 10.1.2.3, 10.0.0.0/8, 10.1.2.3:5432
    re.ASCII,
)


def egress_targets(key: str, example: str) -> Callable[[str, Context], tuple[EgressTarget, ...]]:
    """A list of addresses or networks, each with an optional port, separated by commas (and
    spaces): `10.1.2.3:5432, 10.20.0.0/16, [fd00::5]:443`."""

    def parse(raw: str, _: Context) -> tuple[EgressTarget, ...]:
        found: list[EgressTarget] = []
        for item in (part for part in re.split(r"[,\s]+", raw.strip()) if part):
            target = _egress_target(item, f"e.g. {key}={example}")
            if target not in found:
                found.append(target)
        return tuple(found)

    return parse


def _egress_target(item: str, fix: str) -> EgressTarget:
    shown = item if len(item) <= 60 else item[:57] + "..."
    match = _EGRESS.fullmatch(item)
    if not match:
        raise Invalid(
            f"has {shown!r}, which is not an address or network (a host name is not looked up)",
            f"write ADDRESS, NETWORK/PREFIX or either with :PORT ([...]:PORT for IPv6), {fix}",
        )
    text = match.group("v6") or match.group("bare6") or match.group("v4")
    port_text = match.group("v6port") or match.group("v4port")
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise Invalid(
            f"has {shown!r}, which is not an address or network",
            f"write ADDRESS, NETWORK/PREFIX or either with :PORT, {fix}",
        ) from None
    port = None
    if port_text is not None:
        port = whole_number(port_text)
        if port is None or not 1 <= port <= 65535:
            raise Invalid(f"has {shown!r}, whose port is not 1 to 65535", f"give a port, {fix}")
    return EgressTarget(str(network), port)
