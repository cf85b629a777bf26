"""The 9P2000.L server: one :class:`Server` per client session over a shared
:class:`~pyninep_browser.fs.Filesystem`.

``Server(fs).handle(frame) -> reply`` is the whole contract (see :mod:`.session`). The package:

- ``session``: ``Server``, the handler table and one handler per message; errors become Rlerror here
- ``fids``: ``Fid`` and its explicit state (walked, open, xattr read, xattr write), the fid table
- ``deferred``: replies that wait (data loads, fsync commits, async live files), flush, resume
- ``fast``: Twalk, Tgetattr and Tclunk decoded in place (the hot triplet)
- ``identity``: credentials from Tattach and the served /etc/passwd and /etc/group
- ``state``: saving a session and restoring it over a filesystem (fids re-bound by identity)

It imports :mod:`~pyninep_browser.fs` and :mod:`~pyninep_browser.protocol`, never authoring, the
page bridge or a transport.
"""

from .fids import Fid, FidState, qid_of
from .identity import NOBODY, NONUNAME
from .session import (
    AT_REMOVEDIR,
    DEFAULT_MAX_FIDS,
    DEFAULT_MAX_MSIZE,
    MIN_MSIZE,
    PERMISSION_MODELS,
    V9FS_MAGIC,
    Server,
    encode_rdev,
)

__all__ = [
    "Server",
    "Fid",
    "FidState",
    "qid_of",
    "encode_rdev",
    "PERMISSION_MODELS",
    "V9FS_MAGIC",
    "AT_REMOVEDIR",
    "DEFAULT_MAX_MSIZE",
    "MIN_MSIZE",
    "DEFAULT_MAX_FIDS",
    "NONUNAME",
    "NOBODY",
]
