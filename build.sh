#!/usr/bin/env bash
# pyninep-browser build: ./build.sh [build [OPTIONS]] | debian | serve | test | bench | clean
#   build  make dist/: a self-contained static site (v86, Pyodide, our wheel, the guest, the image)
#          OPTIONS (docs/your-site.md):
#            --image SCRIPT.py    your authoring script's build(tree), added to the base
#            --base debian|busybox  the userland under it (default debian: docs/debian.md)
#            --arg NAME=VALUE     passed to build(tree, NAME=VALUE); repeatable
#            --out DIR            where the site goes (default dist/)
#   debian the same as build (the Debian userland is the default base)
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
SITE_BASE=debian   # the userland under the site's image: debian or busybox (--base)
SITE_SCRIPT=""     # the user's authoring script (--image), run after pyninep_browser/default_image.py
SITE_ARGS=()       # --arg NAME=VALUE, passed on to image build
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

# apt for the guest's i386 packages through a private package list in LISTS (nothing on the host
# changes): apt_i386 LISTS apt-get|apt-cache ARGS…
apt_i386() {
    local lists=$1 tool=$2; shift 2
    "$tool" -oAPT::Architecture=i386 -oAPT::Architectures=i386 "-oDir::State::Lists=$lists" \
        -oDir::Cache::pkgcache= -oDir::Cache::srcpkgcache= -oDebug::NoLocking=1 "$@"
}
# A download cache (DIR/*.deb) still holds what apt checked when it was fetched.
sums_ok() { [ -f "$1/SHA256SUMS" ] && (cd "$1" && sha256sum --quiet -c SHA256SUMS >/dev/null 2>&1); }

