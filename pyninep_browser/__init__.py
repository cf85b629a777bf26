"""pyninep-browser: a 9P2000.L file server in Python for v86 guests, in the page or on CPython.

    from pyninep_browser import Server, Filesystem
    server = Server()                 # an empty in-memory filesystem, root 0755 owned by uid 0
    reply = server.handle(frame)      # one 9P request frame in, one reply frame out

``Server`` and ``snapshot`` load on first use: a tool that only builds or reads filesystem images
(``pyninep_browser.fs``, ``pyninep_browser.authoring``) never loads the 9P server.
"""

import importlib
from typing import Any

from . import protocol
from .fs import Cred, Filesystem, Inode

__all__ = ["Cred", "Filesystem", "Inode", "Server", "protocol", "snapshot"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "Server":
        from .server import Server

        return Server
    if name == "snapshot":
        return importlib.import_module(".snapshot", __name__)
    raise AttributeError(f"module 'pyninep_browser' has no attribute {name!r}")
