"""`open_store`: one string (a setting, a CLI flag) to an `ArtifactStore`.

Accepted spellings:

- ``http://host:port`` / ``https://...``: an IPFS daemon's Kubo RPC API;
- ``/ip4/127.0.0.1/tcp/5001`` (a multiaddr, as Kubo's config writes it): the same;
- ``embedded:/some/dir``, ``file:///some/dir`` or a plain path: the embedded store.

This module must never guess between a path and a URL silently: anything with a
scheme it does not know is refused with a one-line `StoreError`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

from market.store.base import ArtifactStore
from market.store.embedded import EmbeddedStore
from market.store.errors import StoreError
from market.store.kubo import KuboStore

_MULTIADDR: Final = re.compile(r"^/(ip4|ip6|dns|dns4|dns6)/([^/]+)/tcp/(\d+)(/https?)?/?$")
_SCHEME: Final = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")


def open_store(spec: str | os.PathLike[str]) -> ArtifactStore:
    """Open the store `spec` names (see the module docstring for spellings)."""
    if isinstance(spec, os.PathLike):
        return EmbeddedStore(Path(spec))
    text = spec.strip()
    if not text:
        raise StoreError("empty artifact store location")
    if text.startswith(("http://", "https://")):
        return KuboStore(text)
    match = _MULTIADDR.match(text)
    if match:
        proto, host, port, scheme = match.groups()
        if proto == "ip6":
            host = f"[{host}]"
        return KuboStore(f"{(scheme or '/http')[1:]}://{host}:{port}")
    if text.startswith("embedded:"):
        return EmbeddedStore(Path(text.removeprefix("embedded:")))
    if text.startswith("file://"):
        return EmbeddedStore(Path(text.removeprefix("file://")))
    scheme = _SCHEME.match(text)
    if scheme and len(scheme.group(1)) > 1:  # "C:" stays a path
        raise StoreError(f"unknown artifact store location {text!r} (use http://, embedded:)")
    return EmbeddedStore(Path(text))
