#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the store tests, on 127.0.0.1 only (trust auth, fsync off).
#   eval "$(scripts/start-postgres.sh)"      starts it and exports SED_TEST_POSTGRES_URL
#   scripts/start-postgres.sh --stop         stops it and deletes its data directory
# Runs the server as the 'postgres' user when invoked as root (PostgreSQL refuses to run as root).
# Prints only the export line on stdout; progress goes to stderr.
set -euo pipefail
dir="${SED_PG_DIR:-/tmp/sed-postgres}"
bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
if [ -z "$bin" ]; then
  echo "start-postgres: no PostgreSQL server under /usr/lib/postgresql (run scripts/setup-system.sh)" >&2
  exit 1
fi
as=()
if [ "$(id -u)" = 0 ]; then as=(runuser -u postgres --); fi

if [ "${1:-}" = "--stop" ]; then
  if [ -f "$dir/data/postmaster.pid" ]; then "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >&2 || true; fi
  rm -rf "$dir"
  exit 0
fi

if [ -f "$dir/data/postmaster.pid" ] && "${as[@]}" "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
  port="$(cat "$dir/port")"
else
  rm -rf "$dir"
  mkdir -p "$dir"
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  echo "$port" >"$dir/port"
  if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$dir"; fi
  "${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >&2 || { cat "$dir/server.log" >&2; exit 1; }
  "${as[@]}" "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres sed_test
  echo "start-postgres: PostgreSQL on 127.0.0.1:$port (data in $dir)" >&2
fi
echo "export SED_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:$port/sed_test"
