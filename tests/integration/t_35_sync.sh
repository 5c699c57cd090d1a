# pa-admin sync: a second provider-access stack plays the payer's FHIR
# server; its system-level Bulk export (an admin, financial client) is
# pulled into a database of its own: a full sync, a delta after changes
# and deletions, an interruption mid-download resumed, and the failures a
# cron job must report.

admin() { "$PA_ROOT/bin/pa-admin" --config "$PA_ROOT/provider-access.conf" "$@"; }
src_root=$(mktemp -d /tmp/pa-src.XXXXXX)
chmod 755 "$src_root"
src_port=$(free_port)
src_env() {
  env PA_ROOT="$src_root" PA_HTTP_PORT="$src_port" PA_REDIS_PORT="$src_redis" PA_PG_PORT="$src_pg" PA_HTTPS_PORT= \
    PA_EXTRA_CONFIG="$src_extra" "$@"
}
src_redis=$(free_port); src_pg=$(free_port)
# everything exported (no date floor), in many small files
src_extra="service_date_floor =
export_file_max_bytes = 65536
retry_after_seconds = 1
poll_min_interval_ms = 0
log_level = debug"
src_admin() { "$src_root/bin/pa-admin" --config "$src_root/provider-access.conf" "$@"; }
if ! src_env "$STACK" start > "$HTTP_TMP/src-start.log" 2>&1; then
  fail "a second stack starts as the payer's FHIR server" "$(tail -n 20 "$HTTP_TMP/src-start.log")"
fi
syn=$HTTP_TMP/src-payer
src_admin synth --members 30 --seed 21 --today 2026-11-01 --out "$syn" > /dev/null
# no opt-outs at the source: everything it has is exported
grep -v '"id":"optout-' "$syn/Group.ndjson" > "$syn/g" && mv "$syn/g" "$syn/Group.ndjson"
src_admin load "$syn" > /dev/null
# a SMART Backend Services client of the source: the payer's own, financial
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$HTTP_TMP/sync-key.pem" 2> /dev/null
"$REPO/examples/get-token" jwks "$HTTP_TMP/sync-key.pem" sync-1 > "$HTTP_TMP/sync-jwks.json"
sync_client=$(src_admin client add --name "payer sync" --admin --financial --jwks "$HTTP_TMP/sync-jwks.json" | sed -n 1p)

# the target: a database of its own on this stack's PostgreSQL
psql_q "DROP DATABASE IF EXISTS sync_target" > /dev/null 2>&1
psql_q "CREATE DATABASE sync_target" > /dev/null
tconf=$HTTP_TMP/target.conf
sed 's/dbname=provider_access/dbname=sync_target/' "$PA_ROOT/provider-access.conf" > "$tconf"
cat >> "$tconf" <<CONF
source.payer.url = http://127.0.0.1:$src_port/fhir
source.payer.auth = smart
source.payer.client_id = $sync_client
source.payer.key_file = $HTTP_TMP/sync-key.pem
source.payer.kid = sync-1
source.payer.parallel = 3
source.nogroup.url = http://127.0.0.1:$src_port/fhir
source.nogroup.level = group/no-such-group
source.nogroup.auth = smart
source.nogroup.client_id = $sync_client
source.nogroup.key_file = $HTTP_TMP/sync-key.pem
source.nogroup.kid = sync-1
source.badtoken.url = http://127.0.0.1:$src_port/fhir
source.badtoken.auth = bearer
source.badtoken.token_file = $HTTP_TMP/bad-token
CONF
echo "not-a-token" > "$HTTP_TMP/bad-token"
tgt() { "$PA_ROOT/bin/pa-admin" --config "$tconf" "$@"; }
tgt migrate --sql-dir "$REPO/sql" > /dev/null
tq() { psql_q "$1" sync_target; }
# what a store holds: each resource and its content, but for meta.lastUpdated
holdings() { echo "SELECT type || '/' || id || ' ' || md5((json::jsonb #- '{meta,lastUpdated}')::text) FROM resource ORDER BY 1"; }
src_holdings() { PGPASSWORD=$(cat "$src_root/secrets/pg") psql -h 127.0.0.1 -p "$src_pg" -U provider_access -d provider_access -Atc "$(holdings)"; }
same_store() {
  src_holdings > "$HTTP_TMP/src.txt"; tq "$(holdings)" > "$HTTP_TMP/tgt.txt"
  diff "$HTTP_TMP/src.txt" "$HTTP_TMP/tgt.txt" > "$HTTP_TMP/store.diff" && [ -s "$HTTP_TMP/src.txt" ]
}

