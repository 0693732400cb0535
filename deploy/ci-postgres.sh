#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster (for the storage tests) and print its SQLAlchemy URL.
#
#   export MICHECK_TEST_POSTGRES_URL="$(deploy/ci-postgres.sh)"
#   deploy/ci-postgres.sh stop DIR     # optional; the cluster dies with the machine anyway
#
# Needs Debian's postgresql package (initdb, pg_ctl under /usr/lib/postgresql/N/bin). Runs
# the server as the invoking user, or as "postgres" when invoked as root (initdb refuses
# root). Data and socket live in a fresh temp dir; it listens on 127.0.0.1 only, with
# trust auth: never use this for anything but tests.
set -euo pipefail
# runuser lives in /usr/sbin, which a non-login PATH (e.g. PATH=/usr/bin:/bin) leaves out
export PATH="$PATH:/usr/sbin:/sbin"
bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[ -x "$bindir/initdb" ] || { echo "ci-postgres: PostgreSQL server binaries not found" >&2; exit 1; }

if [ "${1:-}" = stop ]; then
  dir="$2"; as=(); [ "$(id -u)" = 0 ] && as=(runuser -u postgres --)
  cd /  # the postgres user may not enter the caller's directory (a private clone)
  "${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null
  exit 0
fi

port="${MICHECK_PG_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
dir="$(mktemp -d /tmp/micheck-pg.XXXXXX)"
user="$(id -un)"
as=()
if [ "$(id -u)" = 0 ]; then
  user=postgres; as=(runuser -u postgres --)
  chown postgres "$dir"
fi
"${as[@]}" "$bindir/initdb" -D "$dir/data" -U postgres -A trust --no-sync >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log" >&2; exit 1; }
"${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off" start >/dev/null \
  || { cat "$dir/server.log" >&2; exit 1; }
echo "ci-postgres: cluster in $dir (server user $user), stop with: $0 stop $dir" >&2
echo "postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
