# Hostile and malformed input gets a clear 4xx with an OperationOutcome that
# says what was wrong, and never reaches PostgreSQL, a job or json-c's
# assertions: dates and instants to FHIR's grammar and calendar, text as
# UTF-8, bodies as exactly one JSON value, limits at kick-off.

admin() { "$PA_ROOT/bin/pa-admin" --config "$PA_ROOT/provider-access.conf" "$@"; }
# the answer is JSON (jq reads it) even where it quotes the request
valid_json() { jq -e . <<< "$BODY" > /dev/null 2>&1; }

# --- instants and dates at kick-off
kickoff small --get --data-urlencode '_since=1969-12-31T23:59:59.500Z'
expect_eq "an instant before 1970 is a valid _since" "$STATUS" 202
wait_job "$JOB_URL" 60
expect_eq "and its export completes" "$STATUS" 200
http DELETE "$JOB_URL"
kickoff small --get --data-urlencode '_since=0999-06-01T00:00:00Z'
expect_eq "a year below 1000 is FHIR's grammar (0001 to 9999) and accepted" "$STATUS" 202
wait_job "$JOB_URL" 60
expect_eq "and its export completes (the year reaches PostgreSQL as four digits)" "$STATUS" 200
http DELETE "$JOB_URL"
for bad in 2024-13-01T00:00:00Z 2024-00-10T00:00:00Z 2024-01-32T00:00:00Z 2023-02-29T00:00:00Z \
           0000-01-01T00:00:00Z 2024-01-01T24:00:00Z 2024-01-01 2024-01-01T00:00:00 '2024-01-01T00:00:00.Z'; do
  kickoff small --get --data-urlencode "_since=$bad"
  expect_outcome "_since=$bad is refused, naming _since" 400 "_since"
done
kickoff small --get --data-urlencode '_since=2024-02-29T12:00:00+05:00'
expect_eq "a leap day with a zone is a valid _since" "$STATUS" 202
http DELETE "$JOB_URL"
for bad in ge2024-13 eq2024-00 ge2023-02-29 lt2024-04-31 ge0000 gt2024-1 ge2024-01-01T00:00:00; do
  kickoff small --get --data-urlencode '_type=Observation' --data-urlencode "_typeFilter=Observation?date=$bad"
  expect_outcome "_typeFilter date $bad is refused at kick-off" 400 "not a FHIR date"
done
kickoff small --get --data-urlencode '_type=Observation' --data-urlencode "_typeFilter=Observation?date=ge2024-02-29"
expect_eq "a _typeFilter date on a leap day is accepted" "$STATUS" 202
http DELETE "$JOB_URL"

# --- parameters with no value, or with bytes that are no text
kickoff small --get --data-urlencode '_type='
expect_outcome "_type= (empty) is refused, not read as every type" 400 "_type is empty"
http GET "$BASE/Group/small/\$export?_type" -H 'Accept: application/fhir+json' -H 'Prefer: respond-async'
expect_outcome "_type with no = is refused" 400 "_type is empty"
kickoff small --get --data-urlencode '_type=Patient,'
expect_outcome "_type=Patient, (a type missing) is refused" 400 "comma"
kickoff small --get --data-urlencode 'patient='
expect_outcome "patient= (empty) is refused, not read as every member" 400 "patient is empty"
for list in ',,,' 'Patient/p1,,Patient/p2' 'Patient/p1,' ',Patient/p1'; do
  kickoff small --get --data-urlencode "patient=$list"
  expect_outcome "patient=$list (a reference missing) is refused" 400 "empty reference"
