# Delta exports miss nothing: _since, _until and transactionTime compare this
# server's own change time (resource.last_updated, and every stored line's
# meta.lastUpdated), set when the loader stores content that differs; never
# the source's meta.lastUpdated.

admin() { "$PA_ROOT/bin/pa-admin" --config "$PA_ROOT/provider-access.conf" "$@"; }
m=$(psql_q "SELECT patient_id FROM roster_member WHERE roster_id = 'small' ORDER BY patient_id LIMIT 1")
obs() {  # obs ID SOURCE_LASTUPDATED STATUS: an Observation of member m
  printf '{"resourceType":"Observation","id":"%s","meta":{"lastUpdated":"%s"},"status":"%s","code":{"text":"delta"},"subject":{"reference":"Patient/%s"},"effectiveDateTime":"2025-06-01"}\n' \
    "$1" "$2" "$3" "$m"
}
stamp_of() {  # stamp_of ID: the Observation's change time, as a FHIR instant
  psql_q "SELECT to_char(last_updated AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') FROM resource WHERE type = 'Observation' AND id = '$1'"
}
# delta_ids SINCE: the ids of the Observations of roster small a _since export gives
delta_ids() {
  kickoff small --get --data-urlencode "_since=$1" --data-urlencode '_type=Observation'
  wait_job "$JOB_URL" 60
  rm -rf "$HTTP_TMP/delta"
  download_all "$BODY" "$HTTP_TMP/delta"
  cat "$HTTP_TMP"/delta/* 2>/dev/null | jq -r .id | sort | paste -sd' '
  http DELETE "$JOB_URL"
}

{ obs d-restated 2020-01-01T00:00:00Z final; obs d-same 2020-01-01T00:00:00Z final
  obs d-source-lu 2020-01-01T00:00:00Z final; } > "$HTTP_TMP/d1.ndjson"
before=$(psql_q "SELECT date_trunc('milliseconds', clock_timestamp())")
admin load "$HTTP_TMP/d1.ndjson" > /dev/null
after=$(psql_q "SELECT clock_timestamp()")
expect_eq "a loaded resource's change time is when it was stored, not its source's lastUpdated" \
  "$(psql_q "SELECT last_updated >= '$before' AND last_updated <= '$after' FROM resource WHERE type = 'Observation' AND id = 'd-same'")" t
expect_eq "... and its stored meta.lastUpdated says the same" \
  "$(psql_q "SELECT json::jsonb->'meta'->>'lastUpdated' FROM resource WHERE type = 'Observation' AND id = 'd-same'")" "$(stamp_of d-same)"

kickoff small --get --data-urlencode '_type=Observation'
wait_job "$JOB_URL" 60
tt1=$(jq_body -r .transactionTime)
download_all "$BODY" "$HTTP_TMP/full"
expect_eq "an export's meta.lastUpdated is the change time" \
  "$(cat "$HTTP_TMP"/full/* | jq -r 'select(.id == "d-same") | .meta.lastUpdated')" "$(stamp_of d-same)"
http DELETE "$JOB_URL"
same_at=$(stamp_of d-same)

sleep 0.05
# after that export: a record restated with its lastUpdated unchanged, one
# reloaded as it was, one whose source only moved its lastUpdated, and one
# loaded late with a lastUpdated older than the export
{ obs d-restated 2020-01-01T00:00:00Z amended; obs d-same 2020-01-01T00:00:00Z final
  obs d-source-lu 2021-05-05T00:00:00Z final; obs d-late 2019-01-01T00:00:00Z final; } > "$HTTP_TMP/d2.ndjson"
out=$(admin load "$HTTP_TMP/d2.ndjson" 2>&1)
expect_match "the reload stores what changed and nothing else" "$out" "\\(1 new, 1 updated, 2 unchanged\\)"
expect_eq "a reload of unchanged content keeps its change time" "$(stamp_of d-same)" "$same_at"
expect_eq "a delta from the export's transactionTime holds the late and the restated records, nothing else" \
  "$(delta_ids "$tt1")" "d-late d-restated"
expect_eq "... each with a meta.lastUpdated after that transactionTime" \
  "$(cat "$HTTP_TMP"/delta/* | jq -r --arg tt "$tt1" 'select(.meta.lastUpdated <= $tt) | .id' | wc -l)" 0

# a transaction that changes resources is open at the kick-off: the
# transactionTime is before it began, so its changes reach the next delta
psql_q "BEGIN; SELECT pg_advisory_xact_lock_shared(872341, 1); SELECT pg_sleep(3); COMMIT" > /dev/null &
open_pid=$!
wait_for 10 eval "[ -n \"\$(psql_q \"SELECT 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep(3)%' AND pid <> pg_backend_pid()\")\" ]"
open_since=$(psql_q "SELECT xact_start FROM pg_stat_activity WHERE query LIKE '%pg_sleep(3)%' AND pid <> pg_backend_pid()")
kickoff small --get --data-urlencode '_type=Patient'
wait_job "$JOB_URL" 60
expect_eq "with a change open since before the kick-off, transactionTime is before that change began" \
  "$(psql_q "SELECT '$(jq_body -r .transactionTime)'::timestamptz < '$open_since'::timestamptz")" t
http DELETE "$JOB_URL"
wait "$open_pid"
kickoff small --get --data-urlencode '_type=Patient'
wait_job "$JOB_URL" 60
expect_eq "with none, it is the kick-off's time" \
  "$(psql_q "SELECT abs(extract(epoch FROM '$(jq_body -r .transactionTime)'::timestamptz - now())) < 10")" t
http DELETE "$JOB_URL"
# what an older version extracted (its content hash, no reference tokens) is
# refreshed by loading the same line again; the line and its change time stay
obs d-facts 2020-01-01T00:00:00Z final | jq -c '.encounter = {"reference": "Encounter/d-enc"}' > "$HTTP_TMP/d4.ndjson"
admin load "$HTTP_TMP/d4.ndjson" > /dev/null
facts_at=$(stamp_of d-facts)
facts_json=$(psql_q "SELECT json FROM resource WHERE type = 'Observation' AND id = 'd-facts'")
psql_q "UPDATE resource SET refs = NULL, content_hash = 'older'::bytea WHERE type = 'Observation' AND id = 'd-facts'" > /dev/null
out=$(admin load "$HTTP_TMP/d4.ndjson" 2>&1)
expect_eq "a reload after a new extraction refreshes what is extracted" \
  "$(psql_q "SELECT refs = '{Encounter/d-enc}' FROM resource WHERE type = 'Observation' AND id = 'd-facts'")" t
expect_eq "... and keeps the line and its change time" \
  "$(stamp_of d-facts) $(psql_q "SELECT json = '$facts_json' FROM resource WHERE type = 'Observation' AND id = 'd-facts'")" \
  "$facts_at t"
expect_match "... counting it unchanged" "$out" "\\(0 new, 0 updated, 1 unchanged\\)"
admin delete Observation/d-restated Observation/d-same Observation/d-source-lu Observation/d-late Observation/d-facts > /dev/null
