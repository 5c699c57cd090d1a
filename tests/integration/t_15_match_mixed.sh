# A mixed $provider-member-match of 1,000 members of a synthetic payer, asynchronously:
# every member's bucket equals the one computed from the payer's own tables; then the
# Matched Group is exported and holds exactly the matched members.

q() { psql_q "$1"; }
admin() { "$PA_ROOT/bin/pa-admin" --config "$PA_ROOT/provider-access.conf" "$@"; }
syn=$HTTP_TMP/synth-1000
admin synth --members 1000 --seed 15 --today 2026-11-01 --out "$syn" > /dev/null
admin load "$syn" > /dev/null
expect_eq "a 1,000-member synthetic payer loads" "$?" 0
org=$(q "SELECT org_npi FROM roster WHERE id = 'roster-org-0'")
mx=$(admin client add --name "Mixed match EHR" --npi "$org" --secret 2> /dev/null)
MX_TOKEN=$(token_for "$(sed -n 1p <<< "$mx")" "$(sed -n 2p <<< "$mx")")
today=$(date -u +%Y-%m-%d)
# a third of the members have a treatment relationship with this provider on file
q "INSERT INTO treatment_relationship (patient_id, npi, source)
   SELECT patient_id, '$org', 'payer' FROM member WHERE abs(hashtext(patient_id)) % 3 = 0 ON CONFLICT DO NOTHING"

# Every member as a provider would submit it, numbered; by number modulo 10 a few are spoilt:
# 0 a wrong birth date (no match), 1 an attestation for another provider, 2 an expired
# attestation, 3 a surname nobody has.  The others stand or fall by the payer's data.
q "COPY (SELECT json_build_object('n', row_number() OVER (ORDER BY m.patient_id), 'id', m.patient_id, 'fam', m.family,
     'giv', split_part(m.given, ' ', 1), 'birth', m.birth_date, 'gender', m.gender, 'sub', c.subscriber_id)
   FROM member m JOIN LATERAL (SELECT subscriber_id FROM coverage c WHERE c.patient_id = m.patient_id
     ORDER BY c.status = 'active' DESC LIMIT 1) c ON true ORDER BY m.patient_id LIMIT 1000) TO STDOUT" > "$HTTP_TMP/mixed.ndjson"
expect_eq "the request has 1,000 members" "$(wc -l < "$HTTP_TMP/mixed.ndjson")" 1000
jq -c --arg npi "$org" --arg today "$today" '
  (.n % 10) as $k |
  {name: "MemberBundle", part: [
    {name: "MemberPatient", resource: {resourceType: "Patient", id: "s\(.n)",
      name: [{family: (if $k == 3 then "Zzyxqvist" else .fam end), given: [.giv]}],
      birthDate: (if $k == 0 then "1901-01-01" else .birth end), gender: .gender}},
    {name: "CoverageToMatch", resource: {resourceType: "Coverage", id: "c\(.n)", status: "active", subscriberId: .sub,
      beneficiary: {reference: "Patient/s\(.n)"}, relationship: {coding: [{code: "self"}]},
        payor: [{identifier: {system: "urn:oid:2.16.840.1.113883.6.300", value: "98765"}}]}},
    {name: "Consent", resource: {resourceType: "Consent", id: "a\(.n)", status: "active", patient: {reference: "Patient/s\(.n)"},
        scope: {coding: [{system: "http://terminology.hl7.org/CodeSystem/consentscope", code: "patient-privacy"}]},
        category: [{coding: [{system: "http://terminology.hl7.org/CodeSystem/v3-ActCode", code: "IDSCL"}]}], dateTime: $today,
      performer: [{identifier: {system: "http://hl7.org/fhir/sid/us-npi", value: (if $k == 1 then "1234567893" else $npi end)}}],
      provision: {type: "permit", period: (if $k == 2 then {start: "2020-01-01", end: "2020-12-31"} else {start: $today} end)}}}]}' \
  "$HTTP_TMP/mixed.ndjson" | jq -cs '{resourceType: "Parameters", parameter: .}' > "$HTTP_TMP/mixed.json"

# The expected Matched members, from the tables: not spoilt, covered today, no opt-out in
# force against this provider, and a treatment relationship or a claim at it in 12 months.
jq -r 'select(.n % 10 > 3) | .id' "$HTTP_TMP/mixed.ndjson" | paste -sd, > "$HTTP_TMP/eligible"
q "SELECT m.patient_id FROM member m WHERE m.patient_id = ANY(string_to_array('$(cat "$HTTP_TMP/eligible")', ','))
   AND EXISTS (SELECT 1 FROM coverage c WHERE c.patient_id = m.patient_id AND c.status = 'active'
     AND coalesce(c.period_start, current_date) <= current_date AND coalesce(c.period_end, current_date) >= current_date)
   AND NOT EXISTS (SELECT 1 FROM opt_out o WHERE o.patient_id = m.patient_id AND NOT o.revoked
     AND o.period_start <= current_date AND coalesce(o.period_end, current_date) >= current_date
     AND (o.scope = 'global' OR o.npi = '$org')
     -- the latest record decides: a later permit for everyone, or for this provider, ends it
     AND NOT EXISTS (SELECT 1 FROM opt_in i WHERE i.patient_id = o.patient_id AND i.npi IN ('', '$org')
       AND i.period_start <= current_date AND (i.period_start, i.recorded_at) > (o.period_start, o.recorded_at)))
   AND (EXISTS (SELECT 1 FROM treatment_relationship t WHERE t.patient_id = m.patient_id AND t.npi = '$org' AND NOT t.inactive
          AND coalesce(t.period_start, current_date) <= current_date AND coalesce(t.period_end, current_date) >= current_date)
        OR EXISTS (SELECT 1 FROM resource r WHERE r.patient_id = m.patient_id AND r.type = 'ExplanationOfBenefit'
          AND coalesce(r.clin_start, r.created) >= current_date - interval '12 months'
          AND r.tokens @> '{ref=Organization/org-0}'))
   ORDER BY 1" > "$HTTP_TMP/expected"
