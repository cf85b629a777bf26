"""End to end: the real Linux guest in real v86 (Node), its root filesystem served by our Python in
Pyodide through dist/pyninep.js. One boot for the whole module; each test is a scenario a user of
the guest would run. The scenarios of v86's own 9p device tests come first, then ours.
"""

import hashlib
import os
import shutil
import subprocess

import pytest

from guest import ROOT, Guest


@pytest.fixture(scope="module")
def guest():
    # PYNINEP_E2E_SERVE=1: the same scenarios with the files on `serve --ws` (the page's server
    # mode, pyninep-remote.js); the scenarios that save the page's server state are skipped.
    if os.environ.get("PYNINEP_E2E_SERVE"):
        from serving import Serve

        served = Serve("--ws", "127.0.0.1:0", "--image", str(ROOT / "dist/images/default.img"))
        g = Guest("--server", served.ws)
        g.served = served
        yield g
        g.close()
        served.stop()
        return
    g = Guest()
    yield g
    g.close()


def page_server_only(guest) -> None:
    if getattr(guest, "served", None):
        pytest.skip("the page's own Python (live files, its saved state): not in server mode")


def test_boots_to_a_shell_with_root_on_host9p(guest):
    out = guest.sh("mount; cat /etc/hostname")
    assert "host9p on / type 9p" in out and "trans=virtio" in out
    assert "pyninep" in out
    print(f"boot to a shell: {guest.info['boot_ms']} ms")  # a number for the log, not a timed test


# ----------------------------------------------------------------- v86's 9p scenarios


def test_read_existing_file(guest):
    assert guest.sh("cat /etc/passwd").startswith("root:x:0:0:")


def test_read_new_file_written_from_the_page(guest):
    guest.write_file("/root/from-page.txt", b"written by the page\n")
    assert guest.sh("cat /root/from-page.txt") == "written by the page\n"


def test_write_new_file_read_by_the_page(guest):
    guest.sh("printf 'from the guest\\n' > /root/from-guest.txt")
    assert guest.read_file("/root/from-guest.txt") == b"from the guest\n"


def test_timestamps_of_a_new_file(guest):
    out = guest.sh("date +%s; touch /root/ts; stat -c '%X %Y %Z' /root/ts")
    now = int(out.split()[0])
    a, m, c = (int(x) for x in out.split()[1:4])
    assert a == m == c and abs(m - now) <= 2


def test_move(guest):
    guest.sh("echo moving > /root/m1; mkdir -p /root/mdir; mv /root/m1 /root/mdir/m2")
    assert guest.sh("cat /root/mdir/m2; ls /root/m1 2>&1 || true") == (
        "moving\nls: /root/m1: No such file or directory\n")


def test_unlink(guest):
    guest.sh("echo x > /root/gone; rm /root/gone")
    status, out = guest.run("cat /root/gone")
    assert status != 0 and "No such file" in out


def test_hard_links(guest):
    out = guest.sh("echo shared > /root/h1; ln /root/h1 /root/h2; echo more >> /root/h2;"
                   "cat /root/h1; stat -c '%h %i' /root/h1 /root/h2")
    lines = out.splitlines()
    assert lines[:2] == ["shared", "more"]
    assert lines[2] == lines[3] and lines[2].startswith("2 ")


def test_symlinks(guest):
    out = guest.sh("echo target > /root/t; ln -s /root/t /root/s; cat /root/s; ls -l /root/s")
    assert out.startswith("target\n") and "/root/s -> /root/t" in out


def test_mknod_fifo(guest):
    out = guest.sh("mkfifo /root/fifo; (echo through-the-fifo > /root/fifo &); cat /root/fifo;"
                   "stat -c %F /root/fifo")
    assert out == "through-the-fifo\nfifo\n"


def test_readlink(guest):
    assert guest.sh("ln -s some/relative/target /root/rl; readlink /root/rl") == "some/relative/target\n"


def test_mkdir(guest):
    assert guest.sh("mkdir -p /root/a/b/c; stat -c %F /root/a/b/c") == "directory\n"


def test_walk(guest):
    guest.sh("mkdir -p /root/w/x/y/z; echo deep > /root/w/x/y/z/file")
    assert guest.sh("cd /root/w/x/y/z && cat ./file ../z/file ../../y/z/file") == "deep\n" * 3


def test_statfs(guest):
    out = guest.sh("stat -f -c '%l %b %a %c' /")
    namelen, blocks, avail, files = (int(x) for x in out.split())
    assert namelen == 255 and blocks > 0 and 0 < avail <= blocks and files > 0


