#!/bin/bash
# Configures the paddock image root from the inside (chroot in build.sh, RUN in
# Dockerfile.paddock): the non-root user 65532 and a venv with Paddock's wheel and its
# dependencies, installed offline from the wheel directory $PADDOCK_WHEELS.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
wheels=${PADDOCK_WHEELS:-/tmp/paddock-wheels}

groupadd --gid 65532 paddock
useradd --uid 65532 --gid 65532 --create-home --home-dir /home/paddock \
    --shell /usr/sbin/nologin paddock

python3 -m venv /opt/paddock/venv
shopt -s nullglob
project_wheels=("$wheels"/paddock-*.whl)
if [ "${#project_wheels[@]}" -ne 1 ]; then
    echo "expected exactly one paddock-*.whl in $wheels, found ${#project_wheels[@]}" >&2
    exit 1
fi
# --no-index: everything comes from the wheel directory prepared beforehand.
/opt/paddock/venv/bin/pip install --no-index --find-links "$wheels" --no-cache-dir \
    --disable-pip-version-check --no-compile "${project_wheels[0]}"
/opt/paddock/venv/bin/python -c 'import paddock_operator, paddock_harness'

bash "$here/slim.sh" /opt/paddock/venv
