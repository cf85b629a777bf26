"""How tests/data/state-v2.* were made: with the code of commit cf5cbec (snapshot FORMAT 2,
positional fid lists), before the state format moved to named records. Kept to show what they hold;
rerunning it with later code writes the current format instead."""
import stat, sys
sys.path.insert(0, "tests")
from test_snapshot import rpc
from pyninep_browser import Server, Filesystem, snapshot
from pyninep_browser.protocol import NOFID, T
fs = Filesystem(quota_bytes=64 << 20)
fs.write_file("/etc/hostname", b"guest\n")
fs.add_symlink("/bin/sh", "busybox")
fs.write_file("/bin/busybox", b"\x7fELF" + bytes(range(256)) * 20, mode=0o755)
fs.add_hardlink("/bin/ls", "/bin/busybox")
fs.add_node("/dev/null", stat.S_IFCHR | 0o666, rdev=0x103)
fs.add_node("/run/fifo", stat.S_IFIFO | 0o600)
f = fs.write_file("/sparse", b"")
fs.write(f, 5 << 20, b"tail")
fs.setxattr(fs.resolve("/bin/busybox"), "security.capability", b"\x01\x02")
fs.setxattr(fs.resolve("/etc/hostname"), "user.note", "héllo".encode())
fs.write_file("/odd/\udcff-name", b"surrogate-escaped name")
s = Server(fs)
rpc(s, T.Tversion, 65536, "9P2000.L", tag=0xFFFF)
rpc(s, T.Tattach, 1, NOFID, "root", "", 0)
rpc(s, T.Twalk, 1, 2, ["etc", "hostname"])
rpc(s, T.Tlopen, 2, 2)
rpc(s, T.Tlock, 2, 1, 0, 0, 10, 42, "guest")
rpc(s, T.Twalk, 1, 3, ["bin"])
rpc(s, T.Txattrwalk, 2, 4, "user.note")
rpc(s, T.Twalk, 1, 5, ["run"])
rpc(s, T.Txattrcreate, 5, "user.pending", 3, 0)
rpc(s, T.Twrite, 5, 0, b"ab")
open("tests/data/state-v2.server", "wb").write(snapshot.save(s))
open("tests/data/state-v2.session", "wb").write(snapshot.save_session(s))
open("tests/data/state-v2.filesystem", "wb").write(snapshot.save_filesystem(fs))
print("ok")