def test_file_attributes(guest):
    out = guest.sh("touch /root/attr; chmod 640 /root/attr; chown 1000:100 /root/attr;"
                   "stat -c '%a %u %g %s' /root/attr")
    assert out == "640 1000 100 0\n"


def test_a_new_files_block_count_is_the_servers_at_once(guest):
    # du and ls -s right after a write: the cached mount counted the bytes' floor (0 blocks for
    # a 3-byte file, so du said 0 until the attributes were fetched again); the server counts
    # whole 512-byte units. The second script's attributes come from the server (Guest.sh
    # writes the script through it, so the guest drops what it cached first).
    script = "cd /root; stat -c '%b' blk-small blk-big; du -k blk-small blk-big"
    first = guest.sh("cd /root; echo hi > blk-small; head -c 100000 /dev/zero > blk-big; " + script)
    assert first.split() == ["1", "196", "1", "blk-small", "98", "blk-big"], first
    assert guest.sh(script) == first


def test_xattr_list_and_create(guest):
    out = guest.sh("touch /root/xa; setfattr -n user.colour -v blue /root/xa;"
                   "setfattr -n user.size -v 42 /root/xa; getfattr -d --absolute-names /root/xa;"
                   "setfattr -x user.colour /root/xa; getfattr --absolute-names -d /root/xa")
    assert 'user.colour="blue"' in out and 'user.size="42"' in out
    assert out.count("user.colour") == 1  # removed the second time
    assert guest.run("getfattr -n user.missing /root/xa")[0] != 0


def test_file_locks_with_flock(guest):
    # The holder signals once it has the lock, so a slow machine cannot reorder the two.
    out = guest.sh("touch /root/lockfile; rm -f /root/holding;"
                   "flock -x /root/lockfile sh -c 'touch /root/holding; sleep 2' &"
                   "while [ ! -e /root/holding ]; do sleep 1; done;"
                   "flock -n -x /root/lockfile true && echo got-it || echo busy;"
                   "wait; flock -n -x /root/lockfile true && echo free-again", timeout=60)
    assert out.split() == ["busy", "free-again"]


def test_stress_many_files(guest):
    out = guest.sh("mkdir /root/many && cd /root/many && i=0;"
                   "while [ $i -lt 400 ]; do echo $i > f$i; i=$((i+1)); done;"
                   "ls | wc -l; cat f123 f399", timeout=180)
    assert out.split() == ["400", "123", "399"]


def test_stress_many_directories(guest):
    out = guest.sh("mkdir /root/dirs && cd /root/dirs && i=0;"
                   "while [ $i -lt 200 ]; do mkdir d$i/ 2>/dev/null || mkdir d$i; i=$((i+1)); done;"
                   "ls -d d* | wc -l; find /root/dirs -type d | wc -l", timeout=180)
    assert out.split() == ["200", "201"]


def test_read_past_end(guest):
    out = guest.sh("printf 12345 > /root/short; dd if=/root/short bs=1 skip=10 count=5 2>/dev/null | wc -c;"
                   "dd if=/root/short bs=4 skip=1 2>/dev/null")
    assert out == "0\n5"


# ----------------------------------------------------------------- beyond v86's tests


def test_16_mib_file_round_trips_with_the_same_checksum(guest):
    out = guest.sh("dd if=/dev/urandom of=/root/big bs=1M count=16 2>/dev/null;"
                   "sha256sum /root/big; sync; echo 3 > /proc/sys/vm/drop_caches;"
                   "sha256sum /root/big; stat -c %s /root/big", timeout=240)
    first, second, size = out.splitlines()
    assert first.split()[0] == second.split()[0] and size == str(16 << 20)
    assert hashlib.sha256(guest.read_file("/root/big")).hexdigest() == first.split()[0]


def test_unlinked_file_stays_readable_through_its_descriptor(guest):
    out = guest.sh("echo still-readable > /root/open-then-gone;"
                   "exec 3</root/open-then-gone; rm /root/open-then-gone;"
                   "ls /root/open-then-gone 2>/dev/null || echo name-gone; cat <&3; exec 3<&-")
    assert out == "name-gone\nstill-readable\n"


def test_255_byte_names_work_and_256_fail(guest):
    name = "n" * 255
    out = guest.sh(f"touch /root/{name} && ls /root | grep -c '^n\\{{255\\}}$'")
    assert out == "1\n"
    status, out = guest.run(f"touch /root/{'n' * 256}")
    assert status != 0 and "too long" in out.lower()


