#!/usr/bin/env bash
# pyninep-browser build: ./build.sh [build] | serve | test | bench | clean
#   build  make dist/: a self-contained static site (v86, Pyodide, our wheel, the guest, the image)
#   serve  build, then serve dist/ on http://127.0.0.1:8000/ (PORT=… to change)
#   test   install what is missing, build, check the Python (ruff lint and format, mypy) and the
#          page's JavaScript (tsc), run the whole suite (pytest)
#   bench  build, then run the benchmarks (dispatcher, serve over TCP/WebSocket, JS<->Python crossing, replayed guest
#          requests, guest workloads, the page's time to a prompt, IndexedDB persistence,
#          machine blobs, the crash test)
#   clean  remove dist/ (downloads stay cached in $PYNINEP_CACHE)
# Downloads are cached in ${PYNINEP_CACHE:-~/.cache/pyninep-browser} and checked by sha256.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
CACHE=${PYNINEP_CACHE:-$HOME/.cache/pyninep-browser}
VENV=$ROOT/.venv
PY=$VENV/bin/python
DIST=$ROOT/dist
KERNEL_SERIES=6.1.0
CMDLINE="console=ttyS0 quiet tsc=reliable mitigations=off random.trust_cpu=on"

die() { echo "build.sh: $*" >&2; exit 1; }
say() { echo "build.sh: $*" >&2; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is missing: $2"; }

# A stamp holds the hash of its inputs; a step reruns only when they change.
stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -d' ' -f1; }

apt_install() { # apt_install PACKAGE… (root, Debian): only what is missing
    local missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" = 0 ] || die "need Debian packages ${missing[*]}: run 'sudo apt-get install ${missing[*]}'"
    say "installing ${missing[*]}"
    apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
}

setup_venv() {
    need python3 "install Python 3.11 or newer"
    [ -x "$PY" ] || python3 -m venv "$VENV" || die "python3 -m venv failed: install python3-venv"
    local h; h=$(hash_of pyproject.toml)
    if ! stamp_ok "$VENV/.stamp" "$h"; then
        say "installing Python dependencies into .venv"
        "$PY" -m pip install -q --upgrade pip >/dev/null
        "$PY" -m pip install -q -e ".[test]" flit_core || die "pip install failed (is PyPI reachable?)"
        echo "$h" > "$VENV/.stamp"
    fi
}

# Lint, format and types over the package (config: pyproject.toml); a failure is one line that
# names the check and the command that shows it.
check_py() {
    local check
    for check in "ruff check pyninep_browser" "ruff format --check pyninep_browser" "mypy"; do
        "$PY" -m $check >/dev/null 2>&1 || die "'$check' failed: run '.venv/bin/python -m $check' to see it"
    done
}

