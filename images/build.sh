#!/usr/bin/env bash
# Builds Paddock's container images offline (no Docker engine, no registry) as reproducible
# OCI image-layout tarballs, and imports them into containerd's k8s.io namespace.
#
# Usage: images/build.sh [COMMAND]...            (default: all)
#   all        build pause, sandbox and paddock; then import them when containerd is running
#   build      build the three images, no import
#   pause | sandbox | paddock    build one image
#   import     import the built tarballs into containerd (fails if containerd is not running)
#   refs       print the refs.env of the last builds
#
# Output in $PADDOCK_IMAGE_CACHE (default ~/.cache/paddock/images): NAME.tar (OCI layout),
# NAME.inputs (hash of the inputs; a rebuild is skipped when it matches), NAME.digest
# (manifest digest), NAME.names (image refs) and refs.env (PAUSE_IMAGE=, SANDBOX_IMAGE=,
# PADDOCK_IMAGE=). Debootstrap root filesystems are cached in ~/.cache/paddock/rootfs.
#
# Environment: CONTAINERD_ADDRESS (default /run/paddock/containerd/containerd.sock),
# DEBIAN_MIRROR (default: this machine's apt source for bookworm), SOURCE_DATE_EPOCH (default 0),
# PADDOCK_WHEEL_PYTHON (a Python 3.11 that builds the wheels; default python3).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
CACHE_BASE=${PADDOCK_CACHE:-$HOME/.cache/paddock}
CACHE=${PADDOCK_IMAGE_CACHE:-$CACHE_BASE/images}
ROOTFS_CACHE=${PADDOCK_ROOTFS_CACHE:-$CACHE_BASE/rootfs}
CONTAINERD_ADDRESS=${CONTAINERD_ADDRESS:-/run/paddock/containerd/containerd.sock}
SDE=${SOURCE_DATE_EPOCH:-0}
SUITE=bookworm
REPO=localhost/paddock
PAUSE_VERSION=3.10
PYTHON=${PYTHON:-python3}
WHEEL_PY=${PADDOCK_WHEEL_PYTHON:-python3}
CHROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# Bump when the rootfs recipe changes in a way the package lists do not show.
ROOTFS_RECIPE=2

START=$(date +%s.%N)
STEPS=()
WORKDIRS=()

elapsed_since() { awk -v now="$(date +%s.%N)" -v then="$1" 'BEGIN { printf "%.1f", now - then }'; }
log() { printf '[images %6ss] %s\n' "$(elapsed_since "$START")" "$*"; }
die() {
    printf '[images] ERROR: %s\n' "$*" >&2
    exit 1
}
step_done() { STEPS+=("$(printf '%-9s %6ss  %s' "$1" "$(elapsed_since "$2")" "$3")"); }

cleanup() {
    local dir
    for dir in "${WORKDIRS[@]}"; do
        [[ -d $dir ]] || continue
        # Mounts only ever live in private namespaces that are gone by now; refuse to
        # delete through a mount point if that assumption is ever broken.
        if grep -qF " $dir/" /proc/self/mounts; then
            printf '[images] WARNING: mounts left under %s, not removing it\n' "$dir" >&2
            continue
        fi
        rm -rf "$dir"
    done
}
trap cleanup EXIT

# Scratch space for root filesystems. tmpfs when there is room: on a disk mounted with
# `discard` (this VM) deleting a 10k-file root takes minutes, and dpkg's syncs are slow too.
pick_work_base() {
    WORK_BASE=${PADDOCK_IMAGE_WORKDIR:-}
    if [[ -z $WORK_BASE ]]; then
        WORK_BASE=$CACHE/.work
        local opts avail
        opts=$(awk '$2 == "/dev/shm" && $3 == "tmpfs" { print $4 }' /proc/mounts | tail -n1)
        avail=$(df --output=avail -B1G /dev/shm 2>/dev/null | tail -n1 | tr -d ' ')
        if [[ -n $opts && ,$opts, != *,noexec,* && ,$opts, != *,nodev,* && ${avail:-0} -ge 4 ]]; then
            WORK_BASE=/dev/shm/paddock-images
        fi
    fi
    mkdir -p "$WORK_BASE"
    # We hold the lock: anything left there is from an interrupted build.
    find "$WORK_BASE" -mindepth 1 -maxdepth 1 -name '.work-*' -exec rm -rf {} +
}