def test_touch_d_and_chmod_4755_seen_by_stat(guest):
    out = guest.sh("touch /root/when; touch -d '2001-02-03 04:05:06' /root/when;"
                   "chmod 4755 /root/when; stat -c '%a %Y' /root/when; date -d @$(stat -c %Y /root/when) -u +%F")
    mode, mtime = out.split()[:2]
    assert mode == "4755"
    assert out.split()[2] == "2001-02-03"


def test_rm_rf_of_a_tree(guest):
    out = guest.sh("mkdir -p /root/tree/a/b/c /root/tree/d; i=0;"
                   "while [ $i -lt 50 ]; do echo $i > /root/tree/a/b/c/f$i; ln -s f$i /root/tree/d/l$i;"
                   " i=$((i+1)); done; rm -rf /root/tree; ls /root/tree 2>&1 || true", timeout=120)
    assert "No such file" in out


def test_df_of_the_mount(guest):
    out = guest.sh("df -k / | tail -1")
    fields = out.split()
    assert fields[0] == "host9p" and int(fields[1]) > 0 and fields[-1] == "/"


def test_rename_over_a_non_empty_directory_fails(guest):
    out = guest.sh("mkdir -p /root/r1 /root/r2/x; mv -T /root/r1 /root/r2 2>&1; echo $?")
    assert out.strip().endswith("1") and ("not empty" in out.lower() or "exists" in out.lower())


def test_non_root_user_permissions(guest):
    out = guest.sh("echo secret > /root/secret; chmod 600 /root/secret;"
                   "su user -c 'cat /root/secret' 2>&1 || echo denied;"
                   "su user -c 'echo mine > /home/user/mine && ls -n /home/user/mine'")
    assert "denied" in out and "secret\n" not in out.split("denied")[0].split("\n", 1)[-1]
    assert " 1000 " in out


def test_default_image_runs_python_written_to_py_run(guest):
    page_server_only(guest)
    # The default image's live files, re-attached from dist/images/default.py at start-up.
    assert guest.sh("echo 'print(6*7)' > /py/run; cat /py/run") == "42\n"
    assert "emscripten" in guest.sh("cat /py/version")


def test_saved_machine_restores_guest_and_files_together(guest):
    page_server_only(guest)
    guest.sh("echo before-save > /root/state; exec 4>/root/held; echo keep >&4")
    info = guest.request("save", wait=180)
    assert info["fs_bytes"] > 0 and info["v86_bytes"] > 0
    guest.sh("echo after-save > /root/state; rm /root/held")
    guest.request("restore", wait=180)
    assert guest.sh("cat /root/state; cat /root/held") == "before-save\nkeep\n"
    # Live files are re-attached by name in the restored state.
    assert guest.sh("echo 'print(\"after\", \"restore\")' > /py/run; cat /py/run") == "after restore\n"


# ----------------------------------------------------------------- permissions under access=client
# The guest's kernel checks permissions with the process's real credentials (fsuid, fsgid, every
# supplementary group); our server must neither refuse what it allowed nor guess other owners.
# Each scenario runs twice in this boot, as exact credentials through tests/guest_tools/credo.c:
# on our 9p root and on the guest's own tmpfs, and both must print the same lines.

CREDO_SOURCE = ROOT / "tests" / "guest_tools" / "credo.c"


@pytest.fixture(scope="module")
def credo(guest, tmp_path_factory):
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("gcc is missing (./build.sh test installs gcc-multilib)")
    out = tmp_path_factory.mktemp("credo") / "credo"
    build = subprocess.run([gcc, "-m32", "-static", "-Os", "-o", str(out), str(CREDO_SOURCE)],
                           capture_output=True, text=True)
    if build.returncode != 0:
        pytest.fail(f"cannot build credo for the i386 guest (gcc-multilib?): {build.stderr[-1500:]}")
    guest.write_file("/usr/local/bin/credo", out.read_bytes())
    guest.sh("chmod 755 /usr/local/bin/credo; mkdir -p /var/conf /run/ref;"
             "mountpoint -q /run/ref || mount -t tmpfs ref /run/ref; chmod 777 /var/conf /run/ref")
    return "credo"