setup_npm() {
    need node "install Node.js 20 or newer"
    need npm "install npm"
    local h; h=$(hash_of web/package.json web/package-lock.json)
    if ! stamp_ok web/node_modules/.stamp "$h"; then
        say "installing npm packages (v86, pyodide)"
        (cd web && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed (is the npm registry reachable?)"
        echo "$h" > web/node_modules/.stamp
    fi
}

# The guest: Debian's i386 kernel, busybox, SeaBIOS, the few tools busybox lacks (flock,
# getfattr/setfattr with the libc they load) and the terminal descriptions (ncurses-base: the
# page's terminal is xterm-256color), fetched with a private package list.
GUEST_PACKAGES="seabios busybox-static util-linux attr libc6 ncurses-base"
fetch_guest() {
    need dpkg-deb "this build needs Debian's dpkg tools"
    local debs=$CACHE/debs lists=$CACHE/lists
    mkdir -p "$debs" "$lists/partial"
    local o=(-oAPT::Architecture=i386 -oAPT::Architectures=i386 "-oDir::State::Lists=$lists"
             -oDir::Cache::pkgcache= -oDir::Cache::srcpkgcache= -oDebug::NoLocking=1)
    if [ -f "$debs/SHA256SUMS" ] && (cd "$debs" && sha256sum --quiet -c SHA256SUMS >/dev/null 2>&1); then
        # A cache from before a package was added to the list: fetch only what it lacks (the
        # kernel and the rest stay as they are).
        local p missing=()
        for p in $GUEST_PACKAGES; do compgen -G "$debs/${p}_*.deb" >/dev/null || missing+=("$p"); done
        [ ${#missing[@]} -eq 0 ] && return 0
        say "fetching ${missing[*]} (i386) from Debian"
        ls "$lists"/*Packages* >/dev/null 2>&1 || apt-get "${o[@]}" update -qq >/dev/null 2>&1 || true
        (cd "$debs" && apt-get "${o[@]}" download "${missing[@]}" >/dev/null 2>&1) \
            || die "apt-get download of ${missing[*]} failed"
        (cd "$debs" && sha256sum ./*.deb > SHA256SUMS)
        return 0
    fi
    say "fetching the i386 guest packages from Debian"
    # A mirror mid-sync fails some indexes; what is listed is still usable.
    apt-get "${o[@]}" update -qq >/dev/null 2>&1 || true
    local kernel
    kernel=$(apt-cache "${o[@]}" pkgnames "linux-image-$KERNEL_SERIES-" 2>/dev/null \
             | grep -E "^linux-image-$KERNEL_SERIES-[0-9]+-686-unsigned$" | sort -V | tail -1)
    [ -n "$kernel" ] || die "no linux-image-$KERNEL_SERIES-*-686-unsigned in Debian's i386 lists (network? see $lists)"
    rm -f "$debs"/*.deb "$debs/SHA256SUMS"
    (cd "$debs" && apt-get "${o[@]}" download $GUEST_PACKAGES "$kernel" >/dev/null 2>&1) \
        || die "apt-get download of $GUEST_PACKAGES $kernel failed"
    # apt checked each file against the signed index; keep their sums to check the cache later.
    (cd "$debs" && sha256sum ./*.deb > SHA256SUMS)
    rm -rf "$CACHE/root"
}

extract_guest() {
    local h; h=$(hash_of "$CACHE/debs/SHA256SUMS")
    stamp_ok "$CACHE/root/.stamp" "$h" && return 0
    rm -rf "$CACHE/root"; mkdir -p "$CACHE/root"
    for deb in "$CACHE"/debs/*.deb; do dpkg-deb -x "$deb" "$CACHE/root" || die "cannot unpack $deb"; done
    echo "$h" > "$CACHE/root/.stamp"
}

build_guest() {
    local r=$CACHE/root g=$DIST/guest
    mkdir -p "$g" "$DIST/images"
    local kernel; kernel=$(ls "$r"/boot/vmlinuz-* | sort -V | tail -1)
    [ -f "$kernel" ] || die "no kernel in $r/boot"
    cp -u "$r/usr/share/seabios/bios.bin" "$g/bios.bin"
    cp -u "$r/usr/share/seabios/vgabios-stdvga.bin" "$g/vgabios.bin"
    cp -u "$kernel" "$g/vmlinuz"
    local src; src=$(hash_of pyninep_browser/*.py pyninep_browser/*/*.py "$CACHE/debs/SHA256SUMS")
    if ! stamp_ok "$g/.stamp" "$src" || [ ! -f "$g/initramfs.img" ] || [ ! -f "$DIST/images/default.img" ] \
            || [ ! -f "$DIST/images/default.py" ]; then
        say "writing the initramfs and the default image"
        "$PY" -m pyninep_browser initramfs --kernel-root "$r" --busybox "$r/bin/busybox" \
            --out "$g/initramfs.img" >/dev/null
        # The default root is an authoring script (copy it to make your own image); the page
        # runs the same script at start-up to re-attach its live files (/py/run…).
        "$PY" -m pyninep_browser image build pyninep_browser/default_image.py \
            -o "$DIST/images/default.img" --arg guest_root="$r" >/dev/null
        cp pyninep_browser/default_image.py "$DIST/images/default.py"
        echo "$src" > "$g/.stamp"
    fi
}

build_wheel() {
    local h; h=$(hash_of pyproject.toml pyninep_browser/*.py pyninep_browser/*/*.py README.md)
    if ! stamp_ok "$DIST/wheels/.stamp" "$h"; then
        rm -rf "$DIST/wheels"; mkdir -p "$DIST/wheels"
        # A pure-Python wheel (py3-none-any): Pyodide unpacks it as it is. See docs/page.md.
        "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$DIST/wheels" . >/dev/null \
            || die "building the wheel failed"
        echo "$h" > "$DIST/wheels/.stamp"
    fi
}

build_site() {
    local nm=web/node_modules
    mkdir -p "$DIST/pyodide" "$DIST/v86" "$DIST/xterm"
    for f in pyodide.mjs pyodide.asm.mjs pyodide.asm.wasm python_stdlib.zip pyodide-lock.json; do
        cp -u "$nm/pyodide/$f" "$DIST/pyodide/$f"
    done
    cp -u "$nm/v86/build/libv86.mjs" "$nm/v86/build/v86.wasm" "$DIST/v86/"
    cp -u "$nm/@xterm/xterm/lib/xterm.mjs" "$nm/@xterm/xterm/lib/xterm.mjs.map" \
          "$nm/@xterm/xterm/css/xterm.css" "$nm/@xterm/addon-fit/lib/addon-fit.mjs" \
          "$nm/@xterm/addon-fit/lib/addon-fit.mjs.map" "$DIST/xterm/"
    cp web/pyninep.js web/pyninep-idb.js web/pyninep-machine.js web/pyninep-remote.js web/machine.js web/app.js web/index.html "$DIST/"
    # The page's parts (web/page/*.js): whole, so a part added there ships without a change here;
    # write_manifest lists them (and the service worker caches them) like every file of dist/.
    rm -rf "$DIST/page"; cp -r web/page "$DIST/page"
    write_manifest
}

write_manifest() { # write_manifest [MACHINE_FILE [PYODIDE_SNAPSHOT]]: manifest.json, then the service worker
    local wheel; wheel=$(cd "$DIST" && ls wheels/*.whl)
    local machine="" m=${1:-} snap=""
    [ -n "${2:-}" ] && snap="\"pyodideSnapshot\": \"$2\","
    if [ -n "$m" ] && [ -f "$DIST/$m.json" ]; then
        machine=$(cd "$DIST" && "$PY" -c 'import json,sys; i=json.load(open(sys.argv[1]+".json")); print(json.dumps({"url": sys.argv[1], **i}))' "$m")
        machine="\"machine\": $machine,"
    fi
    # Every file of the site with its size: the page's progress bars know totals up front, and
    # the service worker caches exactly this build.
    local sizes; sizes=$(cd "$DIST" && find . -type f ! -name '.*' ! -name '*.tmp' \
        ! -name sw.js ! -name manifest.json -printf '%P\t%s\n' | sort \
        | "$PY" -c 'import json,sys; print(json.dumps(dict((p, int(n)) for p, n in (l.rstrip("\n").split("\t") for l in sys.stdin))))')
    cat > "$DIST/manifest.json.tmp" <<EOF
{
  "wheel": "$wheel",
  "image": "images/default.img",
  "script": "images/default.py",
  "pyodide": "pyodide/",
  "v86": "v86/",
  $snap
  $machine
  "guest": {
    "bios": "guest/bios.bin",
    "vgabios": "guest/vgabios.bin",
    "kernel": "guest/vmlinuz",
    "initrd": "guest/initramfs.img",
    "cmdline": "$CMDLINE",
    "memory": 268435456
  },
  "sizes": $sizes
}
EOF
    mv "$DIST/manifest.json.tmp" "$DIST/manifest.json"
    # The service worker of this build: its cache name changes whenever any file does.
    local build; build=$(cd "$DIST" && find . -type f ! -name sw.js ! -name '.*' -print0 | sort -z \
        | xargs -0 sha256sum | sha256sum | cut -c1-16)
    local files; files=$(cd "$DIST" && "$PY" -c 'import json; print(json.dumps(["./", "manifest.json", *json.load(open("manifest.json"))["sizes"]]))')
    sed -e "s|__BUILD__|$build|" -e "s|__FILES__|$files|" web/sw.js > "$DIST/sw.js"
}

# The first visit's fast start: boot the default guest once in Node and save it at its prompt
# (web/build-machine.mjs). Rebuilt only when what the machine is made of changes: the kernel,
# initramfs, image, the Python that serves it, v86, and the scripts that make it.
build_machine() {
    local n=web/node_modules/v86/build
    local h; h=$(hash_of "$DIST/guest/vmlinuz" "$DIST/guest/initramfs.img" "$DIST/guest/bios.bin" \
        "$DIST/guest/vgabios.bin" "$DIST/images/default.img" pyproject.toml pyninep_browser/*.py pyninep_browser/*/*.py \
        web/pyninep.js web/pyninep-machine.js web/machine.js web/build-machine.mjs "$n/libv86.mjs" "$n/v86.wasm" \
        <(echo "$CMDLINE"))
    local m="machine/${h:0:16}.machine"
    if [ ! -f "$DIST/$m" ] || [ ! -f "$DIST/$m.json" ]; then
        say "saving the booted machine for the first visit's fast start (once per guest change)"
        rm -rf "$DIST/machine"; mkdir -p "$DIST/machine"
        node web/build-machine.mjs "$DIST" "$DIST/$m" "$h" >&2 || die "saving the machine failed"
    fi
    # Python's start-up, saved too: a Pyodide memory snapshot with our package imported.
    local p; p=$(hash_of "$DIST/pyodide/pyodide.asm.wasm" "$DIST/pyodide/pyodide.asm.mjs" \
        "$DIST/pyodide/python_stdlib.zip" pyproject.toml pyninep_browser/*.py pyninep_browser/*/*.py \
        web/build-pyodide.mjs)
    local s="pysnap/${p:0:16}.bin.gz"
    if [ ! -f "$DIST/$s" ]; then
        say "saving Python's start-up (a Pyodide memory snapshot)"
        rm -rf "$DIST/pysnap"; mkdir -p "$DIST/pysnap"
        node web/build-pyodide.mjs "$DIST" "$DIST/$s" >&2 || die "saving the Pyodide snapshot failed"
    fi
    write_manifest "$m" "$s"
}

# The page's and the shim's JavaScript checked against their JSDoc types (web/tsconfig.json).
check_js() {
    setup_npm
    local out first
    if ! out=$(cd web && node_modules/.bin/tsc -p . --noEmit 2>&1); then
        first=$(grep -m1 'error TS' <<<"$out" | sed 's|^|web/|' || true)
        die "the page's JavaScript does not type-check: ${first:-$(head -1 <<<"$out")} (all errors: cd web && npm run check)"
    fi
}

build() {
    setup_venv
    setup_npm
    fetch_guest
    extract_guest
    build_guest
    build_wheel
    build_site
    build_machine
    say "dist/ ready ($(du -sh "$DIST" | cut -f1))"
}

verb=${1:-build}
case "$verb" in
    build) build ;;
    serve) build; exec "$PY" -m pyninep_browser site "$DIST" --port "${PORT:-8000}" ;;
    test)
        apt_install chromium gcc-multilib  # gcc -m32: the guest tests build tests/guest_tools/credo.c
        build
        check_py  # ruff (lint and format) and mypy over pyninep_browser/
        check_js  # tsc --checkJs over the page's modules
        shift || true
        exec "$PY" -m pytest "$@" ;;
    bench)
        build
        shift || true
        "$PY" bench/dispatch.py
        "$PY" bench/serve.py  # serve over TCP and WebSocket, 1 and 50 clients, vs in-process
        "$PY" bench/store.py
        node bench/crossing.mjs dist
        trace="${TMPDIR:-/tmp}/pyninep-trace.bin"  # the guest's requests, replayed without it
        "$PY" bench/replay.py record "$trace"
        "$PY" bench/replay.py replay "$trace"
        node bench/replay.mjs dist "$trace" --thrash 8
        "$PY" bench/live_files.py
        "$PY" bench/guest_workloads.py "$@"
        "$PY" bench/page.py "$DIST"
        "$PY" bench/terminal.py "$DIST"  # lines/s to the screen and piped, Ctrl+C
        "$PY" bench/base_images.py "$DIST"  # fs2json base images against today's image and v86's 9p
        node bench/zstd.mjs "$DIST"
        # persistence in the page (real Chromium): chunk size, workloads on IndexedDB vs memory
        # vs v86's 9p with the fsync'd 1 MiB write, machine blobs, the long crash test
        "$PY" bench/idb_chunks.py
        "$PY" bench/idb_workloads.py
        "$PY" bench/machine_blob.py
        "$PY" bench/idb_crash.py --runs 100 --guest 3 ;;
    clean) rm -rf "$DIST" ;;
    *) die "unknown verb '$verb': use build, serve, test, bench or clean" ;;
esac
