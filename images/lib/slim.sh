#!/bin/bash
# Shrinks and normalises an image root from the inside (runs as root in the image:
# chroot in build.sh, RUN in the Dockerfiles). Arguments: extra Python dirs to byte-compile.
set -euo pipefail

# Package caches, lists and logs: not needed at run time and they change on every build.
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old \
    /var/cache/ldconfig/aux-cache /etc/passwd- /etc/group- /etc/shadow- /etc/gshadow-
find /var/log -type f -delete
# Documentation and translations: keep only the licence files.
rm -rf /usr/share/man/* /usr/share/info/* /usr/share/lintian /usr/share/linda
if [ -d /usr/share/doc ]; then
    find /usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete
    find /usr/share/doc -mindepth 1 -type d -empty -delete
fi
if [ -d /usr/share/locale ]; then
    find /usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
fi
# Empty machine-id: the runtime must not see one baked into every container.
if [ -e /etc/machine-id ]; then : >/etc/machine-id; fi

# Password aging off: the lastchg field is the build date (not reproducible), and 0 there
# would force a password change that makes PAM (and so sudo) refuse.
awk -F: 'BEGIN { OFS = ":" } { $3 = ""; print }' /etc/shadow >/etc/shadow.new
chmod --reference=/etc/shadow /etc/shadow.new
chown --reference=/etc/shadow /etc/shadow.new
mv /etc/shadow.new /etc/shadow

# Byte-code: the image packer sets every mtime to SOURCE_DATE_EPOCH, which would make
# timestamp-based .pyc files stale forever (recompiled in memory on each start). Hash-based
# .pyc files stay valid and are reproducible.
if command -v python3 >/dev/null; then
    py_dirs=()
    for dir in /usr/lib/python3 /usr/lib/python3.* "$@"; do
        if [ -d "$dir" ]; then py_dirs+=("$dir"); fi
    done
    find "${py_dirs[@]}" -name __pycache__ -type d -prune -exec rm -rf {} +
    # -B and -f: the interpreter's own start-up would otherwise write timestamp .pyc files
    # (encodings, ...) that compileall then takes as up to date. lib2to3's test data holds
    # deliberately invalid Python: skip it.
    python3 -B -m compileall -f -q -j 0 --invalidation-mode checked-hash \
        -x '/lib2to3/tests/|/test/badsyntax' "${py_dirs[@]}" >/dev/null
fi
