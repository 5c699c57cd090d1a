# An export holds only what the token's scopes cover: a type asked for by
# _type or _typeFilter outside them is 403; without _type, the export holds the
# types the scopes cover; a manifest lists no file the polling token cannot
# download.

psql_q "INSERT INTO resource (type, id, patient_id, last_updated, json) VALUES
  ('Coverage', 'scope-cov', 'p1', now(), '{\"resourceType\":\"Coverage\",\"id\":\"scope-cov\"}'),
  ('Observation', 'scope-obs', 'p1', now(), '{\"resourceType\":\"Observation\",\"id\":\"scope-obs\"}')" > /dev/null
as_tok() {  # as_tok TOKEN METHOD URL [curl args]
  local t=$1; shift
  NOAUTH=1 http "$@" -H "Authorization: Bearer $t"
}
pc=$(token_for "$CLIENT_ID" "$CLIENT_SECRET" "system/Group.read system/Patient.read system/Coverage.read")
as_tok "$pc" GET "$BASE/Group/small/\$export" -H 'Accept: application/fhir+json' -H 'Prefer: respond-async' \
  --get --data-urlencode '_type=Patient,Observation'
expect_outcome "_type naming a type outside the token's scopes answers 403" 403 "does not allow reading Observation"
as_tok "$pc" GET "$BASE/Group/small/\$export" -H 'Accept: application/fhir+json' -H 'Prefer: respond-async' \
  --get --data-urlencode '_typeFilter=Observation?category=laboratory'
expect_outcome "... as does a _typeFilter for one" 403 "does not allow reading Observation"

as_tok "$pc" GET "$BASE/Group/small/\$export" -H 'Accept: application/fhir+json' -H 'Prefer: respond-async'
expect_eq "without _type the kick-off is accepted" "$STATUS" 202
url=$(header Content-Location)
for _ in $(seq 150); do as_tok "$pc" GET "$url"; [ "$STATUS" = 202 ] || [ "$STATUS" = 429 ] || break; sleep 0.2; done
expect_eq "... and completes" "$STATUS" 200
expect_eq "... holding only the types the scopes cover" "$(jq_body '[.output[].type] | unique | join(",")')" "Coverage,Patient"
codes=""
for f in $(jq_body '.output[].url'); do
  codes="$codes $(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $pc" "$f")"
done
expect_match "... every file of which the token downloads" "$codes" "^( 200)+$"
as_tok "$pc" DELETE "$url"

group_only=$(token_for "$CLIENT_ID" "$CLIENT_SECRET" "system/Group.read")
as_tok "$group_only" GET "$BASE/Group/small/\$export" -H 'Accept: application/fhir+json' -H 'Prefer: respond-async'
expect_outcome "a token that covers none of the exported types answers 403" 403 "covers none of the types"

# a token narrower than the kick-off's polls the manifest
kickoff small --get --data-urlencode '_type=Patient,Observation'
wait_job "$JOB_URL" 60
expect_eq "the kick-off token's manifest lists both types" "$(jq_body '[.output[].type] | unique | join(",")')" "Observation,Patient"
sleep 0.2
as_tok "$pc" GET "$JOB_URL"
expect_eq "a narrower token's manifest lists only the files it may download" \
  "$STATUS $(jq_body '[.output[].type] | unique | join(",")')" "200 Patient"
narrow_counts=$(jq_body -c '[.output[] | .count]')
poll "$JOB_URL"
expect_eq "... and its counts are the kick-off token's for those files" \
  "$narrow_counts" "$(jq_body -c '[.output[] | select(.type == "Patient") | .count]')"
http DELETE "$JOB_URL"
psql_q "DELETE FROM resource WHERE id IN ('scope-cov', 'scope-obs')" > /dev/null
