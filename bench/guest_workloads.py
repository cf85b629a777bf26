"""Guest workloads on v86's built-in JavaScript 9p and on ours, same guest, same run (not a test).

    .venv/bin/python bench/guest_workloads.py [--rounds N] [--variants builtin,none,loose,proxy,shim]

``proxy`` and ``shim``: the files on a ``serve --ws`` server (memory) in another process, over
v86's own ``proxy_url`` and over the page's shim (``createServer({server})``'s handle9p).
``builtin`` is v86's 9p with ``cache=none`` (the ratios are against it); ``builtin-loose`` the
same with the guest's ``cache=loose``; ``loose`` is ours as the guest mounts it (docs/guest.md).

Each variant boots the same kernel and initramfs with ``pyninep.root=none``: host9p is mounted on
/mnt and the shell stays in the initramfs, so the workload binaries are identical everywhere; the
guest's own tmpfs (/tmp) is the floor. All the variants' guests are booted first and each round
takes the columns in turn, so the machine's drift over minutes falls on every column alike.
Times are measured inside the guest (/proc/uptime, 10 ms resolution; the 16 MiB rows run PASSES
passes) and the best of N rounds is kept. Prints a table of ms and ratios against v86's 9p.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from guest import Guest  # noqa: E402

MOUNT = "trans=virtio,version=9p2000.L,msize=524288,access=client,cache={cache}"

SETUP = """
mkdir -p /tmp/src; i=0
while [ $i -lt 300 ]; do echo "file $i $(seq $i $((i+20)))" > /tmp/src/f$i; i=$((i+1)); done
mkdir -p /tmp/src/sub/deeper; cp /tmp/src/f1* /tmp/src/sub/deeper/
tar cf /tmp/src.tar -C /tmp src
"""

# name, shell (D is the directory under test). The two 16 MiB rows take tens of ms, as long as
# the clock's 10 ms step and the time it takes to read the clock (a fork and an exec, 20-35 ms
# here): each runs PASSES times between two readings, and its row is the time of one pass.
PASSES = 5
EACH = "for p in " + " ".join(["x"] * PASSES) + "; do {}; done"
WORKLOADS = [
    ("write 16 MiB", EACH.format("dd if=/dev/zero of=$D/big bs=1M count=16 2>/dev/null; sync")),
    ("read 16 MiB", EACH.format("echo 3 > /proc/sys/vm/drop_caches; cat $D/big > /dev/null")),
    ("untar 300 files", "tar xf /tmp/src.tar -C $D"),
    ("find", "find $D/src > /dev/null"),
    ("ls -lR", "ls -lR $D/src > /dev/null"),
    ("stat x1000", "i=0; while [ $i -lt 1000 ]; do stat -t $D/src/f1 > /dev/null; i=$((i+1)); done"),
    ("create x500", "mkdir $D/c; i=0; while [ $i -lt 500 ]; do : > $D/c/f$i; i=$((i+1)); done"),
    ("rm -rf", "rm -rf $D/src $D/c $D/big"),
    # Small files (copy/v86 #1451: cat of 2,500 small files, 9p against the root disk).
    ("create 2500 small", "mkdir $D/s; i=0; while [ $i -lt 2500 ]; do echo \"small $i\" > $D/s/f$i; i=$((i+1)); done"),
    ("cat 2500 small", "cat $D/s/* > /dev/null"),
    ("grep -r 2500", "grep -r 'small 1234$' $D/s > /dev/null"),
    ("rm -rf 2500", "rm -rf $D/s"),
]

def passes(name: str) -> int:
    return PASSES if "16 MiB" in name else 1


TIMED = """
now() {{ set -- $(cat /proc/uptime); c=${{1%.*}}${{1#*.}}; echo $((c * 10)); }}
D={d}; mkdir -p $D; rm -rf $D/*
{body}
"""


def round_script(directory: str, extra: str = "") -> str:
    """Every workload once in ``directory`` (then ``extra``), each printing ``name=ms`` (the
    16 MiB rows: one pass's time)."""
    body = "\n".join(f't=$(now); {cmd}; echo "{name}=$(( ($(now) - t) / {passes(name)} ))"'
                     for name, cmd in WORKLOADS)
    return TIMED.format(d=directory, body=body + extra)


def keep_best(out: str, results: dict[str, int]) -> None:
    """The ``name=ms`` lines of a round's output into ``results``, each row keeping its best."""
    for line in out.splitlines():
        if "=" in line:
            name, ms = line.rsplit("=", 1)
            if ms.strip().lstrip("-").isdigit():
                results[name] = min(results.get(name, 1 << 30), int(ms))


def run_round(g: Guest, directory: str, results: dict[str, int]) -> None:
    """One pass of every workload in ``directory`` of guest ``g``; each row keeps its best."""
    keep_best(g.sh(round_script(directory), timeout=900), results)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--variants", default="builtin,none,loose")
    opts = ap.parse_args()
    variants = opts.variants.split(",")
    started = time.time()
    # (column, guest arguments, directory in that guest)
    plan: list[tuple[str, list[str], str]] = []
    if "builtin" in variants:
        builtin = ["--builtin", "--root", "none", "--mount", MOUNT.format(cache="none")]
        plan += [("v86 9p", builtin, "/mnt/bench"), ("tmpfs", builtin, "/tmp/bench")]
    if "builtin-loose" in variants:  # v86's 9p under the mount ours has (its files: qid.version 0)
        plan.append(("v86 9p loose", ["--builtin", "--root", "none", "--mount", MOUNT.format(cache="loose")],
                     "/mnt/bench"))
    for cache in ("none", "loose", "mmap"):
        if cache in variants:
            plan.append((f"ours cache={cache}", ["--root", "none", "--mount", MOUNT.format(cache=cache)],
                         "/mnt/bench"))
    served = [v for v in ("proxy", "shim") if v in variants]
    serve = None
    if served:
        from serving import Serve

        serve = Serve("--ws", "127.0.0.1:0")
        assert serve.ws is not None
        for v in served:
            flag = "--proxy" if v == "proxy" else "--server"
            plan.append((f"serve {v}", [flag, serve.ws, "--root", "none", "--mount", MOUNT.format(cache="none")],
                         "/mnt/bench"))
    # Every guest is up before the first round, and the rounds take the columns in turn: this
    # machine's speed drifts by tens of per cent over minutes, and a column measured minutes
    # after another would carry that drift into the ratio. (Idle guests halt: they cost little.)
    guests: dict[tuple[str, ...], Guest] = {}
    columns: dict[str, dict[str, int]] = {column: {} for column, _, _ in plan}
    try:
        for _, args, _ in plan:
            if tuple(args) not in guests:
                g = guests[tuple(args)] = Guest(*args)
                g.sh(SETUP, timeout=300)
        for _ in range(opts.rounds):
            for column, args, directory in plan:
                run_round(guests[tuple(args)], directory, columns[column])
    finally:
        for g in guests.values():
            g.close()
        if serve is not None:
            serve.stop()
    names = [n for n, _ in WORKLOADS]
    heads = list(columns)
    print(f"guest workloads, best of {opts.rounds} rounds taking the columns in turn, ms (10 ms clock; "
          f"16 MiB rows: one of {PASSES} passes); ratio = ours / v86 9p (cache=none)")
    print(f"{'workload':<17}" + "".join(f"{h:>18}" for h in heads) + "".join(
        f"{'ratio ' + h.split()[-1]:>19}" for h in heads if h.startswith(("ours", "serve"))))
    for n in names:
        row = f"{n:<17}" + "".join(f"{columns[h].get(n, -1):>18}" for h in heads)
        base = columns.get("v86 9p", {}).get(n)
        for h in heads:
            if h.startswith(("ours", "serve")):
                mine = columns[h].get(n)
                row += f"{(mine / base if base else float('nan')):>19.2f}" if mine is not None else f"{'-':>19}"
        print(row)
    print(f"(bench took {time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
