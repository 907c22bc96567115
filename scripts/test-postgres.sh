# Sourced by scripts/run-tests: start a private PostgreSQL server for the PostgreSQL variants
# of the index tests (tests/pgtest.py) and export SIPREC_TEST_DATABASE_URL, unless it is set.
# The server lives in a temp folder on a free loopback port, trusts local connections, and is
# stopped by stop_test_postgres (run-tests calls it when pytest ends).
start_test_postgres() {
  if [ -n "${SIPREC_TEST_DATABASE_URL:-}" ]; then return 0; fi
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$bin" ]; then echo "PostgreSQL not installed (Debian postgresql)" >&2; return 1; fi
  PG_TEST_DIR=$(mktemp -d /tmp/siprec-pg.XXXXXX)
  local as=()
  if [ "$(id -u)" = "0" ]; then
    # initdb refuses to run as root: the server runs as the Debian package's postgres user.
    chown postgres "$PG_TEST_DIR"
    as=(runuser -u postgres --)
  fi
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "${as[@]}" "$bin/initdb" -D "$PG_TEST_DIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
  "${as[@]}" "$bin/pg_ctl" -D "$PG_TEST_DIR/data" -l "$PG_TEST_DIR/log" -w \
    -o "-p $port -k $PG_TEST_DIR -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  PG_TEST_CTL=("${as[@]}" "$bin/pg_ctl" -D "$PG_TEST_DIR/data")
  export SIPREC_TEST_DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:$port/siprec_test"
  echo "PostgreSQL for the tests on 127.0.0.1:$port"
}

stop_test_postgres() {
  if [ -n "${PG_TEST_DIR:-}" ]; then
    "${PG_TEST_CTL[@]}" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$PG_TEST_DIR"
  fi
}
