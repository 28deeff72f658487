#!/bin/bash
# Configures the sandbox image root from the inside (chroot in build.sh, RUN in
# Dockerfile.sandbox): the non-root agent user, its workspace, then slim.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

groupadd --gid 1000 agent
useradd --uid 1000 --gid 1000 --create-home --home-dir /home/agent --shell /bin/bash agent
# Agents may install tools with sudo. A pod with allowPrivilegeEscalation: false (no_new_privs)
# disables this, so the pod spec, not the image, decides whether root is reachable.
printf 'agent ALL=(ALL:ALL) NOPASSWD: ALL\n' >/etc/sudoers.d/agent
chmod 0440 /etc/sudoers.d/agent
install -d -o 1000 -g 1000 -m 0755 /workspace

bash "$here/slim.sh"