# The guest: Debian's i386 kernel, busybox, SeaBIOS, the few tools busybox lacks (flock,
# getfattr/setfattr with the libc they load) and the terminal descriptions (ncurses-base: the
# page's terminal is xterm-256color), fetched with a private package list.
GUEST_PACKAGES="seabios busybox-static util-linux attr libc6 ncurses-base"
fetch_guest() {
    need dpkg-deb "this build needs Debian's dpkg tools"
    local debs=$CACHE/debs lists=$CACHE/lists
    mkdir -p "$debs" "$lists/partial"
    if sums_ok "$debs"; then
        # A cache from before a package was added to the list: fetch only what it lacks (the
        # kernel and the rest stay as they are).
        local p missing=()
        for p in $GUEST_PACKAGES; do compgen -G "$debs/${p}_*.deb" >/dev/null || missing+=("$p"); done
        [ ${#missing[@]} -eq 0 ] && return 0
        say "fetching ${missing[*]} (i386) from Debian"
        ls "$lists"/*Packages* >/dev/null 2>&1 || apt_i386 "$lists" apt-get update -qq >/dev/null 2>&1 || true
        (cd "$debs" && apt_i386 "$lists" apt-get download "${missing[@]}" >/dev/null 2>&1) \
            || die "apt-get download of ${missing[*]} failed"
        (cd "$debs" && sha256sum ./*.deb > SHA256SUMS)
        return 0
    fi
    say "fetching the i386 guest packages from Debian"
    # A mirror mid-sync fails some indexes; what is listed is still usable.
    apt_i386 "$lists" apt-get update -qq >/dev/null 2>&1 || true
    local kernel
    kernel=$(apt_i386 "$lists" apt-cache pkgnames "linux-image-$KERNEL_SERIES-" 2>/dev/null \
             | grep -E "^linux-image-$KERNEL_SERIES-[0-9]+-686-unsigned$" | sort -V | tail -1)
    [ -n "$kernel" ] || die "no linux-image-$KERNEL_SERIES-*-686-unsigned in Debian's i386 lists (network? see $lists)"
    rm -f "$debs"/*.deb "$debs/SHA256SUMS"
    (cd "$debs" && apt_i386 "$lists" apt-get download $GUEST_PACKAGES "$kernel" >/dev/null 2>&1) \
        || die "apt-get download of $GUEST_PACKAGES $kernel failed"
    # apt checked each file against the signed index; keep their sums to check the cache later.
    (cd "$debs" && sha256sum ./*.deb > SHA256SUMS)
    rm -rf "$CACHE/root"
}

# The guest's kernel: Debian's 6.1 source (linux-source-6.1, the same release as the packaged
# kernel) configured for v86 by pyninep_browser/kernel.py, built once (about 6 minutes on two
# cores) and cached by the source package's and the configuration's hashes. Its memory is about
# half of Debian's 686 kernel's, which halves the saved machine a first visit downloads.
# PYNINEP_KERNEL=debian uses Debian's packaged 686 kernel (9p as modules in the initramfs).
KERNEL=${PYNINEP_KERNEL:-v86}
KERNEL_SOURCE=linux-source-6.1
fetch_kernel_source() {
    local d=$CACHE/kernel-source lists=$CACHE/lists
    sums_ok "$d" && return 0
    say "fetching Debian's kernel source ($KERNEL_SOURCE, 140 MB)"
    mkdir -p "$d" "$lists/partial"
    ls "$lists"/*Packages* >/dev/null 2>&1 || apt_i386 "$lists" apt-get update -qq >/dev/null 2>&1 || true
    rm -f "$d"/*.deb "$d/SHA256SUMS"
    (cd "$d" && apt_i386 "$lists" apt-get download "$KERNEL_SOURCE" >/dev/null 2>&1) \
        || die "apt-get download of $KERNEL_SOURCE failed (is Debian's archive reachable?)"
    (cd "$d" && sha256sum ./*.deb > SHA256SUMS)
}

build_kernel() { # sets KERNEL_IMAGE
    fetch_kernel_source
    local h; h=$(hash_of "$CACHE/kernel-source/SHA256SUMS" pyninep_browser/kernel.py pyninep_browser/kernel_patches/*.patch)
    local out=$CACHE/kernel/${h:0:16}
    KERNEL_IMAGE=$out/bzImage
    [ -f "$KERNEL_IMAGE" ] && return 0
    need make "install make and gcc"
    need gcc "install gcc"
    apt_install flex bison bc patch
    say "building the guest's kernel from Debian's source for v86 (once: about 6 minutes on 2 cores)"
    local w=$CACHE/kernel/build log=$CACHE/kernel/build.log deb
    deb=$(ls "$CACHE"/kernel-source/*.deb)
    rm -rf "$w"; mkdir -p "$w"
    dpkg-deb --fsys-tarfile "$deb" | tar -xO "./usr/src/$KERNEL_SOURCE.tar.xz" \
        | tar -xJ -C "$w" --strip-components=1 \
        || die "cannot unpack $deb"
    local p
    for p in $("$PY" -m pyninep_browser.kernel patches); do
        patch -p1 -s -d "$w" < "$p" >> "$log" 2>&1 || die "the kernel patch $p does not apply: see $log"
    done
    "$PY" -m pyninep_browser.kernel fragment > "$w/pyninep.config"
    (cd "$w" && make ARCH=i386 tinyconfig && scripts/kconfig/merge_config.sh -m .config pyninep.config \
        && make ARCH=i386 olddefconfig) > "$log" 2>&1 || die "configuring the kernel failed: see $log"
    "$PY" -m pyninep_browser.kernel check "$w/.config" || die "see pyninep_browser/kernel.py"
    make -C "$w" ARCH=i386 -j"$(( $(nproc) + 1 ))" bzImage >> "$log" 2>&1 \
        || die "building the kernel failed: $(grep -m1 -i error "$log" || tail -1 "$log") (all of it: $log)"
    mkdir -p "$out"
    cp "$w/.config" "$out/config"
    cp "$w/arch/x86/boot/bzImage" "$KERNEL_IMAGE.tmp" && mv "$KERNEL_IMAGE.tmp" "$KERNEL_IMAGE"
    rm -rf "$w"
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
    local kernel modules
    case "$KERNEL" in
        v86) build_kernel; kernel=$KERNEL_IMAGE; modules=(--builtin) ;;
        debian) kernel=$(ls "$r"/boot/vmlinuz-* | sort -V | tail -1); modules=(--kernel-root "$r") ;;
        *) die "PYNINEP_KERNEL=$KERNEL: use v86 (the default) or debian" ;;
    esac
    [ -f "$kernel" ] || die "no kernel ($kernel)"
    cp -u "$r/usr/share/seabios/bios.bin" "$g/bios.bin"
    cp -u "$r/usr/share/seabios/vgabios-stdvga.bin" "$g/vgabios.bin"
    cmp -s "$kernel" "$g/vmlinuz" || cp "$kernel" "$g/vmlinuz"
    local src; src=$(hash_of pyninep_browser/initramfs.py "$CACHE/debs/SHA256SUMS" <(echo "$KERNEL"))
    if ! stamp_ok "$g/.stamp" "$src" || [ ! -f "$g/initramfs.img" ]; then
        say "writing the initramfs"
        "$PY" -m pyninep_browser initramfs "${modules[@]}" --busybox "$r/bin/busybox" \
            --out "$g/initramfs.img" >/dev/null
        echo "$src" > "$g/.stamp"
    fi
}

# The site's image: pyninep_browser/default_image.py (/py's live files, and with --base busybox
# the whole busybox root), then the user's script (--image), on the chosen base. On Debian the
# image holds the tree and references into dist/debian/base/, which the page fetches on first read.
build_image() {
    local r=$CACHE/root img=$DIST/images
    mkdir -p "$img"
    local scripts=(pyninep_browser/default_image.py) base_args=() base_stamp=()
    [ -n "$SITE_SCRIPT" ] && scripts+=("$SITE_SCRIPT")
    if [ "$SITE_BASE" = debian ]; then
        base_args=(--base "$DIST/debian/fs.json" "$DIST/debian/base")
        base_stamp=("$DIST/debian/.stamp")
    else
        base_args=(--arg "guest_root=$r")
    fi
    local src; src=$(hash_of pyninep_browser/*.py pyninep_browser/*/*.py "$CACHE/debs/SHA256SUMS" "${scripts[@]}" \
        <(echo "$SITE_BASE ${SITE_ARGS[*]-}") ${base_stamp[@]+"${base_stamp[@]}"})
    # The script's REQUIRES first: their wheels are importable while it runs (a pure-Python wheel
    # imports from its zip), so a script may import them at module level as the page will.
    fetch_requires "${SITE_SCRIPT:-pyninep_browser/default_image.py}" "$DIST"  # none declared: no download
    local wheels; wheels=$(find "$DIST/requires" -name '*.whl' ! -name 'micropip-*' -printf '%p:' 2>/dev/null || true)
    if ! stamp_ok "$img/.stamp" "$src" || [ ! -f "$img/default.img" ] || [ ! -f "$img/default.py" ]; then
        say "authoring the image: ${scripts[*]} on $SITE_BASE"
        PYTHONPATH="$wheels${PYTHONPATH:-}" "$PY" -m pyninep_browser image build "${scripts[@]}" -o "$img/default.img" "${base_args[@]}" \
            ${SITE_ARGS[@]+"${SITE_ARGS[@]}"} >/dev/null || die "building the image failed (the line above says why)"
        # The page runs this script at start-up to re-attach its live files (/py's are always
        # declared: pyninep_browser/default_image.py is in the wheel).
        cp "${SITE_SCRIPT:-pyninep_browser/default_image.py}" "$img/default.py"
        echo "$src" > "$img/.stamp"
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

# The Python packages an authoring script's live files need (its module-level REQUIRES, read
# without running it): pure-Python wheels and micropip into DIST/requires/ with index.json, which
# write_manifest names as manifest.requires and the page installs from (docs/authoring.md). A
# script that declares none leaves no DIST/requires/. Checked wheels already there are kept:
# nothing is downloaded again.
fetch_requires() { # fetch_requires SCRIPT DIST
    local script=$1 dist=$2 declared
    declared=$("$PY" -c 'import sys
from pyninep_browser.requires import RequiresError, read_requires
try:
    print(len(read_requires(sys.argv[1])))
except (RequiresError, OSError) as exc:
    sys.exit(f"pyninep: {exc}")' "$script") || die "the REQUIRES of $script cannot be read (the line above says why)"
    if [ "$declared" = 0 ]; then rm -rf "$dist/requires"; return 0; fi
    "$PY" -m pyninep_browser image requires "$script" -o "$dist/requires" \
        --pyodide-lock web/node_modules/pyodide/pyodide-lock.json >&2 \
        || die "the packages $script REQUIRES cannot be fetched (the line above says why)"
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
    # What `python -m pyninep_browser site build` runs to save the machine again for a site built
    # on this one (docs/your-site.md); not part of the page: write_manifest leaves tools/ out.
    mkdir -p "$DIST/tools"; cp web/build-machine.mjs "$DIST/tools/"
    write_manifest
}

write_manifest() { # write_manifest [MACHINE_FILE [PYODIDE_SNAPSHOT]]: manifest.json, then the service worker
    local wheel; wheel=$(cd "$DIST" && ls wheels/*.whl)
    local machine="" m=${1:-} snap=""
    [ -n "${2:-}" ] && snap="\"pyodideSnapshot\": \"$2\","
    local baseurl=""  # the Debian base: the image's files' content, fetched on first read
    [ "$SITE_BASE" = debian ] && baseurl='"baseurl": "debian/base/",'

    local requires=""  # fetch_requires's index: the page installs those wheels with micropip
    [ -f "$DIST/requires/index.json" ] && requires='"requires": "requires/index.json",'
    if [ -n "$m" ] && [ -f "$DIST/$m.json" ]; then
        machine=$(cd "$DIST" && "$PY" -c 'import json,sys; i=json.load(open(sys.argv[1]+".json")); print(json.dumps({"url": sys.argv[1], **i}))' "$m")
        machine="\"machine\": $machine,"
    fi
    # Every file of the site with its size: the page's progress bars know totals up front, and
    # the service worker caches exactly this build.
    # Not dist/debian/ (a base image: the page fetches its files as the guest reads them, and
    # the service worker never caches a base).
    local sizes; sizes=$(cd "$DIST" && find . \( -path './debian*' -o -path ./tools \) -prune -o -type f ! -name '.*' ! -name '*.tmp' \
        ! -name sw.js ! -name manifest.json -printf '%P\t%s\n' | sort \
        | "$PY" -c 'import json,sys; print(json.dumps(dict((p, int(n)) for p, n in (l.rstrip("\n").split("\t") for l in sys.stdin))))')
    cat > "$DIST/manifest.json.tmp" <<EOF
{
  "wheel": "$wheel",
  "image": "images/default.img",
  "script": "images/default.py",
  "pyodide": "pyodide/",
  "v86": "v86/",
  $baseurl
  $snap
  $requires
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
    local build; build=$(cd "$DIST" && find . -path './debian*' -prune -o -type f ! -name sw.js ! -name '.*' -print0 | sort -z \
        | xargs -0 sha256sum | sha256sum | cut -c1-16)
    local files; files=$(cd "$DIST" && "$PY" -c 'import json; print(json.dumps(["./", "manifest.json", *json.load(open("manifest.json"))["sizes"]]))')
    sed -e "s|__BUILD__|$build|" -e "s|__FILES__|$files|" web/sw.js > "$DIST/sw.js"
}

# The Debian userland (./build.sh debian; docs/debian.md): bookworm i386 packages with their
# dependencies resolved by apt against an empty status (private lists: nothing on the host
# changes), unpacked with dpkg-deb -x (no maintainer scripts), finished by
# pyninep_browser/debian_image.py (usrmerge, alternatives, .pyc files) and exported as a v86
# fs2json base in dist/debian/. Never part of the default build; each step is stamped.
# usr-is-merged satisfies init-system-helpers' "usrmerge | usr-is-merged" without perl.
DEBIAN_PACKAGES="base-files usr-is-merged bash dash coreutils findutils grep sed mawk tar gzip xz-utils
  bzip2 less procps util-linux mount hostname file nano diffutils debianutils ncurses-base ncurses-bin man-db
  python3 libc-bin busybox-static"
DEBIAN_CACHE=$CACHE/debian
fetch_debian() {
    need dpkg-deb "this build needs Debian's dpkg tools"
    local d=$DEBIAN_CACHE debs=$DEBIAN_CACHE/debs lists=$DEBIAN_CACHE/lists
    local want; want=$(echo $DEBIAN_PACKAGES | sha256sum | cut -d' ' -f1)
    if stamp_ok "$debs/.stamp" "$want" && sums_ok "$debs"; then
        return 0
    fi
    mkdir -p "$debs" "$lists/partial"; : > "$d/status"
    local o=("-oDir::State::status=$d/status")  # resolving: an empty system, not the host's
    say "fetching the Debian userland's i386 packages (resolving dependencies)"
    apt_i386 "$lists" apt-get "${o[@]}" update -qq >/dev/null 2>&1 || true  # a mirror mid-sync: what is listed still works
    local names
    names=$(apt_i386 "$lists" apt-get "${o[@]}" -s install --no-install-recommends $DEBIAN_PACKAGES 2>&1 | awk '/^Inst /{print $2}')
    [ -n "$names" ] || die "apt-get could not resolve $DEBIAN_PACKAGES for i386 (see $lists)"
    rm -f "$debs"/*.deb "$debs/SHA256SUMS" "$debs/.stamp"
    (cd "$debs" && apt_i386 "$lists" apt-get "${o[@]}" download $names >/dev/null 2>&1) || die "apt-get download of the Debian userland failed"
    (cd "$debs" && sha256sum ./*.deb > SHA256SUMS)
    echo "$want" > "$debs/.stamp"
}

stage_debian() { # the packages unpacked as bookworm lays them out (dpkg-deb -x, then usrmerge)
    local r=$DEBIAN_CACHE/root
    local h; h=$(hash_of "$DEBIAN_CACHE/debs/SHA256SUMS" pyninep_browser/debian_image.py <(declare -f stage_debian))
    stamp_ok "$r/.stamp" "$h" && return 0
    say "unpacking $(ls "$DEBIAN_CACHE"/debs/*.deb | wc -l) Debian packages"
    rm -rf "$r"; mkdir -p "$r"
    mkdir -p "$r/var/lib/dpkg/info"; echo 1 > "$r/var/lib/dpkg/info/format"  # names with :ARCH
    local deb pkg
    for deb in "$DEBIAN_CACHE"/debs/*.deb; do
        dpkg-deb -x "$deb" "$r" || die "cannot unpack $deb"
        # dpkg's own records, so dpkg -l and dpkg -L answer in the guest
        dpkg-deb -f "$deb" | awk 'NR==1 {print; print "Status: install ok installed"; next} {print}' >> "$r/var/lib/dpkg/status"
        echo >> "$r/var/lib/dpkg/status"
        pkg=$(dpkg-deb -f "$deb" Package)
        [ "$(dpkg-deb -f "$deb" Multi-Arch)" = same ] && pkg="$pkg:$(dpkg-deb -f "$deb" Architecture)"
        dpkg-deb --fsys-tarfile "$deb" | tar -t | sed -e 's|^\./|/|' -e 's|/$||' -e 's|^$|/.|' > "$r/var/lib/dpkg/info/$pkg.list"
    done
    "$PY" -m pyninep_browser.debian_image stage "$r" || die "finishing the Debian root failed"
    echo "$h" > "$r/.stamp"
}

build_debian() {
    fetch_debian
    stage_debian
    local out=$DIST/debian
    local h; h=$(hash_of "$DEBIAN_CACHE/root/.stamp" pyninep_browser/debian_image.py pyninep_browser/fs2json.py \
        pyninep_browser/authoring.py)
    if ! stamp_ok "$out/.stamp" "$h" || [ ! -f "$out/fs.json" ]; then
        say "authoring the Debian root and exporting it to dist/debian/ (fs.json + base/)"
        rm -rf "$out.tmp"
        "$PY" -m pyninep_browser.debian_image export "$DEBIAN_CACHE/root" "$out.tmp" || die "exporting the Debian root failed"
        rm -rf "$out"; mv "$out.tmp" "$out"
        echo "$h" > "$out/.stamp"
    fi
    say "dist/debian/ ready ($(du -sh "$out" | cut -f1), $(ls "$out/base" | wc -l) content files)"
}

# The first visit's fast start: boot the default guest once in Node and save it at its prompt
# (web/build-machine.mjs). Rebuilt only when what the machine is made of changes: the kernel,
# initramfs, image, the Python that serves it, v86, and the scripts that make it.
packed() { # packed REL: REL.zst or REL.gz in $DIST, whichever the build made (nothing if neither)
    local f
    for f in "$1.zst" "$1.gz"; do [ -f "$DIST/$f" ] && { echo "$f"; return 0; }; done
    return 0
}

build_machine() {
    local n=web/node_modules/v86/build
    local h; h=$(hash_of "$DIST/guest/vmlinuz" "$DIST/guest/initramfs.img" "$DIST/guest/bios.bin" \
        "$DIST/guest/vgabios.bin" "$DIST/images/default.img" "$DIST/images/.stamp" pyproject.toml pyninep_browser/*.py pyninep_browser/*/*.py \
        web/pyninep.js web/pyninep-machine.js web/machine.js web/build-machine.mjs "$n/libv86.mjs" "$n/v86.wasm" \
        <(echo "$CMDLINE"))
    # Both memory images are packed for the wire (sitefiles.py: zstd, else gzip), the page
    # decompresses them by name.
    local m; m=$(packed "machine/${h:0:16}.machine")
    if [ -z "$m" ] || [ ! -f "$DIST/$m.json" ]; then
        say "saving the booted machine for the first visit's fast start (once per guest change)"
        rm -rf "$DIST/machine"; mkdir -p "$DIST/machine"
        node web/build-machine.mjs "$DIST" "$DIST/machine/${h:0:16}.machine" "$h" >&2 || die "saving the machine failed"
        "$PY" -m pyninep_browser.sitefiles pack-machine "$DIST" "machine/${h:0:16}.machine" >/dev/null \
            || die "packing the saved machine failed"
        m=$(packed "machine/${h:0:16}.machine")
    fi
    # Python's start-up, saved too: a Pyodide memory snapshot with our package imported.
    local p; p=$(hash_of "$DIST/pyodide/pyodide.asm.wasm" "$DIST/pyodide/pyodide.asm.mjs" \
        "$DIST/pyodide/python_stdlib.zip" pyproject.toml pyninep_browser/*.py pyninep_browser/*/*.py \
        web/build-pyodide.mjs)
    local s; s=$(packed "pysnap/${p:0:16}.bin")
    if [ -z "$s" ]; then
        say "saving Python's start-up (a Pyodide memory snapshot)"
        rm -rf "$DIST/pysnap"; mkdir -p "$DIST/pysnap"
        node web/build-pyodide.mjs "$DIST" "$DIST/pysnap/${p:0:16}.bin" >&2 || die "saving the Pyodide snapshot failed"
        "$PY" -m pyninep_browser.sitefiles pack "$DIST/pysnap/${p:0:16}.bin" >/dev/null || die "packing the Pyodide snapshot failed"
        s=$(packed "pysnap/${p:0:16}.bin")
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

build_args() { # build_args OPTION…: --image, --base, --arg, --out (see the top of this file)
    while [ $# -gt 0 ]; do
        case "$1" in
            --image) [ $# -ge 2 ] || die "--image needs a script"; SITE_SCRIPT=$2; shift 2
                [ -f "$SITE_SCRIPT" ] || die "$SITE_SCRIPT: no such script"
                SITE_SCRIPT=$(cd "$(dirname "$SITE_SCRIPT")" && pwd)/$(basename "$SITE_SCRIPT") ;;
            --base) [ $# -ge 2 ] || die "--base needs debian or busybox"; SITE_BASE=$2; shift 2
                case "$SITE_BASE" in debian|busybox) ;; *) die "--base $SITE_BASE: use debian or busybox" ;; esac ;;
            --arg) [ $# -ge 2 ] || die "--arg needs NAME=VALUE"; SITE_ARGS+=(--arg "$2"); shift 2 ;;
            --out) [ $# -ge 2 ] || die "--out needs a directory"; mkdir -p "$2"; DIST=$(cd "$2" && pwd); shift 2 ;;
            *) die "unknown build option '$1': use --image SCRIPT.py, --base debian|busybox, --arg NAME=VALUE, --out DIR" ;;
        esac
    done
}

build() {
    setup_venv
    setup_npm
    fetch_guest
    extract_guest
    build_guest
    [ "$SITE_BASE" = debian ] && build_debian
    build_image
    build_wheel
    build_site
    [ -n "${NOMACHINE:-}" ] || build_machine
    say "${DIST#$ROOT/}/ ready ($(du -sh --exclude=debian "$DIST" | cut -f1))"
}

verb=${1:-build}
case "$verb" in
    build|debian) shift || true; build_args "$@"; build ;;
    serve) build; exec "$PY" -m pyninep_browser site "$DIST" --port "${PORT:-8000}" ;;
    test)
        apt_install chromium gcc-multilib  # gcc -m32: the guest tests build tests/guest_tools/credo.c
        # Most tests run on a busybox site (dist-busybox/: it boots in seconds, and the guest tests
        # are written for its tools); the shipped Debian site (dist/) has its own tests. Its base
        # takes about a minute the first time (35 MB from Debian's archive), seconds once cached.
        # DEBIAN=0 leaves it out (those modules then skip).
        (SITE_BASE=busybox; DIST=$ROOT/dist-busybox; build)
        if [ "${DEBIAN:-1}" != 0 ]; then build; fi
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
        "$PY" bench/visit.py "$DIST"  # a first visit with gzip, locally and at 20 Mbit/s: time, bytes by file
        "$PY" bench/terminal.py "$DIST"  # lines/s to the screen and piped, Ctrl+C
        "$PY" bench/base_images.py "$DIST"  # fs2json base images against today's image and v86's 9p
        node bench/zstd.mjs "$DIST"
        # the Debian userland against v86's 9p on the same export, when it is built (./build.sh debian)
        [ -f "$DIST/debian/fs.json" ] && "$PY" bench/debian.py "$DIST"
        # persistence in the page (real Chromium): chunk size, workloads on IndexedDB vs memory
        # vs v86's 9p with the fsync'd 1 MiB write, machine blobs, the long crash test
        "$PY" bench/idb_chunks.py
        "$PY" bench/idb_workloads.py
        "$PY" bench/machine_blob.py
        "$PY" bench/idb_crash.py --runs 100 --guest 3 ;;
    clean) rm -rf "$DIST" ;;
    *) die "unknown verb '$verb': use build, debian, serve, test, bench or clean" ;;
esac
