# Exports at every level: Patient/$export holds the caller's patients (the
# members of every roster it may see and of the live Matched Groups it made),
# /$export the same plus the shared resources they reference; an admin
# client's cover every patient and the whole directory.  Same parameters,
# opt-outs and disclosure records as a Group export.

psql_q "INSERT INTO resource (type, id, patient_id, last_updated, json, tokens) VALUES
  ('Patient', 'lvl-out', 'lvl-out', now(), '{\"resourceType\":\"Patient\",\"id\":\"lvl-out\"}', '{}'),
  ('Patient', 'lvl-m', 'lvl-m', now(), '{\"resourceType\":\"Patient\",\"id\":\"lvl-m\"}', '{}'),
  ('Observation', 'lvl-obs', 'p1', now(),
   '{\"resourceType\":\"Observation\",\"id\":\"lvl-obs\",\"performer\":[{\"reference\":\"Organization/lvl-org\"}]}',
   '{ref=Organization/lvl-org}'),
  ('Organization', 'lvl-org', NULL, now(), '{\"resourceType\":\"Organization\",\"id\":\"lvl-org\"}', '{}'),
  ('Organization', 'lvl-unref', NULL, now(), '{\"resourceType\":\"Organization\",\"id\":\"lvl-unref\"}', '{}');
  INSERT INTO matched_group (id, client_id, expires_at, json) VALUES
    ('lvl-mg', '$CLIENT_ID', now() + interval '1 day', '{}'), ('lvl-mg-old', '$CLIENT_ID', now() - interval '1 day', '{}');
  INSERT INTO matched_group_member (group_id, patient_id) VALUES ('lvl-mg', 'lvl-m'), ('lvl-mg-old', 'lvl-out');
  INSERT INTO opt_out (patient_id, scope, period_start) VALUES ('p2', 'global', current_date - 1)" > /dev/null

level_kickoff() {  # level_kickoff PATH [curl args]: sets JOB_URL
  local path=$1; shift
  http GET "$BASE/$path" -H 'Accept: application/fhir+json' -H 'Prefer: respond-async' "$@"
  JOB_URL=$(header Content-Location)
}
ids_of() {  # ids_of TYPE: the ids in the manifest's files of TYPE, sorted, comma-joined
  local url
  for url in $(jq_body -r --arg t "$1" '.output[] | select(.type == $t) | .url'); do
    curl -sf -H "Authorization: Bearer $TOKEN" "$url"
  done | jq -r .id | sort | paste -sd, -
}

for path in 'Patient/$export' '$export'; do
  NOAUTH=1 http GET "$BASE/$path" -H 'Accept: application/fhir+json' -H 'Prefer: respond-async'
  expect_outcome "$path without a token answers 401" 401 ""
done

level_kickoff 'Patient/$export'
expect_eq "Patient/\$export is accepted" "$STATUS" 202
wait_job "$JOB_URL" 60
expect_eq "... and completes" "$STATUS" 200
expect_eq "... holding only Patient-compartment types" \
  "$(jq_body '[.output[].type] | map(select(. == "Organization" or . == "Practitioner" or . == "Location")) | length')" 0
pats=$(ids_of Patient)
expect_eq "... the patients of the client's rosters and of its live Matched Group, without the opted-out" \
  "$(tr , '\n' <<< "$pats" | wc -l) $(grep -c 'lvl-m' <<< "$pats") $(grep -cE '(^|,)(p2|lvl-out)(,|$)' <<< "$pats")" \
  "400 1 0"
expect_eq "... the members' own resources" "$(ids_of Observation | grep -c lvl-obs)" 1
expect_eq "... and the request's records: the exported and the withheld, with no Group" \
  "$(psql_q "SELECT count(*) FILTER (WHERE outcome = 'exported'), count(*) FILTER (WHERE outcome = 'withheld'
             AND patient_id = 'p2'), count(group_id) FROM disclosure WHERE job_id = '${JOB_URL##*/}'")" "401|1|0"
http DELETE "$JOB_URL"

level_kickoff 'Patient/$export' --get --data-urlencode '_type=Patient,Organization'
expect_outcome "a Patient-level export refuses a type outside the Patient compartment" 400 "not in the Patient compartment"
level_kickoff 'Patient/$export' --get --data-urlencode 'exportType=hl7.fhir.us.davinci-pdex#provider-download'
expect_outcome "... and the PDex exportType of a Group export" 400 "exportType"
level_kickoff '$export' --get --data-urlencode 'patient=Patient/p1'
expect_outcome "a system-level export takes no patient parameter" 400 "patient"

