# Upgrading a database: one made by the first release (sql/oldest: 002 before it
# was edited in place) is brought up to date by pa-admin migrate, repaired by 009,
# and from then on every applied migration is recorded with its checksum: a
# database whose history differs from the SQL folder is refused by migrate and
# check, naming the file.

REPO_SQL=$REPO/sql
up_conf=$HTTP_TMP/upgrade.conf
up() { "$PA_ROOT/bin/pa-admin" --config "$up_conf" "$@"; }
uq() { psql_q "$1" pa_upgrade; }
psql_q "DROP DATABASE IF EXISTS pa_upgrade" > /dev/null 2>&1
psql_q "CREATE DATABASE pa_upgrade" > /dev/null
sed "s/dbname=[a-z_]*/dbname=pa_upgrade/" "$PA_ROOT/provider-access.conf" > "$up_conf"

# the first release's schema, as its pa-admin migrate applied it, with a client and a finished job
for f in "$REPO_SQL"/oldest/0*.sql; do
  n=$(basename "$f")
  uq "BEGIN; $(cat "$f"); INSERT INTO schema_version (version, name) VALUES (${n:0:3}, '$n'); COMMIT;" > /dev/null
done
expect_eq "the first release's schema: version 2, no download_record, no audit detail" \
  "$(uq "SELECT max(version) || ' ' || (to_regclass('download_record') IS NULL) || ' ' ||
        NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'audit_event' AND column_name = 'detail')
        FROM schema_version")" "2 true true"
uq "INSERT INTO client (id, name, npi, secret_hash) VALUES ('old-client', 'Old EHR', '1234567893', 'x');
    INSERT INTO job (id, kind, owner, state, request, params, transaction_time, finished_at)
    VALUES ('old-job', 'export', 'old-client', 'completed', 'x', '{}', now(), now())" > /dev/null

out=$(PA_SQL_DIR=$REPO_SQL up check 2>&1)
expect_match "pa-admin check refuses the old schema" "$out" "schema	old"
nofile=$HTTP_TMP/sql-without-002
cp -r "$REPO_SQL" "$nofile"
rm "$nofile/002_payer_data.sql"
out=$(up migrate --sql-dir "$nofile" 2>&1)
expect_match "a folder without a migration the database applied is refused before anything is applied" "$out" \
  "migration 002_payer_data.sql was applied .* has no such file"
expect_eq "... which it is not" "$(uq "SELECT max(version) FROM schema_version")" 2
out=$(up migrate --sql-dir "$REPO_SQL" 2>&1)
expect_eq "pa-admin migrate brings it up to date" "$?" 0
expect_match "... applying every later migration, the repair among them" "$out" "applied 009_repair.sql"
expect_match "... and then the checksums of the 2 the first release applied (those applied now before 009 silently)" "$out" \
  "recorded the checksums of 2 migrations applied before checksums were kept"
expect_eq "the repair added what editing 002 had left out" \
  "$(uq "SELECT (to_regclass('download_record') IS NOT NULL) || ' ' ||
        EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'audit_event' AND column_name = 'detail')")" \
  "true true"
expect_eq "every migration is recorded with its file's checksum" \
  "$(uq "SELECT count(*) FILTER (WHERE checksum IS NULL) || ' ' || count(*) FROM schema_version")" \
  "0 $(ls "$REPO_SQL"/0*.sql | wc -l)"
expect_eq "... the SHA-256 of the file" "$(uq "SELECT checksum FROM schema_version WHERE version = 5")" \
  "$(sha256sum "$REPO_SQL/005_job_request.sql" | cut -d' ' -f1)"
expect_eq "the old client and job are still there" "$(uq "SELECT count(*) FROM client WHERE id = 'old-client'") $(uq "SELECT state FROM job WHERE id = 'old-job'")" "1 completed"
out=$(PA_SQL_DIR=$REPO_SQL up check 2>&1)
expect_match "pa-admin check: the schema is fine" "$out" "schema	ok"
out=$(up migrate --sql-dir "$REPO_SQL" 2>&1)
expect_match "migrating again applies nothing" "$out" "(0 applied)"

# an applied migration edited in place, or gone: refused, naming the file
edited=$HTTP_TMP/sql-edited
cp -r "$REPO_SQL" "$edited"
echo "-- an afterthought" >> "$edited/005_job_request.sql"
out=$(up migrate --sql-dir "$edited" 2>&1)
expect_eq "pa-admin migrate refuses a database whose applied migration was edited" "$?" 1
expect_match "... naming the file" "$out" "005_job_request.sql is not the migration this database applied"
out=$(PA_SQL_DIR=$edited up check 2>&1)
expect_eq "pa-admin check fails on it too" "$?" 1
expect_match "... naming it" "$out" "005_job_request.sql is not the migration this database applied"
expect_match "... and saying the schema changed" "$out" "schema	changed"
gone=$HTTP_TMP/sql-gone
cp -r "$REPO_SQL" "$gone"
rm "$gone/007_client_flag.sql"
out=$(up migrate --sql-dir "$gone" 2>&1)
expect_match "an applied migration missing from the folder is refused, named" "$out" \
  "migration 007_client_flag.sql was applied .* but .* has no such file"
psql_q "DROP DATABASE pa_upgrade" > /dev/null