done
http GET "$BASE/Group/small/\$export?_type=Patient%00" -H 'Accept: application/fhir+json' -H 'Prefer: respond-async'
expect_outcome "a NUL in a query value is refused" 400 "NUL"
http GET "$BASE/Group/small/\$export?_type=Pat%FFient" -H 'Accept: application/fhir+json' -H 'Prefer: respond-async'
expect_outcome "a query value that is not UTF-8 is refused" 400 "UTF-8"
http GET "$BASE/Group?name=caf%C3" -H 'Accept: application/fhir+json'
expect_outcome "a search value cut inside a character is refused" 400 "UTF-8"
http GET "$BASE/Group?_cursor=%E2%82" -H 'Accept: application/fhir+json'
expect_outcome "a _cursor that is not UTF-8 is refused" 400 "UTF-8"
http GET "$BASE/Group/ro%FFster" -H 'Accept: application/fhir+json'
expect_outcome "a Group id that is not UTF-8 is refused" 400 "UTF-8"
audit_settle
expect_eq "its audit event is stored all the same, the bytes replaced" \
  "$(psql_q "SELECT count(*) FROM audit_event WHERE endpoint = '/Group/ro?ster' AND status = 400")" 1
http GET "$BASE/Group/a%0A2026-01-01T00:00:00.000Z%20info%20forged" -H 'Accept: application/fhir+json'
expect_eq "a path with a newline is no Group" "$STATUS" 404
expect_true "and forges no log line" eval "! grep -q '^2026-01-01T00:00:00.000Z info forged' '$PA_ROOT/log/provider-access.log'"
http GET "$BASE/bulkstatus/%C0%AF" -H 'Accept: application/json'
expect_outcome "a job id that is not UTF-8 (an overlong /) is refused" 400 "UTF-8"
http GET "$BASE/Group?identifier=a&identifier=b" -H 'Accept: application/fhir+json'
expect_eq "a search parameter given twice must match both (AND)" "$STATUS $(jq_body .total)" "200 0"
http GET "$BASE/Group?identifier=$(printf 'x,%.0s' $(seq 200))" -H 'Accept: application/fhir+json'
expect_outcome "a search with too many values is refused" 400 "too many values"
http GET "$BASE/Group?identifier=,,," -H 'Accept: application/fhir+json'
expect_outcome "a search parameter of commas alone is refused, never read as anything" 400 "has no value"
http GET "$BASE/Group/small" -H $'Accept: text/\xff\xfe'
expect_eq "an Accept header with bytes that are no UTF-8 gets 406" "$STATUS" 406
expect_true "and the OperationOutcome quoting it is valid JSON" valid_json
NOAUTH=1 http POST "$BASE/auth/token" -u $'caf\xc3:secret' -d grant_type=client_credentials -d 'scope=system/*.read'
expect_eq "Basic credentials that are no UTF-8 are refused as a client" "$STATUS" 401
expect_eq "as invalid_client" "$(jq_body .error)" invalid_client
NOAUTH=1 http POST "$BASE/auth/token" --data-binary $'grant_type=client_credentials&client_id=\xff&client_secret=x'
expect_eq "a token form field that is no UTF-8 is refused" "$STATUS" 400

