"""Image files and tar: the ``image`` commands end to end on CPython, against the host's own
filesystem and Python's tarfile as independent readers."""

import hashlib
import os
import stat
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from pyninep_browser.__main__ import main
from pyninep_browser.archive import entries, import_tar
from pyninep_browser.authoring import Tree, major, minor
from pyninep_browser.imagefile import FORMAT, HEADER_SIZE, ImageError, dump_image, load_image

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = '''
from pyninep_browser.authoring import live_file

clock = live_file("test-image-clock", read=lambda: "tick\\n")

def build(tree, owner="1000"):
    uid = int(owner)
    (tree / "etc/motd").write_text("hello\\n", mtime_ns=1_234_567_890_123_456_789)
    (tree / "home/u").mkdir(0o750, uid=uid, gid=uid)
    (tree / "home/u/secret").write_bytes(bytes(range(256)) * 300, mode=0o600, uid=uid, gid=100,
                                         xattrs={"user.note": b"\\xff\\x00binary", "trusted.t": "root only"})
    (tree / "bin/tool").write_bytes(b"#!/bin/sh\\necho tool\\n", mode=0o4755)
    (tree / "bin/alias").hardlink_to("/bin/tool")
    (tree / "bin/rel").symlink_to("tool")
    (tree / "bin/abs").symlink_to("/etc/motd")
    (tree / "dev/null").mknod("c", 1, 3, mode=0o666)
    (tree / "dev/disk").mknod("b", 259, 70000)
    (tree / "run/pipe").mkfifo(0o620)
    (tree / "old").write_text("before 1970", mtime_ns=-1_500_000_000)
    (tree / "srv/clock").live(clock)
    (tree / "empty/dir").mkdir(0o1777)
'''


def _tree_rows(fs, top="/"):
    """Everything an image must keep, per path, comparably."""
    rows = {}
    for rel, inode in entries(fs, top):
        if rel == ".":
            continue
        kind = inode.mode & 0o170000
        rows[rel] = {
            "mode": inode.mode, "uid": inode.uid, "gid": inode.gid,
            "mtime": inode.mtime, "atime": inode.atime if kind != stat.S_IFDIR else None,
            "xattrs": dict(inode.xattrs or {}), "nlink": inode.nlink if kind != stat.S_IFDIR else None,
            "data": hashlib.sha256(fs.stored_bytes(inode)).hexdigest()
            if kind == stat.S_IFREG and inode.chunks is not None else None,
            "target": inode.target, "rdev": inode.rdev, "ino_group": None,
        }
    return rows


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("img")
    script = d / "site.py"
    script.write_text(SCRIPT)
    out = d / "site.img"
    assert main(["image", "build", str(script), "-o", str(out), "--arg", "owner=1000"]) == 0
    return d, out


