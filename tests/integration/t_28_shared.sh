# The shared resources an export holds: those its exported resources
# reference (under the same _since, _until, service-date floor and
# _typeFilter as the resources themselves), and in a _since export only those
# that changed since or that the client has never received.

obs_row() {  # obs_row ID ORG CHANGED [CLINICAL_DATE]: an Observation of p300 referencing ORG
  printf "('Observation', '%s', 'p300', '%s', '{\"resourceType\":\"Observation\",\"id\":\"%s\",\"performer\":[{\"reference\":\"Organization/%s\"}]}', '{ref=Organization/%s}', %s)" \
    "$1" "$3" "$1" "$2" "$2" "${4:-NULL}"
}
org_row() {  # org_row ID CHANGED
  printf "('Organization', '%s', NULL, '%s', '{\"resourceType\":\"Organization\",\"id\":\"%s\"}', '{}', NULL)" "$1" "$2" "$1"
}
t0=$(psql_q "SELECT to_char((now() - interval '2 hours') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
psql_q "INSERT INTO resource (type, id, patient_id, last_updated, json, tokens, clin_start) VALUES
  $(obs_row ds-obs1 ds-org1 "$t0"), $(obs_row ds-old ds-org-old "$t0" "'2010-03-01'"),
  $(org_row ds-org1 "$t0"), $(org_row ds-org-old "$t0"), $(org_row ds-org2 "$t0")" > /dev/null

orgs_of() {  # orgs_of [curl args]: the ds-* Organizations an export of roster small gives
  kickoff small "$@"
  wait_job "$JOB_URL" 60
  rm -rf "$HTTP_TMP/shared"
  download_all "$BODY" "$HTTP_TMP/shared"
  cat "$HTTP_TMP"/shared/* 2>/dev/null | jq -r 'select(.resourceType == "Organization") | .id' | grep '^ds-' |
    sort | paste -sd' '
  http DELETE "$JOB_URL"
}

expect_eq "an export holds the Organizations its resources reference, not one the date floor's resources do" \
  "$(orgs_of --get --data-urlencode '_type=Observation,Organization')" "ds-org1"
expect_eq "... nor one a resource _typeFilter left out references" \
  "$(orgs_of --get --data-urlencode '_type=Observation,Organization' --data-urlencode '_typeFilter=Observation?_id=ds-old')" ""
expect_eq "... nor one a resource before _since references" \
  "$(orgs_of --get --data-urlencode '_type=Observation,Organization' --data-urlencode "_since=$(date -u -d '-1 minute' +%Y-%m-%dT%H:%M:%SZ)")" ""

t1=$(date -u -d '-1 minute' +%Y-%m-%dT%H:%M:%SZ)
psql_q "INSERT INTO resource (type, id, patient_id, last_updated, json, tokens, clin_start) VALUES
  $(obs_row ds-obs2 ds-org1 "$(date -u -d '-30 seconds' +%Y-%m-%dT%H:%M:%SZ)"),
  $(obs_row ds-obs3 ds-org2 "$(date -u -d '-30 seconds' +%Y-%m-%dT%H:%M:%SZ)")" > /dev/null
expect_eq "a _since export sends a referenced Organization the client never received, not one it has, unchanged" \
  "$(orgs_of --get --data-urlencode '_type=Observation,Organization' --data-urlencode "_since=$t1")" "ds-org2"
expect_eq "... which it now has" \
  "$(psql_q "SELECT string_agg(id, ' ' ORDER BY id) FROM shared_received WHERE client_id = '$CLIENT_ID' AND id LIKE 'ds-%'")" \
  "ds-org1 ds-org2"
psql_q "UPDATE resource SET last_updated = now() - interval '10 seconds' WHERE type = 'Organization' AND id = 'ds-org1'" > /dev/null
expect_eq "... and one it has once it changes" \
  "$(orgs_of --get --data-urlencode '_type=Observation,Organization' --data-urlencode "_since=$t1")" "ds-org1"

psql_q "DELETE FROM resource WHERE id LIKE 'ds-%'; DELETE FROM shared_received WHERE id LIKE 'ds-%'" > /dev/null