out=$(tgt sync payer 2>&1); rc=$?
expect_eq "a first sync is a full export, loaded (SMART Backend Services)" "$rc" 0
expect_match "... and says what it did" "$out" "payer export started \\(full\\)"
expect_true "the target holds what the source holds, resource for resource" same_store
expect_eq "the EOBs came whole (a financial client)" \
  "$(tq "SELECT count(*) FROM resource WHERE type = 'ExplanationOfBenefit' AND json::jsonb ? 'payment'")" \
  "$(PGPASSWORD=$(cat "$src_root/secrets/pg") psql -h 127.0.0.1 -p "$src_pg" -U provider_access -d provider_access -Atc "SELECT count(*) FROM resource WHERE type = 'ExplanationOfBenefit' AND json::jsonb ? 'payment'")"
tt1=$(tq "SELECT transaction_time FROM sync_source WHERE name = 'payer'")
expect_match "its transactionTime is kept for the next" "$tt1" '^20'

# changes and deletions at the source: the next sync asks _since and applies them
jq -c 'select(.id == "mem-000002") | .gender = "other"' "$syn/Patient.ndjson" > "$HTTP_TMP/chg.ndjson"
jq -c 'select(.id == "mem-000002") | .id = "mem-new-1"' "$syn/Patient.ndjson" >> "$HTTP_TMP/chg.ndjson"
src_admin load "$HTTP_TMP/chg.ndjson" > /dev/null
gone=$(head -n 1 "$syn/Observation.ndjson" | jq -r .id)
src_admin delete "Observation/$gone" > /dev/null
out=$(tgt sync payer 2>&1); rc=$?
expect_eq "a delta sync succeeds" "$rc" 0
expect_match "... asking only for changes since the last" "$out" "changes since "
expect_match "... loading only what changed" "$out" "loaded 2 resources \\(1 new, 1 updated"
expect_match "... and the deletions" "$out" "1 deleted"
expect_true "the target is the source again" same_store
expect_eq "the deleted resource is gone, with a tombstone" \
  "$(tq "SELECT count(*) FROM resource_deleted WHERE type = 'Observation' AND id = '$gone'")" 1

