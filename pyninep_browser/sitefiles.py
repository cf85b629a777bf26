"""How a built site's files are served: the MIME types ES modules, wasm and our wheel need, which
Python's ``mimetypes`` does not all know. The ``site`` command and ``serve --site`` share them; and how
the build packs its two memory images (Python's snapshot, the saved machine) for the wire."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

SITE_TYPES = {
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".wasm": "application/wasm",
    ".json": "application/json",
    ".whl": "application/zip",
    ".img": "application/octet-stream",
}


def pack_for_wire(path: Path) -> Path:
    """Compress a built memory image (Python's snapshot, the saved machine) for the wire and
    remove the original: ``PATH.zst`` (zstd level 19, long window: a fifth smaller than gzip's
    best, decoded in the page by v86's own zstd) where zstd is at hand (Python 3.14, or the
    ``zstd`` extra), else ``PATH.gz``. The page picks the decoder by the name."""
    from .fs.base import zstd_compress

    data = path.read_bytes()
    try:
        packed, out = zstd_compress(data, long_window=True), path.with_name(path.name + ".zst")
    except RuntimeError:
        packed, out = gzip.compress(data, compresslevel=9, mtime=0), path.with_name(path.name + ".gz")
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(packed)
    tmp.replace(out)
    path.unlink()
    return out


def pack_machine(site: Path, rel: str) -> dict[str, Any]:
    """The saved machine ``rel`` (a plain PYN9MACH blob, with ``rel.json`` beside it, as
    build-machine.mjs writes them) packed for the wire: the manifest's ``machine`` entry (url,
    stamp, bytes on the wire, raw) for it, also written beside it as ``URL.json``."""
    packed = pack_for_wire(site / rel)
    side = site / (rel + ".json")
    info = json.loads(side.read_text())
    info["bytes"] = packed.stat().st_size
    url = packed.relative_to(site).as_posix()
    (site / (url + ".json")).write_text(json.dumps(info) + "\n")
    side.unlink()
    return {"url": url, **info}


def main(argv: list[str] | None = None) -> int:
    """``python -m pyninep_browser.sitefiles pack FILE`` (prints the packed file's path) or
    ``… pack-machine SITE REL`` (prints its manifest entry): build.sh's steps."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "pack":
        print(pack_for_wire(Path(args[1])))
        return 0
    if len(args) == 3 and args[0] == "pack-machine":
        print(json.dumps(pack_machine(Path(args[1]), args[2])))
        return 0
    print("usage: python -m pyninep_browser.sitefiles pack FILE | pack-machine SITE REL", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
