#!/bin/bash
# ucj-postgres's entrypoint: initdb and the init scripts on an empty data directory (on a
# server listening on a private Unix socket only), then exec the server.
set -euo pipefail

user=${POSTGRES_USER:-postgres}
port=${POSTGRES_PORT:-5432}
listen=${POSTGRES_LISTEN_ADDRESSES:-*}
[ "${1:-}" = postgres ] && shift  # `command: [postgres, -c, ...]` as with the postgres image

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  method=trust
  pwfile=()
  if [ -n "${POSTGRES_PASSWORD:-}" ]; then
    method=scram-sha-256
    printf '%s\n' "$POSTGRES_PASSWORD" > /tmp/pwfile
    pwfile=(--pwfile=/tmp/pwfile)
  fi
  initdb -D "$PGDATA" -U "$user" -E UTF8 --locale=C --auth-local=trust --auth-host="$method" \
    "${pwfile[@]}" >/dev/null
  rm -f /tmp/pwfile
  echo "host all all all $method" >> "$PGDATA/pg_hba.conf"  # other containers, published ports

  init_sock=/tmp/pg-init
  mkdir -p "$init_sock"
  pg_ctl -D "$PGDATA" -w -s -o "-c listen_addresses='' -c unix_socket_directories=$init_sock" start
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sql) echo "init: $f"; psql -v ON_ERROR_STOP=1 -q -h "$init_sock" -U "$user" -d postgres -f "$f" ;;
      *.sh) echo "init: $f"; . "$f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -w -s -m fast stop
fi

exec postgres -D "$PGDATA" -p "$port" -c listen_addresses="$listen" \
  -c unix_socket_directories=/var/run/postgresql "$@"