# an interruption: the export's last file cannot be fetched; what came loads,
# nothing is recorded as synced, and the next run loads only what is left
tt2=$(tq "SELECT transaction_time FROM sync_source WHERE name = 'payer'")
tgt sync payer --full --wait 0 > /dev/null 2>&1
status_url=$(tq "SELECT status_url FROM sync_source WHERE name = 'payer'")
expect_match "a sync that cannot wait keeps the export under way" "$status_url" "^http://127.0.0.1:$src_port/"
job=${status_url##*/}
for _ in $(seq 1 200); do
  [ "$(src_admin jobs 2>/dev/null | awk -v j="$job" '$1 == j {print $4}')" = completed ] && break
  sleep 0.1
done
jobdir=$src_root/data/jobs/$job
last=$(ls "$jobdir" 2> /dev/null | grep ndjson | sort -V | tail -n 1)
nfiles=$(ls "$jobdir" 2> /dev/null | grep -c ndjson)
expect_true "the source's export has several files" test "${nfiles:-0}" -ge 3
[ -n "$last" ] && mv "$jobdir/$last" "$HTTP_TMP/away.ndjson"
out=$(tgt sync payer 2>&1); rc=$?
expect_eq "a file that cannot be downloaded fails the sync (exit 2)" "$rc" 2
expect_match "... saying which and what to do" "$out" "failed to download.*run again"
expect_eq "... nothing recorded as synced" "$(tq "SELECT transaction_time FROM sync_source WHERE name = 'payer'")" "$tt2"
loaded_before=$(tq "SELECT cardinality(files_loaded) FROM sync_source WHERE name = 'payer'")
expect_true "... the files that came are loaded and recorded" test "$loaded_before" -ge 1
[ -n "$last" ] && mv "$HTTP_TMP/away.ndjson" "$jobdir/$last"
# what is left: the manifest's files (output, then deleted) not loaded yet
left=$(tq "SELECT manifest FROM sync_source WHERE name = 'payer'" | jq -r '[.output[], (.deleted // [])[]] | to_entries[] | "\(.key) \(.value.url)"' |
  while read -r i url; do
    grep -qw "$i" <<< " $(tq "SELECT array_to_string(files_loaded, ' ') FROM sync_source WHERE name = 'payer'") " || cat "$jobdir/${url##*/}"
  done | grep -c .)
out=$(tgt sync payer 2>&1); rc=$?
expect_eq "run again, it resumes and finishes" "$rc" 0
expect_match "... without loading a file twice" "$out" "resuming: $loaded_before of the export's $nfiles files were loaded before"
expect_match "... only what was left" "$out" "loaded $left resources "
expect_true "the target is the source again" same_store
expect_eq "and only now the sync is recorded" "$(tq "SELECT transaction_time > '$tt2' AND status_url IS NULL FROM sync_source WHERE name = 'payer'")" t

# killed mid-way (kill -9 once two files are in): the next run resumes
tt3=$(tq "SELECT transaction_time FROM sync_source WHERE name = 'payer'")
( exec "$PA_ROOT/bin/pa-admin" --config "$tconf" sync payer --full > "$HTTP_TMP/killed.out" 2>&1 ) &
syncer=$!  # pa-admin itself (exec), not a shell around it
killed=no
for _ in $(seq 1 1000); do
  n=$(tq "SELECT coalesce(cardinality(files_loaded), 0) FROM sync_source WHERE name = 'payer' AND status_url IS NOT NULL")
  if [ "${n:-0}" -ge 2 ]; then kill -9 "$syncer"; killed=yes; break; fi
  kill -0 "$syncer" 2> /dev/null || break
  sleep 0.01
done
wait "$syncer" 2> /dev/null
expect_eq "a sync is killed with files of its export loaded" "$killed" yes
expect_eq "... nothing recorded as synced" "$(tq "SELECT transaction_time FROM sync_source WHERE name = 'payer'")" "$tt3"
out=$(tgt sync payer 2>&1); rc=$?
expect_eq "the next run finishes it" "$rc" 0
expect_match "... resuming the same export" "$out" "resuming: [0-9]+ of the export's [0-9]+ files were loaded before"
expect_true "the target is the source again" same_store

# one sync of a source at a time: a second one while it runs is refused
( PGPASSWORD=$(cat "$PA_ROOT/secrets/pg") psql -h 127.0.0.1 -p "$PA_PG_PORT" -U provider_access -d sync_target -Atq \
    -c "SELECT pg_advisory_lock(872342, hashtext('payer'))" -c "SELECT pg_sleep(15)" > /dev/null ) &
holder=$!
for _ in $(seq 1 50); do
  [ "$(tq "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 872342 AND granted")" = 1 ] && break
  sleep 0.1
done
out=$(tgt sync payer 2>&1); rc=$?
expect_eq "a sync while another of the same source runs is refused" "$rc" 2
expect_match "... saying so" "$out" "a sync of payer is running already"
wait "$holder"
# a killed sync's spool files are cleared by the next
mkdir -p "/tmp/pa-sync-$(id -u)-payer" && chmod 700 "/tmp/pa-sync-$(id -u)-payer"
echo leftover > "/tmp/pa-sync-$(id -u)-payer/9-Observation-1.ndjson"
out=$(tgt sync payer 2>&1); rc=$?
expect_eq "a sync after a killed one succeeds" "$rc" 0
expect_true "... and leaves no spool files behind" test ! -e "/tmp/pa-sync-$(id -u)-payer"

# failures a nightly job must see
out=$(tgt sync badtoken 2>&1); rc=$?
expect_eq "a refused token fails the sync" "$rc" 2
expect_match "... saying so" "$out" "HTTP 401"
out=$(tgt sync nogroup 2>&1); rc=$?
expect_eq "an export the source refuses fails the sync" "$rc" 2
expect_match "... with the source's OperationOutcome" "$out" "refused \\(HTTP 404\\)"
expect_eq "... and nothing is recorded for it" "$(tq "SELECT count(*) FROM sync_source WHERE name IN ('nogroup', 'badtoken') AND transaction_time IS NOT NULL")" 0
out=$(tgt sync nosuch 2>&1); rc=$?
expect_match "an unknown source is named" "$out" "no source nosuch"

src_env "$STACK" stop > /dev/null 2>&1
rm -rf "$src_root"
psql_q "DROP DATABASE IF EXISTS sync_target" > /dev/null 2>&1
