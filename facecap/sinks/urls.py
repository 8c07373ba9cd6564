"""Opening sinks from URLs (``vmc://host:port?option=value``)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit

from .base import MultiSink, Sink
from .face_cap import FaceCapSink
from .livelink_udp import LiveLinkSink
from .osc_namespace import OscSink
from .udp import DEFAULT_PORTS, UdpSink
from .vmc import VMCSink

SINKS: dict[str, type[UdpSink]] = {
    "vmc": VMCSink,
    "osc": OscSink,
    "facecap": FaceCapSink,
    "livelink": LiveLinkSink,
}


def _option_value(cls: type, key: str, raw: str, url: str):
    params = {n: p for n, p in inspect.signature(cls.__init__).parameters.items() if p.kind == p.KEYWORD_ONLY}
    if key not in params:
        raise ValueError(f"{url}: unknown option {key!r} for {cls.__name__}; options: {', '.join(params)}")
    default = params[key].default
    if isinstance(default, tuple):  # a vector such as head_offset=0,0.08,0
        try:
            return tuple(float(x) for x in raw.replace(";", ",").split(","))
        except ValueError:
            raise ValueError(f"{url}: option {key} must be comma-separated numbers, got {raw!r}") from None
    if isinstance(default, bool) or key == "vrm0":
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        if key == "vrm0":
            return raw  # a mapping file or built-in name
        raise ValueError(f"{url}: option {key} must be 1/0/true/false, got {raw!r}")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{url}: option {key} must be an integer, got {raw!r}") from None
    return raw


def open_sink(url: str, **options) -> Sink:
    """Open a sink from a URL such as ``vmc://127.0.0.1:39539``.

    Parameters
    ----------
    url : str
        ``scheme://host[:port][?option=value&...]`` with scheme ``vmc``, ``osc``, ``facecap`` or
        ``livelink``; host defaults to 127.0.0.1 and port to ``DEFAULT_PORTS[scheme]``.
    **options
        Keyword options of the sink class (override the query string).

    Raises
    ------
    ValueError
        Unknown scheme, bad port, path/fragment/credentials in the URL, unknown option.
    """
    if not isinstance(url, str):
        raise TypeError(f"sink URL must be a str like 'vmc://127.0.0.1:39539', got {type(url).__name__}")
    example = "e.g. vmc://127.0.0.1:39539, osc://host:9000, facecap://host:8080, livelink://host:11111"
    if "://" not in url:
        raise ValueError(f"{url!r} is not a sink URL; give scheme://host:port ({example})")
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in SINKS:
        import difflib

        close = difflib.get_close_matches(scheme, SINKS, n=1)
        hint = f"; did you mean {close[0]}://?" if close else ""
        raise ValueError(f"unknown sink scheme {parts.scheme!r} in {url!r}{hint} (choose {', '.join(SINKS)})")
    if parts.path not in ("", "/") or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{url!r}: a sink URL is only scheme://host:port[?options] ({example})")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{url!r}: the port must be an integer in 1..65535") from None
    if port == 0:
        raise ValueError(f"{url!r}: the port must be an integer in 1..65535")
    host = parts.hostname or "127.0.0.1"
    cls = SINKS[scheme]
    try:
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise ValueError(f"{url!r}: bad query string {parts.query!r}; use ?key=value&key=value") from None
    kw = {k: _option_value(cls, k, v, url) for k, v in query}
    params = {n for n, p in inspect.signature(cls.__init__).parameters.items() if p.kind == p.KEYWORD_ONLY}
    bad = sorted(set(options) - params)
    if bad:
        raise ValueError(f"unknown option(s) {bad} for {cls.__name__}; options: {', '.join(sorted(params))}")
    kw.update(options)
    return cls(host, port or DEFAULT_PORTS[scheme], **kw)


def open_sinks(urls: str | Iterable[str]) -> Sink:
    """One sink for one URL, a :class:`MultiSink` for several (a list, or one comma-separated string).

    Options go in each URL's query string (``vmc://host?vrm0=1``).
    """
    if isinstance(urls, str):  # split at commas that start a new scheme:// (option values may hold commas)
        urls = [u for u in re.split(r",\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)", urls) if u.strip()]
    urls = list(urls)
    if not urls:
        raise ValueError("no sink URL given")
    sinks: list[Sink] = []
    try:
        for u in urls:
            sinks.append(open_sink(u))
    except Exception:
        for s in sinks:
            s.close()
        raise
    return sinks[0] if len(sinks) == 1 else MultiSink(sinks)
