"""Path-based helpers for authoring and tools (absolute paths, acting as root by default).

The 9P server never uses these: it walks inode by inode. They are built only from the
filesystem's inode operations, so they follow exactly the same rules.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from .constants import MAX_SYMLINK_DEPTH, _fail
from .inode import ROOT, Cred, Inode


class PathHelpers:
    """The path half of :class:`Filesystem`."""

    root: Inode

    if TYPE_CHECKING:  # the inode operations of Filesystem; mypy checks these against them

        def lookup(self, directory: Inode, name: str, cred: Cred = ROOT, session: Any = None) -> Inode: ...
        def create(
            self, directory: Inode, name: str, mode: int, cred: Cred = ROOT, gid: int | None = None
        ) -> Inode: ...
        def mkdir(
            self, directory: Inode, name: str, mode: int, cred: Cred = ROOT, gid: int | None = None
        ) -> Inode: ...
        def symlink(
            self, directory: Inode, name: str, target: str | bytes, cred: Cred = ROOT, gid: int | None = None
        ) -> Inode: ...
        def mknod(
            self,
            directory: Inode,
            name: str,
            mode: int,
            rdev: int = 0,
            cred: Cred = ROOT,
            gid: int | None = None,
        ) -> Inode: ...
        def link(self, directory: Inode, name: str, inode: Inode, cred: Cred = ROOT) -> None: ...
        def unlink(self, directory: Inode, name: str, cred: Cred = ROOT, *, rmdir: bool = False) -> None: ...
        def read(self, inode: Inode, offset: int, count: int) -> list: ...
        def write(self, inode: Inode, offset: int, data, cred: Cred = ROOT) -> int: ...
        def truncate(self, inode: Inode, size: int, cred: Cred = ROOT) -> None: ...

    def _split(self, path: str) -> list[str]:
        if not path.startswith("/"):
            raise _fail(errno.EINVAL, f"not an absolute path: {path!r}")
        return [p for p in path.split("/") if p and p != "."]

    def resolve(self, path: str, *, follow: bool = True, cred: Cred = ROOT) -> Inode:
        """The inode at an absolute path, following symlinks like the kernel (40 at most)."""
        inode, _ = self._walk_path(self._split(path), follow, cred, 0)
        return inode

    def _walk_path(self, parts: list[str], follow: bool, cred: Cred, depth: int) -> tuple[Inode, int]:
        cur = self.root
        stack = [self.root]
        i = 0
        while i < len(parts):
            name = parts[i]
            if name == "..":
                if len(stack) > 1:
                    stack.pop()
                cur = stack[-1]
                i += 1
                continue
            nxt = self.lookup(cur, name, cred)
            last = i == len(parts) - 1
            if nxt.is_symlink() and (follow or not last):
                depth += 1
                if depth > MAX_SYMLINK_DEPTH:
                    raise _fail(errno.ELOOP)
                assert nxt.target is not None  # a symlink has one
                target = nxt.target.decode("utf-8", "surrogateescape")
                rest = [p for p in target.split("/") if p and p != "."]
                if target.startswith("/"):
                    stack = [self.root]
                    cur = self.root
                parts = rest + parts[i + 1 :]
                i = 0
                continue
            cur = nxt
            stack.append(cur)
            i += 1
        return cur, depth

    def _parent_of(self, path: str, *, create: bool = False) -> tuple[Inode, str]:
        """The directory holding ``path`` and the last name; ``create`` makes missing parents."""
        parts = self._split(path)
        if not parts:
            raise _fail(errno.EEXIST, "/")
        if create:
            return self.makedirs("/" + "/".join(parts[:-1])), parts[-1]
        parent, _ = self._walk_path(parts[:-1], True, ROOT, 0)
        return parent, parts[-1]

    def makedirs(self, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Inode:
        """Create a directory and any missing parents (existing ones are fine); returns it."""
        cur = self.root
        for name in self._split(path):
            nxt = cur.entries.get(name) if cur.entries is not None else None
            if nxt is not None and nxt.is_symlink():
                nxt = self.resolve(self.path_of(cur) + "/" + name)
            if nxt is None:
                nxt = self.mkdir(cur, name, mode, Cred(uid, gid))
            elif not nxt.is_dir():
                raise _fail(errno.ENOTDIR, path)
            cur = nxt
        return cur

    def write_file(
        self, path: str, data: bytes | str, mode: int = 0o644, uid: int = 0, gid: int = 0
    ) -> Inode:
        """Create or replace a regular file's content (parents are created)."""
        if isinstance(data, str):
            data = data.encode()
        parent, name = self._parent_of(path, create=True)
        assert parent.entries is not None  # makedirs made or found a directory
        inode = parent.entries.get(name)
        if inode is not None and inode.is_symlink():
            inode = self.resolve(path)
        if inode is None:
            inode = self.create(parent, name, mode, Cred(uid, gid), gid)
        elif not inode.is_reg():
            raise _fail(errno.EISDIR if inode.is_dir() else errno.EINVAL, path)
        else:
            self.truncate(inode, 0)
        self.write(inode, 0, data)
        return inode

    def read_file(self, path: str) -> bytes:
        inode = self.resolve(path)
        if inode.is_dir():
            raise _fail(errno.EISDIR, path)
        return b"".join(self.read(inode, 0, inode.size))

    def add_symlink(self, path: str, target: str, uid: int = 0, gid: int = 0) -> Inode:
        parent, name = self._parent_of(path, create=True)
        return self.symlink(parent, name, target, Cred(uid, gid), gid)

    def add_node(self, path: str, mode: int, rdev: int = 0, uid: int = 0, gid: int = 0) -> Inode:
        parent, name = self._parent_of(path, create=True)
        inode = self.mknod(parent, name, mode, rdev, ROOT, gid)
        inode.uid = uid
        return inode

    def add_hardlink(self, path: str, existing_path: str) -> Inode:
        inode = self.resolve(existing_path, follow=False)
        parent, name = self._parent_of(path, create=True)
        self.link(parent, name, inode)
        return inode

    def listdir(self, path: str = "/") -> list[str]:
        inode = self.resolve(path)
        if inode.entries is None:
            raise _fail(errno.ENOTDIR, path)
        return [name for name, _ in inode.entries.items()]

    def remove(self, path: str) -> None:
        parent, name = self._parent_of(path)
        victim = self.lookup(parent, name)
        self.unlink(parent, name, rmdir=victim.is_dir())

    def path_of(self, inode: Inode) -> str:
        """An absolute path of a directory (walking parents); files: the first name found."""
        if inode is self.root:
            return ""
        parts = []
        cur = inode
        while cur is not self.root:
            parent = cur.parent
            if parent is None or parent.entries is None:
                raise _fail(errno.ENOENT)
            for name, child in parent.entries.items():
                if child is cur:
                    parts.append(name)
                    break
            else:
                raise _fail(errno.ENOENT)
            cur = parent
        return "/" + "/".join(reversed(parts))