new_workdir() {
    local dir
    dir=$(mktemp -d "$WORK_BASE/.work-$1.XXXXXX")
    WORKDIRS+=("$dir")
    WORK=$dir
}

# Frees a finished step's work directory now rather than at exit (they hold whole roots).
drop_workdir() {
    if grep -qF " $WORK/" /proc/self/mounts; then die "mounts left under $WORK"; fi
    rm -rf "$WORK"
}

# Installs the Debian packages that are missing; `apt-get update` only when something is.
ensure_apt() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null | grep -q '^ii' || missing+=("$pkg")
    done
    ((${#missing[@]} == 0)) && return 0
    log "installing apt packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Waits for a background job, printing a heartbeat with the last log line every 10 s.
wait_job() {
    local pid=$1 what=$2 logfile=$3 started ticks=0 rc=0
    started=$(date +%s.%N)
    while kill -0 "$pid" 2>/dev/null; do
        sleep 1
        ticks=$((ticks + 1))
        if ((ticks % 10 == 0)); then
            log "  $what: $(elapsed_since "$started")s, $(tail -n 1 "$logfile" 2>/dev/null | cut -c1-100)"
        fi
    done
    wait "$pid" || rc=$?
    if ((rc != 0)); then
        tail -n 40 "$logfile" >&2 || true
        die "$what failed (exit $rc); full log: $logfile"
    fi
}

# The Debian mirror this machine's apt uses for $SUITE (deb822 .sources or sources.list).
detect_mirror() {
    if [[ -n ${DEBIAN_MIRROR:-} ]]; then
        echo "$DEBIAN_MIRROR"
        return
    fi
    local file uri=""
    for file in /etc/apt/sources.list.d/*.sources; do
        [[ -f $file ]] || continue
        uri=$(awk -v suite="$SUITE" '
            function flush() { if (deb && has && u != "" && !found) { print u; found = 1 } deb = has = 0; u = "" }
            /^[[:space:]]*$/ { flush(); next }
            /^Types:/ { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
            /^URIs:/ { u = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) has = 1 }
            END { flush() }' "$file")
        [[ -n $uri ]] && break
    done
    if [[ -z $uri ]]; then
        uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
            awk -v suite="$SUITE" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) while (i <= NF && $i !~ /\]$/) i++; if ($2 ~ /^\[/) i++;
                if ($(i + 1) == suite) { print $i; exit } }')
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

read_packages() { sed -e 's/#.*//' -e 's/[[:space:]]//g' "$1" | grep -v '^$' | LC_ALL=C sort -u; }

# sha256 over the named files (recursively for directories, skipping byte-code) and extra strings.
hash_inputs() {
    local extra=$1
    shift
    {
        printf '%s\n' "$extra"
        (cd "$ROOT" && find "$@" -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 |
            LC_ALL=C sort -z | xargs -0 sha256sum)
    } | sha256sum | cut -c1-64
}

# Is $CACHE/$1.tar built from inputs hashing to $2?
fresh() {
    [[ -f $CACHE/$1.tar && -f $CACHE/$1.digest && -f $CACHE/$1.names && -f $CACHE/$1.inputs ]] &&
        [[ $(cat "$CACHE/$1.inputs") == "$2" ]]
}

human() { numfmt --to=iec --suffix=B "$1"; }

# Packs $WORK/root into $CACHE/$name.tar and records digest, names and the inputs hash.
pack() {
    local name=$1 hash=$2 root=$3
    shift 3
    local names=() args=() arg
    for arg in "$@"; do
        case $arg in
        --name=*) names+=("${arg#--name=}") ;;
        esac
        args+=("$arg")
    done
    rm -f "$CACHE/$name.inputs"
    log "$name: rootfs $(du -sh --apparent-size "$root" | cut -f1), packing"
    "$PYTHON" "$HERE/oci_pack.py" --layer "$root" --output "$CACHE/$name.tar" \
        --digest-file "$CACHE/$name.digest" --created "$SDE" "${args[@]}" >"$WORK/pack.json"
    printf '%s\n' "${names[@]}" >"$CACHE/$name.names"
    echo "$hash" >"$CACHE/$name.inputs"
    log "$name: $(human "$(stat -c %s "$CACHE/$name.tar")") $(cat "$CACHE/$name.digest") -> ${names[*]}"
}

# Runs a command chrooted into $1 with /proc and /dev mounted in a private mount namespace,
# so every mount disappears with the command whatever happens.
in_root() {
    local root=$1
    shift
    # shellcheck disable=SC2016 # the inner script expands its own arguments
    unshare --mount --propagation private --fork -- /bin/bash -c '
        set -e
        root=$1
        shift
        mount -t proc proc "$root/proc"
        mount --rbind /dev "$root/dev"
        exec chroot "$root" "$@"' in_root "$root" \
        /usr/bin/env -i PATH="$CHROOT_PATH" HOME=/root LANG=C.UTF-8 SOURCE_DATE_EPOCH="$SDE" "$@"
}

# Removes what must not be baked into an image and that the runtime provides anyway.
finalize_root() {
    local root=$1
    if grep -qF " $root/" /proc/self/mounts; then die "mounts left under $root"; fi
    rm -f "$root/etc/resolv.conf" "$root/etc/hostname"
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
    find "$root/dev" "$root/proc" "$root/sys" "$root/tmp" "$root/var/tmp" "$root/run" \
        -mindepth 1 -delete 2>/dev/null || true
}

# Sets ROOTFS_TAR to a cached debootstrap minbase tarball with the packages of list $2.
debootstrap_rootfs() {
    local flavor=$1 list=$2 mirror pkgs key started
    mirror=$(detect_mirror)
    pkgs=$(read_packages "$list" | paste -sd, -)
    key=$(printf '%s\n' "$ROOTFS_RECIPE" "$SUITE" "$mirror" "$ARCH" minbase "$pkgs" | sha256sum | cut -c1-16)
    ROOTFS_KEY=$key
    ROOTFS_TAR=$ROOTFS_CACHE/$SUITE-$flavor-$key.tar
    if [[ -f $ROOTFS_TAR ]]; then
        [[ -n ${PREFETCH:-} ]] || log "$flavor: cached rootfs $(basename "$ROOTFS_TAR")"
        return
    fi
    ensure_apt debootstrap debian-archive-keyring
    mkdir -p "$ROOTFS_CACHE/debs-$flavor"
    new_workdir "debootstrap-$flavor"
    started=$(date +%s.%N)
    log "$flavor: debootstrap --variant=minbase $SUITE from $mirror (+${pkgs})"
    # Two stages so dpkg can run with force-unsafe-io: this VM's fsync is slow and dpkg
    # syncs every file it unpacks (halves the time). Own mount namespace: debootstrap's
    # /proc and /sys mounts vanish with it, even on failure.
    # shellcheck disable=SC2016 # the inner script expands its own arguments
    unshare --mount --propagation private --fork -- /bin/bash -c '
        set -euo pipefail
        target=$1 mirror=$2
        shift 2
        debootstrap --foreign "$@" "$target" "$mirror"
        echo force-unsafe-io >"$target/etc/dpkg/dpkg.cfg.d/paddock-build-unsafe-io"
        echo "I: second stage (dpkg --force-unsafe-io)"
        chroot "$target" /debootstrap/debootstrap --second-stage
        rm "$target/etc/dpkg/dpkg.cfg.d/paddock-build-unsafe-io"' debootstrap "$WORK/root" "$mirror" \
        --variant=minbase --arch="$ARCH" --components=main --include="$pkgs" \
        --cache-dir="$ROOTFS_CACHE/debs-$flavor" "$SUITE" >"$WORK/debootstrap.log" 2>&1 &
    wait_job $! "debootstrap ($flavor)" "$WORK/debootstrap.log"
    # The downloaded .debs stay in the cache dir, not in every root.
    find "$WORK/root/var/cache/apt/archives" -name '*.deb' -delete
    tar --numeric-owner -C "$WORK/root" -cf "$WORK/rootfs.tar" .
    mv "$WORK/rootfs.tar" "$ROOTFS_TAR"
    drop_workdir
    find "$ROOTFS_CACHE" -maxdepth 1 -name "$SUITE-$flavor-*.tar" ! -name "$(basename "$ROOTFS_TAR")" -delete
    step_done "rootfs-$flavor" "$started" "debootstrap, $(human "$(stat -c %s "$ROOTFS_TAR")") cached"
}

# Runs the debootstraps that are not cached yet side by side (each waits on the mirror and
# on dpkg much of the time), before the image builds use them.
prefetch_rootfs() {
    local started pids=() pid failed=0
    started=$(date +%s.%N)
    ensure_apt debootstrap debian-archive-keyring
    (
        WORKDIRS=() PREFETCH=1
        trap cleanup EXIT
        debootstrap_rootfs sandbox "$HERE/sandbox/packages.txt"
    ) &
    pids+=($!)
    (
        WORKDIRS=() PREFETCH=1
        trap cleanup EXIT
        debootstrap_rootfs paddock "$HERE/paddock/packages.txt"
    ) &
    pids+=($!)
    for pid in "${pids[@]}"; do
        wait "$pid" || failed=1
    done
    ((failed == 0)) || die "debootstrap failed (see above)"
    step_done rootfs "$started" "debootstrap sandbox + paddock roots (cached in $ROOTFS_CACHE)"
}

extract_rootfs() {
    mkdir "$WORK/root"
    tar --numeric-owner -xpf "$ROOTFS_TAR" -C "$WORK/root"
}

build_pause() {
    local started hash tag
    started=$(date +%s.%N)
    ensure_apt gcc libc6-dev
    hash=$(hash_inputs "pause $SDE $ARCH $(gcc --version | head -n1)" \
        images/build.sh images/oci_pack.py images/pause/pause.c)
    tag=${hash:0:12}
    if fresh pause "$hash"; then
        log "pause: up to date ($(head -n1 "$CACHE/pause.names"))"
        step_done pause "$started" "cached"
        return
    fi
    new_workdir pause
    mkdir "$WORK/root"
    # Static and stripped: the image holds nothing but this binary.
    gcc -static -Os -s -Wall -Wextra -Werror -Wl,--build-id=none -ffile-prefix-map="$ROOT"=. \
        -DPAUSE_VERSION="\"$PAUSE_VERSION\"" -o "$WORK/root/pause" "$HERE/pause/pause.c"
    chmod 0755 "$WORK/root/pause"
    pack pause "$hash" "$WORK/root" \
        --name="$REPO/pause:$PAUSE_VERSION" --name="$REPO/pause:$tag" \
        --entrypoint='["/pause"]' --user=65535:65535 \
        --label=org.opencontainers.image.title=paddock-pause
    drop_workdir
    step_done pause "$started" "built"
}

build_sandbox() {
    local started hash tag
    started=$(date +%s.%N)
    debootstrap_rootfs sandbox "$HERE/sandbox/packages.txt"
    hash=$(hash_inputs "sandbox $SDE $ARCH $ROOTFS_KEY" images/build.sh images/oci_pack.py \
        images/lib/slim.sh images/sandbox)
    tag=${hash:0:12}
    if fresh sandbox "$hash"; then
        log "sandbox: up to date ($(head -n1 "$CACHE/sandbox.names"))"
        step_done sandbox "$started" "cached"
        return
    fi
    new_workdir sandbox
    extract_rootfs
    install -d "$WORK/root/tmp/paddock-setup"
    cp "$HERE/lib/slim.sh" "$HERE/sandbox/setup.sh" "$WORK/root/tmp/paddock-setup/"
    log "sandbox: configuring (user agent 1000, /workspace, slimming)"
    in_root "$WORK/root" bash /tmp/paddock-setup/setup.sh
    finalize_root "$WORK/root"
    pack sandbox "$hash" "$WORK/root" \
        --name="$REPO/sandbox:$tag" --name="$REPO/sandbox:dev" \
        --cmd='["sleep","infinity"]' --user=1000:1000 --workdir=/workspace \
        --env=PATH="$CHROOT_PATH" --env=LANG=C.UTF-8 \
        --label=org.opencontainers.image.title=paddock-sandbox \
        --label=org.opencontainers.image.description="Debian $SUITE sandbox for Paddock agents"
    drop_workdir
    step_done sandbox "$started" "built"
}

build_paddock() {
    local started hash tag wheel_started
    started=$(date +%s.%N)
    [[ -f $ROOT/pyproject.toml ]] || die "paddock: $ROOT/pyproject.toml not found"
    debootstrap_rootfs paddock "$HERE/paddock/packages.txt"
    local project=(pyproject.toml)
    local item
    for item in README.md LICENSE operator harness; do
        [[ -e $ROOT/$item ]] && project+=("$item")
    done
    hash=$(hash_inputs "paddock $SDE $ARCH $ROOTFS_KEY" images/build.sh images/oci_pack.py \
        images/lib/slim.sh images/paddock "${project[@]}")
    tag=${hash:0:12}
    if fresh paddock "$hash"; then
        log "paddock: up to date ($(head -n1 "$CACHE/paddock.names"))"
        step_done paddock "$started" "cached"
        return
    fi
    # Debian 12's interpreter is 3.11: wheels with compiled code must match it.
    "$WHEEL_PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' ||
        die "paddock: $WHEEL_PY is not Python 3.11; set PADDOCK_WHEEL_PYTHON to a Python 3.11"
    new_workdir paddock
    wheel_started=$(date +%s.%N)
    log "paddock: building the wheel and fetching dependency wheels (pip wheel)"
    "$WHEEL_PY" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$WORK/wheels" "$ROOT" \
        >"$WORK/pip-wheel.log" 2>&1 &
    wait_job $! "pip wheel" "$WORK/pip-wheel.log"
    log "paddock: $(find "$WORK/wheels" -name '*.whl' | wc -l) wheels in $(elapsed_since "$wheel_started")s"
    extract_rootfs
    install -d "$WORK/root/tmp/paddock-setup"
    cp "$HERE/lib/slim.sh" "$HERE/paddock/setup.sh" "$WORK/root/tmp/paddock-setup/"
    cp -r "$WORK/wheels" "$WORK/root/tmp/paddock-wheels"
    log "paddock: installing into /opt/paddock/venv (offline, from the wheels)"
    in_root "$WORK/root" PADDOCK_WHEELS=/tmp/paddock-wheels bash /tmp/paddock-setup/setup.sh \
        >"$WORK/setup.log" 2>&1 &
    wait_job $! "paddock setup" "$WORK/setup.log"
    finalize_root "$WORK/root"
    pack paddock "$hash" "$WORK/root" \
        --name="$REPO/paddock:$tag" --name="$REPO/paddock:dev" \
        --cmd='["python","-m","paddock_operator"]' --user=65532:65532 --workdir=/home/paddock \
        --env=PATH="/opt/paddock/venv/bin:$CHROOT_PATH" --env=VIRTUAL_ENV=/opt/paddock/venv \
        --env=LANG=C.UTF-8 --env=PYTHONUNBUFFERED=1 \
        --label=org.opencontainers.image.title=paddock \
        --label=org.opencontainers.image.description="Paddock operator and harness"
    drop_workdir
    step_done paddock "$started" "built"
}

write_refs() {
    local name var
    {
        echo "# Written by images/build.sh: the images of the last builds."
        for name in pause sandbox paddock; do
            [[ -f $CACHE/$name.names && -f $CACHE/$name.digest ]] || continue
            var=$(echo "$name" | tr '[:lower:]' '[:upper:]')
            echo "${var}_IMAGE=$(head -n1 "$CACHE/$name.names")"
            echo "${var}_IMAGE_DIGEST=$(cat "$CACHE/$name.digest")"
        done
    } >"$CACHE/refs.env.tmp"
    mv "$CACHE/refs.env.tmp" "$CACHE/refs.env"
}

ctr_() { ctr --address "$CONTAINERD_ADDRESS" -n k8s.io "$@"; }

do_import() {
    local started name digest present ref missing
    started=$(date +%s.%N)
    command -v ctr >/dev/null || ensure_apt containerd
    [[ -S $CONTAINERD_ADDRESS ]] ||
        die "containerd is not listening on $CONTAINERD_ADDRESS (start the cluster: make cluster-up)"
    present=$(ctr_ images ls 2>/dev/null | awk 'NR > 1 { print $1, $3 }')
    for name in pause sandbox paddock; do
        if [[ ! -f $CACHE/$name.tar || ! -f $CACHE/$name.digest ]]; then
            die "import: $name is not built; run images/build.sh $name"
        fi
        digest=$(cat "$CACHE/$name.digest")
        missing=0
        while read -r ref; do
            grep -qxF "$ref $digest" <<<"$present" || missing=1
        done <"$CACHE/$name.names"
        if ((missing == 0)); then
            log "import: $name already present ($digest)"
            continue
        fi
        log "import: $name ($(human "$(stat -c %s "$CACHE/$name.tar")"))"
        ctr_ images import --all-platforms "$CACHE/$name.tar" >/dev/null
    done
    step_done import "$started" "into $CONTAINERD_ADDRESS"
}

main() {
    local commands=("$@") cmd
    ((${#commands[@]})) || commands=(all)
    for cmd in "${commands[@]}"; do
        case $cmd in
        all | build | pause | sandbox | paddock | import | refs) ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
            return 0
            ;;
        *) die "unknown command '$cmd' (all|build|pause|sandbox|paddock|import|refs)" ;;
        esac
    done
    if [[ ${commands[*]} == refs ]]; then
        cat "$CACHE/refs.env"
        return
    fi
    ((EUID == 0)) || die "must run as root (debootstrap, chroot and containerd need it)"
    ARCH=$(dpkg --print-architecture)
    mkdir -p "$CACHE" "$ROOTFS_CACHE"
    # One build at a time per cache (make images and make cluster-up may race).
    exec 9>"$CACHE/.lock"
    if ! flock -n 9; then
        log "waiting for another images/build.sh to finish"
        flock 9
    fi
    pick_work_base
    for cmd in "${commands[@]}"; do
        case $cmd in
        all | build)
            build_pause
            prefetch_rootfs
            build_sandbox
            build_paddock
            write_refs
            if [[ $cmd == all ]]; then
                if [[ -S $CONTAINERD_ADDRESS ]]; then
                    do_import
                else
                    log "containerd not running at $CONTAINERD_ADDRESS: import skipped" \
                        "(run 'images/build.sh import' once it runs)"
                fi
            fi
            ;;
        pause | sandbox | paddock)
            "build_$cmd"
            write_refs
            ;;
        import) do_import ;;
        refs) cat "$CACHE/refs.env" ;;
        esac
    done
    log "done in $(elapsed_since "$START")s"
    printf '  %s\n' "${STEPS[@]}"
    [[ -f $CACHE/refs.env ]] && sed -e '/^#/d' -e 's/^/  /' "$CACHE/refs.env"
    return 0
}

main "$@"