def same_on_tmpfs(guest, name: str, setup: str, ops: str) -> list[str]:
    """Run ``setup`` (as root) then ``ops`` in a fresh directory $D on our root and on the guest's
    tmpfs; both must print the same; returns the lines."""
    outputs = {}
    for top in ("/var/conf", "/run/ref"):
        d = f"{top}/{name}"
        outputs[top] = guest.sh(f"D={d}; rm -rf $D; mkdir $D; chmod 777 $D; cd $D\n{setup}\n{ops}")
    ours, tmpfs = outputs["/var/conf"], outputs["/run/ref"]
    assert ours == tmpfs, f"{name}: ours\n{ours}\nthe guest's tmpfs\n{tmpfs}"
    return ours.splitlines()


# (name, setup as root, operations, the lines Linux prints)
PERMISSION_SCENARIOS = [
    ("chgrp-to-a-supplementary-group",
     "touch f; chown 65534:65534 f",
     "credo 65534 65532 65532,65531 chown $D/f -1 65532 , stat $D/f",
     ["chown OK", "stat 65534 65532 100644"]),
    ("chown-to-self-and-a-supplementary-group",
     "touch f; chown 65534:65534 f",
     "credo 65534 65532 65532,65531 chown $D/f 65534 65531 , stat $D/f",
     ["chown OK", "stat 65534 65531 100644"]),
    ("chgrp-to-the-egid",
     "touch f; chown 65534:65534 f",
     "credo 65534 65533 65533,65534 chown $D/f -1 65533 , stat $D/f",
     ["chown OK", "stat 65534 65533 100644"]),
    ("new-nodes-take-the-egid",
     "",
     "credo 65533 65532 - mkdir $D/d 755 , mkfifo $D/p 644 , mknod $D/n 644 , open $D/c wc 644"
     " , stat $D/d , stat $D/p , stat $D/n , stat $D/c",
     ["mkdir OK", "mkfifo OK", "mknod OK", "open OK", "stat 65533 65532 40755",
      "stat 65533 65532 10644", "stat 65533 65532 10644", "stat 65533 65532 100644"]),
    ("create-mode-0-then-ftruncate-the-open-descriptor",
     "",
     "credo 65534 65534 - open $D/f rwc 0 , ftruncate 0 , write data , ftruncate 2 , stat $D/f",
     ["open OK", "ftruncate OK", "write OK", "ftruncate OK", "stat 65534 65534 100000"]),
    ("other-bits-apply-to-a-user-outside-the-group",
     "touch f; chown 65534:65534 f; chmod 006 f",
     "credo 65533 65533 - open $D/f r , open $D/f w , open $D/f rw",
     ["open OK", "open OK", "open OK"]),
    ("write-by-another-user-clears-setuid-and-executable-setgid",
     "touch f; chown 65534:65534 f; chmod 6777 f",
     "credo 65533 65533 - open $D/f w , write x , close , stat $D/f",
     ["open OK", "write OK", "close OK", "stat 65534 65534 100777"]),
    ("write-from-outside-the-group-clears-setgid-even-without-group-execute",
     "touch f; chown 65534:65534 f; chmod 2766 f",
     "credo 65533 65533 - open $D/f w , write x , close , stat $D/f",
     ["open OK", "write OK", "close OK", "stat 65534 65534 100766"]),
    ("write-by-a-group-member-keeps-setgid-without-group-execute",
     "touch f; chown 65534:65533 f; chmod 2766 f",
     "credo 65533 65533 - open $D/f w , write x , close , stat $D/f",
     ["open OK", "write OK", "close OK", "stat 65534 65533 102766"]),
    ("owner-writing-its-setuid-file-clears-it",
     "touch f; chown 65534:65534 f; chmod 4755 f",
     "credo 65534 65534 - open $D/f w , write x , close , stat $D/f",
     ["open OK", "write OK", "close OK", "stat 65534 65534 100755"]),
    ("root-writing-a-setuid-file-keeps-it",
     "touch f; chmod 4755 f",
     "credo 0 0 - open $D/f w , write x , close , stat $D/f",
     ["open OK", "write OK", "close OK", "stat 0 0 104755"]),
    ("chown-by-root-clears-setuid",
     "touch f; chmod 6755 f",
     "credo 0 0 - chown $D/f 65533 -1 , stat $D/f",
     ["chown OK", "stat 65533 0 100755"]),
    ("chmod-g+s-outside-the-group-is-dropped",
     "touch f; chown 65534:65530 f",
     "credo 65534 65534 - chmod $D/f 2755 , stat $D/f , chmod $D/f 4755 , stat $D/f",
     ["chmod OK", "stat 65534 65530 100755", "chmod OK", "stat 65534 65530 104755"]),
    ("sticky-directory-protects-other-users-files",
     "mkdir s; chmod 1777 s; touch s/f; chown 65534 s/f",
     "credo 65533 65533 - unlink $D/s/f , rename $D/s/f $D/s/g , open $D/s/mine wc , unlink $D/s/mine",
     ["unlink EPERM", "rename EPERM", "open OK", "unlink OK"]),
    ("setgid-directory-gives-its-group",
     "mkdir g; chown 0:65531 g; chmod 2777 g",
     "credo 65533 65532 - mkdir $D/g/sub 755 , open $D/g/file wc 2755 , stat $D/g/sub , stat $D/g/file",
     ["mkdir OK", "open OK", "stat 65533 65531 42755", "stat 65533 65531 100755"]),
    ("times-by-a-non-owner",
     "touch f; chown 65534:65534 f; chmod 666 f",
     "credo 65533 65533 - utime $D/f now , utime $D/f 1000 , chmod $D/f 777 , chown $D/f -1 65533",
     ["utime OK", "utime EPERM", "chmod EPERM", "chown EPERM"]),
]


