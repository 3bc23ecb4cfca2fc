#!/usr/bin/env bash
# A Docker engine for this machine, and the test suite's Docker pass.
#
#   deploy/docker/engine.sh start     start dockerd unless an engine answers (as root)
#   deploy/docker/engine.sh stop      stop the dockerd `start` started (nothing else)
#   deploy/docker/engine.sh status
#   deploy/docker/engine.sh prepare   start (if needed) and ./ucj docker-images: what `pass`
#                                     needs, done ahead (./ucj test runs it during the main run)
#   deploy/docker/engine.sh pass      prepare (if not done), the integration tests through
#                                     testcontainers and the compose test, then stop the engine
#                                     if `prepare` or `pass` started it
#   deploy/docker/engine.sh release   stop the engine `prepare` started (if it did)
#
# dockerd keeps its data under .run/docker (images survive a stop; `./ucj down --wipe` deletes
# them) and listens on the default socket, so `docker`, docker-compose and testcontainers find
# it. If the sandbox refuses iptables, dockerd runs with --iptables=false; if it refuses the
# bridge too, with --bridge=none, and the tests put their containers on the host's network,
# bound to 127.0.0.1 (the compose test needs a bridge).
# The packages (docker.io, debootstrap, docker-compose) are installed by `./ucj test`.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/../.."

DIR="$PWD/.run/docker"
PIDFILE="$DIR/dockerd.pid"
STARTED="$DIR/started-for-pass"  # an engine `prepare` started, for `pass` to stop
LOG="$DIR/dockerd.log"
PY="${PY:-.venv/bin/python}"

say() { echo "[docker] $*" >&2; }
answers() { timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }
ours() { [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

try_dockerd() {  # try_dockerd [extra dockerd args]: 0 once it answers, else stopped again
  local exec_root="$DIR/exec"
  # containerd's socket lives under the exec root: a Unix socket path must stay short.
  [ ${#exec_root} -gt 60 ] && exec_root="/run/ucj-docker-$(echo "$DIR" | sha1sum | cut -c1-8)"
  mkdir -p "$DIR/data" "$exec_root"
  echo "== dockerd $* ($(date -u +%FT%TZ))" >> "$LOG"
  setsid dockerd --data-root "$DIR/data" --exec-root "$exec_root" --pidfile "$PIDFILE" \
    -H unix:///var/run/docker.sock "$@" >> "$LOG" 2>&1 &
  local pid=$! i
  for i in $(seq 1 60); do
    if answers; then return 0; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
  return 1
}

cmd_start() {
  if answers; then
    say "an engine answers: $(docker version --format '{{.Server.Version}}' 2>/dev/null)"
    return 0
  fi
  command -v dockerd >/dev/null || { say "dockerd is missing (apt-get install docker.io)"; return 1; }
  [ "$(id -u)" = 0 ] || { say "starting dockerd needs root"; return 1; }
  mkdir -p "$DIR"
  local t0=$SECONDS
  # Without iptables the bridge still carries the published ports (docker-proxy, which is all
  # 127.0.0.1 needs: testcontainers works; compose's container-to-container traffic works only
  # if no earlier dockerd left the FORWARD policy at DROP); without a bridge the tests use the
  # host's network (compose cannot run).
  if try_dockerd; then
    say "dockerd started (bridge network) in $((SECONDS - t0)) s; log $LOG"
  elif try_dockerd --iptables=false --ip6tables=false; then
    say "dockerd started (bridge network, no iptables) in $((SECONDS - t0)) s; log $LOG"
  elif try_dockerd --iptables=false --ip6tables=false --bridge=none; then
    say "dockerd started without a bridge (host networking) in $((SECONDS - t0)) s; log $LOG"
  else
    say "dockerd did not start; the end of $LOG:"
    tail -20 "$LOG" >&2
    return 1
  fi
}

cmd_stop() {
  if ! ours; then
    say "no dockerd of ours runs"
    return 0
  fi
  # Whatever the tests left behind (testcontainers' containers, the compose test's ucjtest*
  # projects: restart policies would bring those back with the engine), then the engine.
  local left project
  left=$(docker ps -aq --filter label=org.testcontainers=true 2>/dev/null || true)
  for project in $(docker ps -a --format '{{.Label "com.docker.compose.project"}}' 2>/dev/null \
                   | grep '^ucjtest' | sort -u); do
    left="$left $(docker ps -aq --filter "label=com.docker.compose.project=$project")"
  done
  # shellcheck disable=SC2086
  [ -z "${left// /}" ] || docker rm -f -v $left >/dev/null 2>&1 || true
  for project in $(docker volume ls --format '{{.Label "com.docker.compose.project"}}' \
                   2>/dev/null | grep '^ucjtest' | sort -u); do
    # shellcheck disable=SC2046
    docker volume rm $(docker volume ls -q --filter "label=com.docker.compose.project=$project") \
      >/dev/null 2>&1 || true
  done
  local pid i
  pid=$(cat "$PIDFILE")
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "dockerd $pid did not stop in 30 s: kill -9"
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
  say "dockerd stopped"
}

cmd_status() {
  if answers; then
    echo "engine: $(docker version --format '{{.Server.Version}}')$(ours && echo " (ours, pid $(cat "$PIDFILE"))")"
    docker network ls --format '{{.Name}}' | grep -qx bridge && echo "network: bridge" \
      || echo "network: host only"
    docker images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '^ucj-' || true
  else
    echo "engine: none answers"
    return 1
  fi
}

cmd_prepare() {
  local t0=$SECONDS
  if ! answers; then
    cmd_start
    touch "$STARTED"
  fi
  say "engine: $((SECONDS - t0)) s"
  t0=$SECONDS
  "$PY" -m deploy.docker.images
  say "images: $((SECONDS - t0)) s"
}

cmd_release() {  # stop the engine `prepare` started, if it did
  if [ -e "$STARTED" ]; then
    rm -f "$STARTED"
    cmd_stop
  fi
}

cmd_pass() {
  local t0=$SECONDS t rc=0
  trap cmd_release EXIT
  cmd_prepare  # seconds when done ahead: the engine answers, the images are up to date

  # Two sessions: the testcontainers' broker and server are gone before compose starts its own.
  local r=0
  t=$SECONDS
  UCJ_TEST_INFRA=testcontainers "$PY" -m pytest tests/integration -p no:cacheprovider "$@" || r=$?
  say "integration tests through testcontainers: $((SECONDS - t)) s (exit $r)"
  rc=$r r=0
  t=$SECONDS
  UCJ_COMPOSE_TEST=1 "$PY" -m pytest tests/docker -p no:cacheprovider "$@" || r=$?
  say "compose test: $((SECONDS - t)) s (exit $r)"
  [ "$rc" -ne 0 ] || rc=$r
  say "docker pass: $((SECONDS - t0)) s"
  return "$rc"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  prepare) cmd_prepare ;;
  release) cmd_release ;;
  pass) shift; cmd_pass "$@" ;;
  *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
