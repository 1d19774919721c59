#!/bin/sh
# usage: poison-bench.sh SHOAL_BINARY WORKDIR
set -e
BIN=$1; W=$2
rm -rf "$W"; mkdir -p "$W/m3" "$W/m4" "$W/tenants"
printf 'CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n' > "$W/m3/0001_users.sql"
printf 'CREATE TABLE notes (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), body TEXT);\n' > "$W/m3/0002_notes.sql"
printf 'CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT UNIQUE);\n' > "$W/m3/0003_tags.sql"
cp "$W"/m3/*.sql "$W/m4/"
printf 'ALTER TABLE users ADD COLUMN email TEXT;\nSELEC broken syntax;\n' > "$W/m4/0004_poison.sql"
for i in $(seq -w 1 20); do
  mkdir -p "$W/tenants/t-$i"
  "$BIN" migrate --db "$W/tenants/t-$i/app.db" --dir "$W/m3" >/dev/null 2>&1
done
start=$(date +%s.%N)
set +e
"$BIN" --log-level warn run --root "$W/tenants" --dir "$W/m4" --report "$W/report.json" $EXTRA >"$W/stdout" 2>"$W/stderr"
rc=$?
end=$(date +%s.%N)
echo "exit $rc"
echo "wall $(echo "$end - $start" | bc) s"
echo "backups $(find "$W/tenants" -name '*.bak' | wc -l)"
echo "log lines (stderr, JSON) $(grep -c '^{' "$W/stderr")"
echo "stderr lines $(wc -l < "$W/stderr")"
python3 -c "
import json,collections
r=json.load(open('$W/report.json'))
a=[d['attempt'] for d in r['databases']]
print('attempts (sum of final attempt numbers)', sum(a), 'per tenant', collections.Counter(a))
print('outcomes', collections.Counter(d['outcome'] for d in r['databases']))
"