http POST "$BASE/Patient/\$export" -H 'Accept: application/fhir+json' -H 'Prefer: respond-async' \
  -H 'Content-Type: application/fhir+json' --data '{"resourceType":"Parameters","parameter":[
    {"name":"_type","valueString":"Patient"},
    {"name":"patient","valueReference":{"reference":"Patient/p1"}},
    {"name":"patient","valueReference":{"reference":"Patient/lvl-out"}}]}'
expect_eq "a POSTed Patient-level export with patients is accepted" "$STATUS" 202
JOB_URL=$(header Content-Location)
wait_job "$JOB_URL" 60
expect_eq "... exports the client's patient among them" "$(ids_of Patient)" "p1"
err=$(curl -sf -H "Authorization: Bearer $TOKEN" "$(jq_body -r '.error[0].url')")
expect_match "... and names the other in its error file" "$err" "Patient/lvl-out is not one of the client's patients"
http DELETE "$JOB_URL"

level_kickoff '$export' --get --data-urlencode '_type=Patient,Observation,Organization'
wait_job "$JOB_URL" 60
expect_eq "/\$export completes" "$STATUS" 200
expect_match "... with the Organization the members' resources reference, and not the others" \
  "$(ids_of Organization)" "^([^,]*,)*lvl-org(,[^,]*)*$"
expect_eq "... (no unreferenced one)" "$(ids_of Organization | tr , '\n' | grep -c lvl-unref)" 0
first=$(jq_body -r '.output[0].url')
sys_job=$JOB_URL

adm=$("$PA_ROOT/bin/pa-admin" --config "$PA_ROOT/provider-access.conf" client add --name "levels admin" --admin --secret)
atok=$(token_for "$(sed -n 1p <<< "$adm")" "$(sed -n 2p <<< "$adm")")
NOAUTH=1 http GET "$BASE/\$export" -H 'Accept: application/fhir+json' -H 'Prefer: respond-async' \
  -H "Authorization: Bearer $atok" --get --data-urlencode '_type=Patient,Organization'
JOB_URL=$(header Content-Location)
for _ in $(seq 300); do
  NOAUTH=1 http GET "$JOB_URL" -H "Authorization: Bearer $atok"
  [ "$STATUS" = 202 ] || [ "$STATUS" = 429 ] || break; sleep 0.2
done
expect_eq "an admin client's /\$export completes" "$STATUS" 200
all_orgs=$(psql_q "SELECT count(*) FROM resource WHERE type = 'Organization'")
all_pats=$(psql_q "SELECT count(*) FROM resource r WHERE type = 'Patient' AND NOT EXISTS (SELECT 1 FROM disclosure d
                   WHERE d.job_id = '${JOB_URL##*/}' AND d.outcome = 'withheld' AND d.patient_id = r.id)")
expect_eq "... the opted-out p2 withheld" \
  "$(psql_q "SELECT count(*) FROM disclosure WHERE job_id = '${JOB_URL##*/}' AND outcome = 'withheld' AND patient_id = 'p2'")" 1
expect_eq "... with every patient but the opted-out and every Organization" \
  "$(jq_body -r '[([.output[] | select(.type == "Patient") | .count] | add), ([.output[] | select(.type == "Organization") | .count] | add)] | map(tostring) | join(" ")')" \
  "$all_pats $all_orgs"
adm_url=$(jq_body -r '.output[0].url')
expect_eq "... whose files the provider's token cannot download" \
  "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$adm_url")" 404
expect_eq "... as the admin cannot download the provider's" \
  "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $atok" "$first")" 404
NOAUTH=1 http DELETE "$JOB_URL" -H "Authorization: Bearer $atok"
http DELETE "$sys_job"

psql_q "DELETE FROM opt_out WHERE patient_id = 'p2' AND scope = 'global' AND period_start = current_date - 1;
        DELETE FROM matched_group WHERE id IN ('lvl-mg', 'lvl-mg-old');
        DELETE FROM resource WHERE id IN ('lvl-out', 'lvl-m', 'lvl-obs', 'lvl-org', 'lvl-unref')" > /dev/null

NOAUTH=1 http GET "$BASE/metadata"
expect_eq "the CapabilityStatement declares the system- and Patient-level exports" \
  "$(jq_body -r '[.rest[0].operation[].definition, (.rest[0].resource[] | select(.type == "Patient") | .operation[].definition)] | join(" ")')" \
  "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"