eligible=$(tr ',' '\n' < "$HTTP_TMP/eligible" | wc -l)
expected=$(wc -l < "$HTTP_TMP/expected")
expect_true "the mix has members of both kinds among the unspoilt ($expected of $eligible expected to match)" \
  test "$expected" -gt 50 -a "$expected" -lt "$eligible"
kinds=$(q "SELECT count(*) FILTER (WHERE EXISTS (SELECT 1 FROM opt_out o WHERE o.patient_id = m.patient_id AND NOT o.revoked))
   || ',' || count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM coverage c WHERE c.patient_id = m.patient_id AND c.status = 'active'))
   FROM member m WHERE m.patient_id = ANY(string_to_array('$(cat "$HTTP_TMP/eligible")', ','))")
expect_true "... among them members who opted out and members not covered ($kinds)" \
  test "${kinds%,*}" -gt 0 -a "${kinds#*,}" -gt 0

NOAUTH=1 http POST "$BASE/Group/\$provider-member-match" -H "Authorization: Bearer $MX_TOKEN" -H 'Prefer: respond-async' \
  -H 'Accept: application/fhir+json' -H 'Content-Type: application/fhir+json' --data-binary @"$HTTP_TMP/mixed.json"
expect_eq "the 1,000-member match is accepted" "$STATUS" 202
mx_job=$(header Content-Location)
wait_job_as "$MX_TOKEN" "$mx_job" 120
expect_eq "... and completes" "$STATUS" 200
curl -s -H "Authorization: Bearer $MX_TOKEN" "$(jq_body '.output[0].url')" > "$HTTP_TMP/mixed-groups.ndjson"
jq -r 'select(.code.coding[0].code == "match") | .member[].entity.reference | sub("^Patient/"; "")' \
  "$HTTP_TMP/mixed-groups.ndjson" | sort > "$HTTP_TMP/matched"
expect_true "the Matched members are exactly the expected ones" diff "$HTTP_TMP/expected" "$HTTP_TMP/matched"
expect_eq "every other member is NonMatched (opt-outs suppressed)" \
  "$(jq -r 'select(.code.coding[0].code == "nomatch") | .member | length' "$HTTP_TMP/mixed-groups.ndjson")" "$((1000 - expected))"
expect_eq "and no ConsentConstrained Group is disclosed" \
  "$(jq -r '.code.coding[0].code' "$HTTP_TMP/mixed-groups.ndjson" | paste -sd,)" "match,nomatch"
# the asynchronous match records every member as a synchronous one does, under its job
mxid=${mx_job##*/}
expect_eq "each of the 1,000 members has a disclosure record under the job" \
  "$(q "SELECT count(DISTINCT entry) || ' ' || count(*) FROM disclosure WHERE job_id = '$mxid'")" "1000 1000"
q "SELECT patient_id FROM disclosure WHERE job_id = '$mxid' AND outcome = 'matched' ORDER BY 1" > "$HTTP_TMP/matched-records"
expect_true "... the matched ones exactly the Matched members" diff "$HTTP_TMP/expected" "$HTTP_TMP/matched-records"
expect_eq "... the spoilt ones with their reason codes (birth date, other provider, expired, surname)" \
  "$(q "SELECT string_agg(DISTINCT reason, ',') FROM disclosure WHERE job_id = '$mxid' AND substr(submitted, 2)::int % 10 IN (0, 3)")|$(q "SELECT string_agg(DISTINCT reason, ',') FROM disclosure WHERE job_id = '$mxid' AND substr(submitted, 2)::int % 10 = 1")|$(q "SELECT string_agg(DISTINCT reason, ',') FROM disclosure WHERE job_id = '$mxid' AND substr(submitted, 2)::int % 10 = 2")" \
  "no-member|attestation-npi|attestation-expired"
expect_eq "... the opted-out ones told non-matched, recorded as opted-out" \
  "$(q "SELECT count(*) > 0 AND bool_and(outcome = 'non-matched') FROM disclosure WHERE job_id = '$mxid' AND reason = 'opted-out'")" t
audit_settle
expect_match "the job's outcome is audited with its counts, as a synchronous match's is" \
  "$(q "SELECT status || ' ' || members || ' ' || detail FROM audit_event WHERE operation = 'member-match-result' AND job_id = '$mxid'")" \
  "^200 1000 $expected matched, $((1000 - expected)) not matched, 0 consent-constrained: .*no member matches"

# the Matched Group exports the matched members and nobody else
NOAUTH=1 kickoff "${mx_job##*/}" -H "Authorization: Bearer $MX_TOKEN"
expect_eq "the Matched Group of 1,000 can be exported" "$STATUS" 202
mxe_job=$JOB_URL
wait_job_as "$MX_TOKEN" "$mxe_job" 300
expect_eq "... and completes" "$STATUS" 200
for url in $(jq_body '.output[] | select(.type == "Patient") | .url'); do
  curl -s -H "Authorization: Bearer $MX_TOKEN" "$url"
done | jq -r .id | sort > "$HTTP_TMP/exported"
expect_true "its Patient files hold exactly the matched members" diff "$HTTP_TMP/expected" "$HTTP_TMP/exported"
q "SELECT patient_id FROM disclosure WHERE job_id = '${mxe_job##*/}' AND outcome = 'exported' ORDER BY 1" > "$HTTP_TMP/exported-records"
expect_true "... and its disclosure records name exactly them, exported" diff "$HTTP_TMP/expected" "$HTTP_TMP/exported-records"