# --- bodies: exactly one JSON value, no NUL, every limit at kick-off
post_export() {  # post_export BODY: POST kick-off of the small roster with a Parameters body
  http POST "$BASE/Group/small/\$export" -H 'Accept: application/fhir+json' -H 'Prefer: respond-async' \
    -H 'Content-Type: application/fhir+json' --data-binary "$1"
}
post_export '{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Patient"}]}'
expect_eq "a Parameters body is accepted" "$STATUS" 202
http DELETE "$JOB_URL"
post_export '{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Patient"}]} {"x":1}'
expect_outcome "trailing text after the JSON body is refused" 400 "text after the value"
post_export '{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Patient"}]}garbage'
expect_outcome "trailing garbage after the JSON body is refused" 400 "text after the value"
post_export '{"resourceType":"Parameters","parameter":[{"name":"_type\u0000x","valueString":"Patient"}]}'
expect_outcome "a parameter name with \\u0000 is refused" 400 "NUL"
post_export '{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Patient\u0000,Claim"}]}'
expect_outcome "a parameter value with \\u0000 is refused" 400 "NUL"
post_export $'{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Pat\xc3ient"}]}'
expect_outcome "a body that is not UTF-8 is refused" 400 "UTF-8"
post_export '{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":""}]}'
expect_outcome "an empty _type in a body is refused" 400 "_type is empty"
half1=$(seq 1 500 | sed 's|^|Patient/p|' | paste -sd,)
half2=$(seq 501 1001 | sed 's|^|Patient/p|' | paste -sd,)
post_export "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"patient\",\"valueString\":\"$half1\"},
  {\"name\":\"patient\",\"valueString\":\"$half2\"}]}"
expect_outcome "more than 1000 patient references are refused at kick-off" 400 "more than 1000 patient references"
filter=$(seq 1 60 | sed 's|^|Observation?code=c|' | paste -sd' ')
args=(); for f in $filter; do args+=(--data-urlencode "_typeFilter=$f"); done
kickoff small --get --data-urlencode '_type=Observation' "${args[@]}"
expect_outcome "filters beyond what one export query takes are refused at kick-off" 400 "too many or too long"
expect_eq "refused with the too-costly code" "$(jq_body '.issue[0].code')" too-costly

# --- member-match: a Patient of any shape is echoed without aborting the responder
ensure_token --now
MM2=$TOKEN
member_bundle() {  # member_bundle JQ_EDIT: one MemberBundle, edited
  jq -c "${1:-.}" <<< '{"name":"MemberBundle","part":[
    {"name":"MemberPatient","resource":{"resourceType":"Patient","id":"mp1","name":[{"family":"DOE","given":["JO"]}],
      "birthDate":"1970-01-01","gender":"female"}},
    {"name":"CoverageToMatch","resource":{"resourceType":"Coverage","id":"c1","status":"active","subscriberId":"S1",
      "beneficiary":{"reference":"Patient/mp1"},"payor":[{"identifier":{"value":"98765"}}]}},
    {"name":"Consent","resource":{"resourceType":"Consent","id":"a1","status":"active","patient":{"reference":"Patient/mp1"},
      "performer":[{"identifier":{"system":"http://hl7.org/fhir/sid/us-npi","value":"0"}}],
      "provision":{"type":"permit","period":{"start":"2020-01-01"}}}}]}'
}
match_body() { jq -cs '{resourceType: "Parameters", parameter: .}' <<< "$1"; }
match_post() {  # match_post BODY [curl args]
  local body=$1; shift
  NOAUTH=1 http POST "$BASE/Group/\$provider-member-match" -H "Authorization: Bearer $MM2" \
    -H 'Accept: application/fhir+json' -H 'Content-Type: application/fhir+json' --data-binary "$body" "$@"
}
for meta in '[1,2,3]' '"text"' '7' 'null' '{"versionId":[1],"security":{"x":1}}'; do
  match_post "$(match_body "$(member_bundle ".part[0].resource.meta = $meta")")"
  expect_eq "a MemberPatient with meta $meta is answered (no abort)" "$STATUS" 200
done
match_post "$(match_body "$(member_bundle '.part[0].resource = [1,2]')")"
expect_eq "a MemberPatient that is an array is answered" "$STATUS" 200
match_post "$(match_body "$(member_bundle '.part = {"a":1}')")"
expect_eq "a MemberBundle whose part is an object is answered" "$STATUS" 200
match_post "$(match_body "$(member_bundle '.part[0].resource.meta = [1,2,3]')")" -H 'Prefer: respond-async'
expect_eq "the same asynchronously is accepted" "$STATUS" 202
mjob=$(header Content-Location)
wait_job_as "$MM2" "$mjob" 30
expect_eq "and its job completes" "$STATUS" 200
expect_true "the request it kept (PHI) is removed once it ended" test ! -e "$PA_ROOT/data/requests/${mjob##*/}.json"
expect_true "no responder or worker died of it" eval "! grep -q 'signal 6\|ended with status 134' '$PA_ROOT/log/httpd-error.log' '$PA_ROOT/log/provider-access.log'"
for edit in '.part[0].resource.birthDate = "1970-13-01"' '.part[0].resource.birthDate = "1970-02-30"' \
            '.part[0].resource.birthDate = 19700101' '.part[2].resource.provision.period.start = "2024-00-01"' \
            '.part[2].resource.provision.period.end = "2024-04-31T00:00:00Z"' '.part[1].resource.period = {"start": "99"}'; do
  match_post "$(match_body "$(member_bundle "$edit")")"
  expect_outcome "a match whose $edit is refused, naming it" 400 "is not a FHIR"
  match_post "$(match_body "$(member_bundle "$edit")")" -H 'Prefer: respond-async'
  expect_outcome "and refused asynchronously too, before any job" 400 "is not a FHIR"
