"""pyninep-browser: a 9P2000.L file server in Python for v86 guests, in the page or on CPython.

    from pyninep_browser import Server, Filesystem
    server = Server()                 # an empty in-memory filesystem, root 0755 owned by uid 0
    reply = server.handle(frame)      # one 9P request frame in, one reply frame out
"""

from . import protocol, snapshot
from .fs import Cred, Filesystem, Inode
from .server import Server

__all__ = ["Cred", "Filesystem", "Inode", "Server", "protocol", "snapshot"]
__version__ = "0.1.0"