@pytest.mark.parametrize("name,setup,ops,expected", PERMISSION_SCENARIOS,
                         ids=[s[0] for s in PERMISSION_SCENARIOS])
def test_permissions_as_the_guest_kernel_decides(guest, credo, name, setup, ops, expected):
    assert same_on_tmpfs(guest, name, setup, ops) == expected


def test_truncate_times_match_the_guests_tmpfs(guest, credo):
    # Linux sets mtime and ctime on every truncate, even to the same size, and on O_TRUNC.
    lines = same_on_tmpfs(
        guest, "truncate-times", "printf abc > f; touch -d '2001-01-01 00:00:00' f",
        "show() { [ $(stat -c %Y f) -lt 1000000000 ] && echo old || echo new; }\n"
        "credo 0 0 - truncate $D/f 3; show\n"
        "credo 0 0 - truncate $D/f 2; show; touch -d '2001-01-01 00:00:00' f\n"
        "credo 0 0 - open $D/f w , ftruncate 2 , close; show; touch -d '2001-01-01 00:00:00' f\n"
        "credo 0 0 - open $D/f wt; show")
    assert lines == ["truncate OK", "new", "truncate OK", "new", "open OK", "ftruncate OK",
                     "close OK", "new", "open OK", "new"]


def test_creates_over_names_the_cache_forgot_match_the_guests_tmpfs(guest, credo):
    """Our kernel creates first and looks a name up only when it is taken (a name asked for with
    O_CREAT that is not in the dcache): what that name is must not change what open(O_CREAT)
    does. Each step forgets the names first (/sys/fs/9p/invalidate; nothing on tmpfs)."""
    forget = "echo 1 >/sys/fs/9p/invalidate; "
    lines = same_on_tmpfs(
        guest, "create-first", "echo old > f; mkdir d; ln -s t l; ln -s f m",
        f"{forget}echo new > f; cat f; stat -c '%s %h %F' f\n"
        f"{forget}(set -C; echo x > f) 2>/dev/null && echo clobbered || echo kept; cat f\n"
        f"{forget}(echo x > d) 2>/dev/null || echo not-a-file\n"
        f"{forget}echo through-a-dangling-link > l; cat t\n"
        f"{forget}echo through-a-link >> m; cat f\n"
        f"{forget}(set -C; echo fresh > g) && cat g; stat -c '%s %h %a %F' g\n"
        f"{forget}rm f; echo again > f; cat f")
    assert lines == ["new", "4 1 regular file", "kept", "new", "not-a-file", "through-a-dangling-link",
                     "new", "through-a-link", "fresh", "6 1 644 regular file", "again"]


# ----------------------------------------------------------------- machine blob (last: it rolls the guest back)


