"""The store's records: how an inode, a directory entry and the superblock are written.

Every store (memory, SQLite, IndexedDB) holds the same records; this module is the one place
that writes and reads them. Record format (``FORMAT`` 1):

- meta ``super``: JSON ``{"format", "fsid", "next_ino", "root", "chunk", "used"}``
- meta ``i:<ino>``: JSON inode ``{m, u, g, n, r, s, G, v, t: [atime, mtime, ctime, btime]}`` plus
  ``c`` (regular files: chunk runs ``[first index, count, length of the last]``, all others in a
  run are full), ``l`` (symlink target, base64), ``x`` (xattrs, base64 values), ``d`` (directories:
  ``[next readdir sequence number, parent ino]``), ``b`` (a base file: ``[base_end, name, size,
  sha256 hex?, [piece sha256 hex…]?]``, see ``fs/base.py``)
- meta ``e:<dir ino>:<seq>``: JSON ``[name, child ino]``; keyed by the entry's readdir sequence
  number, so keys are ASCII whatever the name and readdir cookies stay valid across a reopen
- chunk ``<ino>:<index>``: the file's bytes from ``index * CHUNK``, at most ``CHUNK`` of them
- chunk ``b:<content name>:<piece>``: a base file's fetched bytes from ``piece * PIECE``

An inode's chunk map in memory holds either the chunk (a ``bytearray``) or, while it is not
loaded, its length (an ``int``).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from .base import BaseRef
from .constants import CHUNK
from .inode import DirEntries, Inode

FORMAT = 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _int(v: object) -> int:
    if type(v) is not int:
        raise ValueError(f"not an integer: {v!r}")
    return v


def encode_inode(inode: Inode) -> bytes:
    rec: dict = {
        "m": inode.mode,
        "u": inode.uid,
        "g": inode.gid,
        "n": inode.nlink,
        "s": inode.size,
        "G": inode.gen,
        "v": inode.version,
        "t": [inode.atime, inode.mtime, inode.ctime, inode.btime],
    }
    if inode.rdev:
        rec["r"] = inode.rdev
    chunks = inode.chunks
    if chunks is not None:
        runs: list[list[int]] = []
        for ci in sorted(chunks):
            c = chunks[ci]
            n = c if isinstance(c, int) else len(c)
            if runs and runs[-1][0] + runs[-1][1] == ci and runs[-1][2] == CHUNK:
                runs[-1][1] += 1
                runs[-1][2] = n
            else:
                runs.append([ci, 1, n])
        rec["c"] = runs
    if inode.base is not None:
        rec["b"] = [inode.base_end, *inode.base.record()]
    if inode.target is not None:
        rec["l"] = _b64(inode.target)
    if inode.xattrs:
        rec["x"] = {k: _b64(v) for k, v in inode.xattrs.items()}
    if inode.entries is not None:
        parent = inode.parent.ino if inode.parent is not None else inode.ino
        rec["d"] = [inode.entries.next_seq, parent]
    return json.dumps(rec, separators=(",", ":")).encode()


_decode = json.JSONDecoder().decode  # on str: skips json.loads' encoding sniffing (10,000s of records)


def decode_inode(ino: int, raw: bytes | dict[str, Any]) -> tuple[Inode, int]:
    """An inode from its record (or the record already parsed: see :func:`parse_all`), and the
    parent ino a directory record names (else 0)."""
    r = raw if isinstance(raw, dict) else _decode(raw.decode())
    at, mt, ct, bt = r["t"]
    fields = (r["m"], r["u"], r["g"], r["n"], r.get("r", 0), r["s"], r["G"], r["v"], at, mt, ct, bt)
    for v in fields:
        if type(v) is not int:
            raise ValueError(f"not an integer: {v!r}")
    inode = Inode(
        ino,
        *fields[:3],
        at,
        mt,
        ct,
        bt,
        nlink=fields[3],
        rdev=fields[4],
        size=fields[5],
        gen=fields[6],
        version=fields[7],
    )
    parent = 0
    if "c" in r:
        chunks: dict = {}
        total = 0
        for first, count, last in r["c"]:
            first, count, last = _int(first), _int(count), _int(last)
            if count < 1 or not 0 < last <= CHUNK or first < 0:
                raise ValueError("bad chunk run")
            for i in range(first, first + count - 1):
                chunks[i] = CHUNK
            chunks[first + count - 1] = last
            total += (count - 1) * CHUNK + last
        inode.chunks = chunks
        inode.data_bytes = total
    if "b" in r:
        inode.base_end = _int(r["b"][0])
        inode.base = BaseRef.from_record(r["b"][1:])
        if not 0 <= inode.base_end <= inode.base.size:
            raise ValueError("bad base end")
    if "l" in r:
        inode.target = base64.b64decode(r["l"])
    if "x" in r:
        inode.xattrs = {str(k): base64.b64decode(v) for k, v in r["x"].items()}
    if "d" in r:
        entries = DirEntries()
        entries.next_seq = _int(r["d"][0])
        parent = _int(r["d"][1])
        inode.entries = entries
    return inode, parent


def encode_entry(name: str, ino: int) -> bytes:
    """A directory entry record (``e:<dir ino>:<seq>``): the name and the inode it names."""
    return json.dumps([name, ino]).encode()


def decode_entry(raw: bytes | list[Any]) -> tuple[str, int]:
    name, ino = raw if isinstance(raw, list) else _decode(raw.decode())
    return str(name), _int(ino)


def parse_all(records: dict[str, bytes], keys: list[str], kind: type) -> dict[str, Any]:
    """The records ``keys`` names, parsed in one call (a store is opened with 10,000s of them: one
    parse of them joined costs a fraction of one call each, most of all in Pyodide), those of
    type ``kind`` by key. Empty when any of them is not JSON, or joining them does not give one
    value per record: the caller then parses each alone and finds the bad one."""
    if not keys:
        return {}
    try:
        values = json.loads(b"[" + b",".join(records[k] for k in keys) + b"]")
    except ValueError:
        return {}
    if len(values) != len(keys):
        return {}
    return {k: v for k, v in zip(keys, values, strict=True) if type(v) is kind}
