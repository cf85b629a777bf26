"""Who a client is: credentials from Tattach's uname/n_uname and the served /etc/passwd and /etc/group.

The server knows only what the tree it serves says: the uid comes from ``n_uname`` (or the
``uname`` looked up in /etc/passwd), the primary group from that user's passwd line, and the
supplementary groups from /etc/group's member lists. Groups granted any other way (PAM, NSS,
capabilities) are invisible here; that is why the default permission model trusts the client.
"""

from __future__ import annotations

from ..fs import Cred, Filesystem

NONUNAME = 0xFFFFFFFF  # n_uname when the client gave only a name
NOBODY = 65534


def credentials(fs: Filesystem, uname: str, n_uname: int, *, trusted: bool) -> Cred:
    """uid from ``n_uname`` (or ``uname``), gid and groups from the served tables."""
    users = _table(fs, "/etc/passwd")
    uid = n_uname
    if uid == NONUNAME:
        uid = NOBODY
        for row in users:
            if len(row) > 2 and row[0] == uname and row[2].isdigit():
                uid = int(row[2])
                break
    gid = uid
    name = None  # a uid /etc/passwd does not list is in no group but its own
    for row in users:
        if len(row) > 3 and row[2] == str(uid) and row[3].isdigit():
            gid = int(row[3])
            name = row[0]
            break
    groups = set()
    for row in _table(fs, "/etc/group"):
        if len(row) > 3 and row[2].isdigit() and name in row[3].split(","):
            groups.add(int(row[2]))  # (an empty member list splits to [""]: never a name)
    return Cred(uid, gid, frozenset(groups), trusted=trusted)


def _table(fs: Filesystem, path: str) -> list[list[str]]:
    """A colon-separated table of the served tree (empty if missing, odd or over 1 MiB)."""
    try:
        inode = fs.resolve(path)
        if not inode.is_reg() or inode.size > 1 << 20:
            return []
        text = fs.read_bytes(inode, 0, inode.size).decode("utf-8", "replace")
    except OSError:
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]
