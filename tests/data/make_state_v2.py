"""How tests/data/state-v2.* were made: with the code of commit cf5cbec (snapshot FORMAT 2,
positional fid lists), before the state format moved to named records. Kept to show what they hold;
rerunning it with later code writes the current format instead."""
import sys
sys.path.insert(0, "tests")
from test_snapshot import build_tree, rpc
from pyninep_browser import Server, snapshot
from pyninep_browser.protocol import NOFID, T
fs = build_tree(busybox_kib=5)  # the tree every snapshot test uses, with a small busybox
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