def test_machine_blob_restores_into_new_objects_with_a_descriptor_still_open(guest):
    page_server_only(guest)
    # fd 3 is opened in the guest's top shell (via the serial line), so it outlives the script;
    # the file's name is then removed, so only the open fid can still read it.
    guest.sh("echo held-open-across-restore > /root/fd3file")
    guest.request("run", script="exec 3</root/fd3file; rm /root/fd3file", via_serial=True)
    info = guest.request("saveMachine", wait=180)
    assert info["bytes"] > 0
    guest.sh("echo after-save > /root/after-save")
    # A damaged blob is refused and the running machine is untouched (it keeps answering, the
    # file written after the save is still there).
    for where in (3, 45, info["bytes"] // 2, info["bytes"] - 1):
        refused = guest.request("restoreMachine", corrupt=where, wait=60)
        assert "not a usable machine blob" in refused["refused"] and refused["running"]
    assert guest.sh("cat /root/after-save") == "after-save\n"
    restored = guest.request("restoreMachine", wait=180)
    out = guest.request("run", script="cat <&3; ls /root/after-save 2>&1; exec 3<&-", via_serial=True)
    assert out["status"] == 0 and out["output"].startswith("held-open-across-restore\n")
    assert "No such file" in out["output"]  # the machine is back at the save: no later files
    print(f"machine blob {info['bytes']:,} bytes, save {info['save_ms']} ms, "
          f"restore into new objects {restored['restore_ms']} ms")


# ----------------------------------------------------------------- coherence with the page
# The guest mounts its root with cache=loose (docs/guest.md): it keeps names, attributes and file
# pages. When the page changes files (writeFile, remove, mkdir, importTar) or a live file's Python
# does (/py/run here), the guest drops its caches before the call resolves (the drop loop on its
# second serial port), so its next cat, ls and stat see the change. Each case first makes the
# guest cache what is about to change.

SEE = "cat /root/co/f 2>&1; ls -1 /root/co; stat -c '%s %h' /root/co/f 2>&1 | tail -1"


def _cached(guest, content: bytes) -> str:
    guest.sh("rm -rf /root/co; mkdir /root/co")
    guest.write_file("/root/co/f", content)
    guest.write_file("/root/co/keep", b"k\n")
    return guest.sh(SEE + "; cat /root/co/f /root/co/f >/dev/null")  # read twice: in its page cache


def _py(guest, code: str) -> None:
    """A live file's Python changes files: /py/run runs it in the page, with the served tree."""
    guest.sh(f"cat > /py/run <<'EOF'\nfrom pyninep_browser.live import context\nfs = context().fs\n"
             f"{code}\nEOF\nout=$(cat /py/run); [ -z \"$out\" ] || {{ echo \"$out\"; exit 1; }}")


def test_the_guest_sees_the_pages_write_at_once(guest):
    before = _cached(guest, b"one\n")
    assert before.startswith("one\nf\nkeep\n4 1")
    guest.write_file("/root/co/f", b"two, longer\n")
    assert guest.sh(SEE) == "two, longer\nf\nkeep\n12 1\n"


def test_the_guest_sees_the_pages_remove_and_mkdir_at_once(guest):
    _cached(guest, b"here\n")
    guest.request("remove", path="/root/co/f")
    guest.request("mkdir", path="/root/co/newdir")
    out = guest.sh(SEE + "; test -d /root/co/newdir && echo isdir")
    assert out.startswith("cat: can't open '/root/co/f': No such file or directory\nkeep\nnewdir\n")
    assert out.endswith("isdir\n")


def test_the_guest_sees_a_live_files_rename_and_truncate_at_once(guest):
    page_server_only(guest)
    _cached(guest, b"to be renamed\n")
    guest.sh("cat /root/co/keep >/dev/null; stat /root/co/keep >/dev/null")
    _py(guest, "root = fs.resolve('/root/co')\nfs.rename(root, 'f', root, 'g')\n"
               "fs.truncate(fs.resolve('/root/co/keep'), 0)")
    out = guest.sh(SEE + "; cat /root/co/g; stat -c %s /root/co/keep")
    assert out == ("cat: can't open '/root/co/f': No such file or directory\ng\nkeep\n"
                   "stat: can't stat '/root/co/f': No such file or directory\nto be renamed\n0\n")


def test_the_guest_sees_an_imported_tar_at_once(guest):
    import base64
    import io
    import tarfile

    _cached(guest, b"old\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("co/f")
        info.size = 8
        tar.addfile(info, io.BytesIO(b"from tar"))
    guest.request("importTar", data=base64.b64encode(buf.getvalue()).decode(), dir="/root")
    assert guest.sh("cat /root/co/f; echo; stat -c %s /root/co/f") == "from tar\n8\n"


def test_the_guests_own_writes_reach_the_page_at_once(guest):
    # Cached files write through: the page reads what the guest wrote without any sync.
    guest.sh("mkdir -p /root/co; echo guest-wrote > /root/co/w; dd if=/dev/zero bs=1k count=300 2>/dev/null"
             " | tr '\\0' x >> /root/co/w")
    data = guest.read_file("/root/co/w")
    assert data.startswith(b"guest-wrote\n") and len(data) == 12 + 300 * 1024
