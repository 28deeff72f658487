# Process helpers: start daemons with setsid (no systemd here), track them by PID file.
# shellcheck shell=bash

# pid_of NAME: prints the PID recorded for NAME if that process is alive and really ours
# (its command line names our state dir, so a recycled PID after a reboot is never touched).
pid_of() {
  local f="$PID_DIR/$1.pid" pid
  [[ -f $f ]] || return 1
  pid=$(cat "$f")
  [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$STATE_DIR" || return 1
  echo "$pid"
}

# start_proc NAME CMD...: starts CMD in its own session, logs to LOG_DIR/NAME.log (a fresh
# log per start; down.sh keeps the logs of the last run for post-mortems).
start_proc() {
  local name=$1
  shift
  log "starting $name"
  # In a non-interactive shell the background child is no process-group leader, so setsid
  # calls setsid(2) itself instead of forking: $! is the daemon's own PID.
  # The daemon must not inherit the cluster lock's fd, or it would hold the lock forever.
  if [[ -n ${CLUSTER_LOCK_FD:-} ]]; then
    setsid "$@" >"$LOG_DIR/$name.log" 2>&1 </dev/null {CLUSTER_LOCK_FD}>&- &
  else
    setsid "$@" >"$LOG_DIR/$name.log" 2>&1 </dev/null &
  fi
  echo $! >"$PID_DIR/$name.pid"
}

# wait_for WHAT TIMEOUT_S CMD...: polls CMD until it succeeds; fails early when a component
# we started has died, showing its log.
wait_for() {
  local what=$1 timeout=$2 start=$SECONDS next=5
  shift 2
  while ! "$@" >/dev/null 2>&1; do
    check_procs_alive
    if ((SECONDS - start >= timeout)); then
      die "timed out after ${timeout}s waiting for $what (logs: $LOG_DIR)"
    fi
    if ((SECONDS - start >= next)); then
      log "  still waiting for $what ($((SECONDS - start))s)"
      next=$((next + 5))
    fi
    sleep 0.5
  done
  log "$what ready ($((SECONDS - start))s)"
}

check_procs_alive() {
  local name
  for name in "${COMPONENTS[@]}"; do
    [[ -f $PID_DIR/$name.pid ]] || continue
    if ! pid_of "$name" >/dev/null; then
      echo "---- last lines of $LOG_DIR/$name.log ----" >&2
      tail -n 30 "$LOG_DIR/$name.log" >&2 || true
      die "$name exited during startup"
    fi
  done
}

# stop_component NAME: SIGTERM, SIGKILL after 5 s.
stop_component() {
  local pid i
  pid=$(pid_of "$1") || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == Z ]] && return 0
    sleep 0.1
  done
  log "  $1 ($pid) ignored SIGTERM: killing"
  kill -KILL "$pid" 2>/dev/null || true
}

# kube_proxy_synced: kube-proxy's service rules (the kubernetes Service's DNAT) and its
# filter-table jumps are in place.
kube_proxy_synced() {
  iptables -w 5 -t nat -S KUBE-SERVICES 2>/dev/null | grep -q 'default/kubernetes:https cluster IP' &&
    iptables -w 5 -S FORWARD 2>/dev/null | grep -q -- '-j KUBE-FORWARD' &&
    iptables -w 5 -S INPUT 2>/dev/null | grep -q -- '-j KUBE-NODEPORTS'
}

# cluster_healthy: every started component alive, API ready, node Ready.
cluster_healthy() {
  local name
  [[ -f $KUBECONFIG_FILE && -d $PID_DIR ]] || return 1
  for name in "${COMPONENTS[@]}"; do
    if [[ $name == kube-router && ! -f $PID_DIR/$name.pid ]]; then
      continue
    fi
    pid_of "$name" >/dev/null || return 1
  done
  kube_proxy_synced || return 1
  "$BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_FILE" get --raw=/readyz >/dev/null 2>&1 || return 1
  [[ $("$BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_FILE" get node "$NODE_NAME" \
    -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

# foreign_containerd: PIDs of containerd daemons/shims that are not ours (another containerd on
# the host also keeps its shim sockets in /run/containerd, so that dir is then left alone).
foreign_containerd() {
  local p comm cmd
  for p in /proc/[0-9]*; do
    comm=$(cat "$p/comm" 2>/dev/null) || continue
    [[ $comm == containerd || $comm == containerd-shim* ]] || continue
    cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
    grep -qF -- "$STATE_DIR/" <<<"$cmd" && continue
    grep -qF -- "$RUN_DIR/" <<<"$cmd" && continue
    echo "${p#/proc/}"
  done
  return 0
}