def test_build_then_ls_shows_every_kind_of_entry(built, capsys):
    d, img = built
    capsys.readouterr()
    assert main(["image", "ls", str(img), "/", "-R"]) == 0
    out = capsys.readouterr().out
    lines = {line.rsplit(" ", 1)[-1] if " -> " not in line else line.split(" -> ")[0].rsplit(" ", 1)[-1]: line
             for line in out.splitlines()}
    assert lines["/home/u/secret"].startswith("-rw-------   1  1000   100     76800 ")
    assert lines["/bin/tool"].startswith("-rwsr-xr-x   2 ")
    assert "/bin/rel -> tool" in out and "/bin/abs -> /etc/motd" in out
    assert lines["/dev/null"].startswith("crw-rw-rw-") and "1, 3" in lines["/dev/null"]
    assert "259, 70000" in lines["/dev/disk"] and lines["/run/pipe"].startswith("prw--w----")
    assert "1234567890.123456789 /etc/motd" in out and "-1.500000000 /old" in out
    assert "[live: test-image-clock]" in out
    assert main(["image", "ls", str(img), "/etc"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("/etc/motd")


def test_build_then_extract_gives_the_same_tree_on_the_host(built, tmp_path):
    _, img = built
    dest = tmp_path / "out"
    assert main(["image", "extract", str(img), str(dest)]) == 0
    fs = load_image(img.read_bytes())
    am_root = os.geteuid() == 0
    for rel, inode in entries(fs):
        host = dest / rel
        st = os.lstat(host)
        assert st.st_mode == inode.mode if (am_root or not stat.S_ISCHR(inode.mode)) else True, rel
        if not stat.S_ISLNK(inode.mode):
            assert st.st_mtime_ns == inode.mtime, rel
        if am_root:
            assert (st.st_uid, st.st_gid) == (inode.uid, inode.gid), rel
        if stat.S_ISREG(inode.mode):
            assert host.read_bytes() == fs.stored_bytes(inode), rel
            assert st.st_nlink == inode.nlink, rel
        if stat.S_ISLNK(inode.mode):
            assert os.readlink(host).encode() == inode.target
        if stat.S_ISCHR(inode.mode) or stat.S_ISBLK(inode.mode):
            assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (major(inode.rdev), minor(inode.rdev))
    assert os.lstat(dest / "bin/tool").st_ino == os.lstat(dest / "bin/alias").st_ino
    try:
        assert os.getxattr(dest / "home/u/secret", "user.note") == b"\xff\x00binary"
    except OSError as exc:  # a host filesystem without user xattrs (some tmpfs)
        pytest.skip(f"host has no user xattrs: {exc}")


def test_tar_round_trip_matches_tarfile_and_keeps_everything(built, tmp_path):
    _, img = built
    tar_path = tmp_path / "t.tar"
    assert main(["image", "export-tar", str(img), "-o", str(tar_path)]) == 0
    fs = load_image(img.read_bytes())
    # Python's tarfile, reading the same tar, sees what the image holds.
    with tarfile.open(tar_path) as tar:
        assert tar.pax_headers == {} and all(m.pax_headers for m in tar)
        members = {m.name: m for m in tar}
    secret = members["home/u/secret"]
    assert (secret.mode, secret.uid, secret.gid, secret.size) == (0o600, 1000, 100, 76800)
    assert secret.pax_headers["SCHILY.xattr.user.note"].encode("utf-8", "surrogateescape") == b"\xff\x00binary"
    assert members["etc/motd"].pax_headers["mtime"] == "1234567890.123456789"
    assert members["old"].pax_headers["mtime"] == "-1.500000000"
    assert members["bin/alias"].islnk() and members["bin/alias"].linkname == "bin/tool" \
        or members["bin/tool"].islnk() and members["bin/tool"].linkname == "bin/alias"
    assert members["bin/rel"].issym() and members["bin/rel"].linkname == "tool"
    assert members["dev/disk"].isblk() and (members["dev/disk"].devmajor, members["dev/disk"].devminor) == (259, 70000)
    assert members["dev/null"].ischr() and members["run/pipe"].isfifo()
    assert members["bin/tool"].mode == 0o4755 or members["bin/alias"].mode == 0o4755
    for rel, inode in entries(fs):
        if rel == ".":
            continue
        m = members[rel]
        assert m.uid == inode.uid and m.gid == inode.gid, rel
        assert int(m.pax_headers["mtime"].split(".")[0]) == inode.mtime // 10**9 or inode.mtime < 0, rel
    # import-tar of that tar: the same tree.
    img2 = tmp_path / "again.img"
    assert main(["image", "import-tar", str(tar_path), "-o", str(img2)]) == 0
    again = load_image(img2.read_bytes())
    assert _tree_rows(again) == _tree_rows(fs)
    assert again.resolve("/bin/tool").ino == again.resolve("/bin/alias").ino
    # Exporting again gives the same tar, byte for byte.
    tar2 = tmp_path / "t2.tar"
    assert main(["image", "export-tar", str(img2), "-o", str(tar2)]) == 0
    assert tar2.read_bytes() == tar_path.read_bytes()


def test_import_tar_from_gnu_tar_and_refuses_escapes(tmp_path):
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d/f").write_text("gnu")
    os.utime(src / "d/f", ns=(5_000_000_007, 6_000_000_008))
    gnu = tmp_path / "gnu.tar.gz"
    subprocess.run(["tar", "--format=pax", "-czf", str(gnu), "-C", str(src), "."], check=True)
    tree = Tree()
    import_tar(tree, gnu, "/x")
    assert (tree / "x/d/f").read_text() == "gnu" and (tree / "x/d/f").stat().st_mtime_ns == 6_000_000_008
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("../../escape")
        tar.addfile(info, None)
    tree = Tree()
    import_tar(tree, evil, "/safe")
    assert [str(p) for p in tree.walk()] == ["/", "/safe"]


def test_corrupt_truncated_newer_and_foreign_images_are_refused_in_one_line(built, tmp_path, capsys):
    _, img = built
    data = img.read_bytes()
    cases = {
        "corrupt": data[:HEADER_SIZE + 100] + bytes([data[HEADER_SIZE + 100] ^ 1]) + data[HEADER_SIZE + 101:],
        "truncated": data[:-10],
        "newer": data[:8] + struct.pack("<I", FORMAT + 1) + data[12:],
        "foreign": b"hello, not an image at all" * 3,
    }
    expected = {"corrupt": "checksum", "truncated": "truncated", "newer": "newer", "foreign": "not a pyninep image"}
    for name, bad in cases.items():
        path = tmp_path / f"{name}.img"
        path.write_bytes(bad)
        with pytest.raises(ImageError, match=expected[name]):
            load_image(bad)
        capsys.readouterr()
        assert main(["image", "ls", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(path) in err and expected[name] in err, err


def test_images_without_the_container_still_load_and_dump_round_trips():
    from pyninep_browser import snapshot
    tree = Tree()
    (tree / "f").write_text("x")
    bare = snapshot.save_filesystem(tree.fs)
    assert (Tree(load_image(bare)) / "f").read_text() == "x"
    assert (Tree(load_image(dump_image(tree.fs))) / "f").read_text() == "x"


def test_a_script_error_is_one_line_with_the_script_line(tmp_path, capsys):
    script = tmp_path / "bad.py"
    script.write_text("def build(tree):\n    (tree / 'f').write_text('x')\n    (tree / 'f/g').write_text('y')\n")
    assert main(["image", "build", str(script), "-o", str(tmp_path / "x.img")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "line 3" in err and not (tmp_path / "x.img").exists()


def test_old_image_command_form_still_builds_the_default_image(tmp_path):
    busybox = tmp_path / "busybox"
    busybox.write_text("#!/bin/sh\nprintf 'bin/busybox\\nbin/ls\\nusr/bin/awk\\n'\n")
    busybox.chmod(0o755)
    extra = tmp_path / "flock"
    extra.write_bytes(b"flock binary")
    out = tmp_path / "default.img"
    proc = subprocess.run([sys.executable, "-m", "pyninep_browser", "image", "--busybox", str(busybox),
                           "--extra", f"/usr/bin/flock={extra}", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    tree = Tree(load_image(out.read_bytes()))
    assert (tree / "usr/bin/awk").readlink() == "/bin/busybox"
    assert (tree / "usr/bin/flock").read_bytes() == b"flock binary"
    assert set(tree.live_files().values()) == {"run", "version", "stats", "modules"}


def test_default_image_live_files_through_9p():
    from ninep_client import Client
    from pyninep_browser import Server
    from pyninep_browser import default_image  # noqa: F401 - its declarations register
    from pyninep_browser.authoring import attach

    tree = Tree()
    (tree / "etc/passwd").write_text("root:x:0:0::/:/bin/sh\n")
    for name in ("run", "version", "stats", "modules"):
        (tree / "py" / name).write_bytes(b"")
        (tree / "py" / name).xattrs["trusted.pyninep.live"] = name
    (tree / "py/modules").unlink()
    (tree / "py/modules").mkdir()
    (tree / "py/modules").xattrs["trusted.pyninep.live"] = "modules"
    attach(tree.fs)
    server = Server(tree.fs)
    server.enable_stats()
    c = Client(server)

    def write(path, data):
        f = c.walk_new(path)
        c.lopen(f, 1 | 0o1000)
        c.write(f, 0, data)
        c.clunk(f)

    def read(path):
        f = c.walk_new(path)
        c.lopen(f, 0)
        out = c.read(f, 0, 1 << 16)
        c.clunk(f)
        return out.decode()

    write("py/run", b"print(6*7)\n")
    assert read("py/run") == "42\n"
    write("py/run", b"def f():\n    1/0\nf()\n")
    out = read("py/run")
    assert out.startswith("Traceback (most recent call last):") and 'File "/py/run", line 3' in out
    assert out.rstrip().endswith("ZeroDivisionError: division by zero") and "default_image" not in out
    write("py/run", b"input()\n")  # no prompt, no hang: end of file
    assert read("py/run").rstrip().endswith("EOFError: EOF when reading a line")
    write("py/run", b"print(1\n")
    assert "SyntaxError" in read("py/run")
    assert read("py/version").startswith("Python 3.")
    stats = read("py/stats")
    assert "Tlopen" in stats and "bytes_out" in stats
    d = c.walk_new("py/modules")
    c.lopen(d, 0)
    assert "pyninep_browser.authoring" in c.readdir_all(d)


def test_image_build_refuses_an_arg_named_like_its_own_keywords(tmp_path):
    """``--arg tree=…`` cannot reach build(): one readable line, exit 2, no traceback."""
    script = tmp_path / "s.py"
    script.write_text("def build(tree, **kw):\n    (tree / 'f').write_text('x')\n")
    for name in ("tree", "source"):
        done = subprocess.run([sys.executable, "-m", "pyninep_browser", "image", "build", str(script),
                               "-o", str(tmp_path / "x.img"), "--arg", f"{name}=1"],
                              capture_output=True, text=True)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
        assert f"--arg {name}=" in done.stderr