done

# --- Consent and $member-add dates
ops=$(admin client add --name "Trust portal" --admin --secret)
PORTAL=$(token_for "$(sed -n 1p <<< "$ops")" "$(sed -n 2p <<< "$ops")" "system/Consent.write system/Group.read system/Group.write")
consent() {  # consent JQ_EDIT
  local body
  body=$(jq -c "$1" <<< '{"resourceType":"Consent","status":"active","patient":{"reference":"Patient/p1"},
    "provision":{"type":"deny","period":{"start":"2026-01-01"}}}')
  NOAUTH=1 http POST "$BASE/Consent" -H "Authorization: Bearer $PORTAL" -H 'Content-Type: application/fhir+json' \
    --data-binary "$body"
}
for edit in '.provision.period.start = "2026-13-01"' '.provision.period.start = "2026-02-29"' \
            '.provision.period.start = "2026-1"' '.provision.period.end = "2026-06-31"' '.provision.period.end = 5' \
            '.dateTime = "2026-02-30T10:00:00Z"'; do
  consent "$edit"
  element=${edit%% =*}
  expect_outcome "a Consent whose $edit is refused, naming the element" 400 "${element#.}"
done
NOAUTH=1 http POST "$BASE/Consent" -H "Authorization: Bearer $PORTAL" -H 'Content-Type: application/fhir+json' \
  --data-binary '{"resourceType":"Consent","status":"active"}trailing'
expect_outcome "a Consent with trailing text is refused" 400 "text after the value"
member_add() {  # member_add PERIOD_JSON
  NOAUTH=1 http POST "$BASE/Group/small/\$member-add" -H "Authorization: Bearer $PORTAL" \
    -H 'Content-Type: application/fhir+json' --data-binary "{\"resourceType\":\"Parameters\",\"parameter\":[
      {\"name\":\"patientReference\",\"valueReference\":{\"reference\":\"Patient/p2\"}},
      {\"name\":\"attributionPeriod\",\"valuePeriod\":$1}]}"
}
member_add '{"start":"2026-02-30"}'
expect_outcome "\$member-add with attributionPeriod.start on a day that does not exist is refused" 400 "attributionPeriod.start"
member_add '{"start":"2026-01-01","end":"2025-13-01"}'
expect_outcome "\$member-add with a month 13 end is refused" 400 "attributionPeriod.end"

# --- a deleted-resources file names resources of every type its job exported
psql_q "INSERT INTO resource_deleted (type, id, patient_id, deleted_at) VALUES ('Observation', 'gone-obs', 'p1', now())" > /dev/null
kickoff small --get --data-urlencode '_type=Patient,Observation' --data-urlencode "_since=$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%SZ)"
wait_job "$JOB_URL" 60
bundle_url=$(jq_body -r '.deleted[0].url // empty')
expect_match "the delta export lists a deleted-resources file" "$bundle_url" "Bundle-1.ndjson$"
narrow=$(token_for "$CLIENT_ID" "$CLIENT_SECRET" "system/Patient.read system/Group.read")
NOAUTH=1 http GET "$bundle_url" -H "Authorization: Bearer $narrow"
expect_outcome "a token that cannot read Observation cannot download it" 403 "Observation"
http GET "$bundle_url"
expect_eq "the token that can read every type downloads it" "$STATUS" 200
http DELETE "$JOB_URL"
