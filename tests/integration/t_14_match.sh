# $provider-member-match (synchronous): each bucket and each reason a member lands there,
# on the synthetic payer loaded by t_08; then the Matched Group: read, ownership, export.

q() { psql_q "$1"; }
admin() { "$PA_ROOT/bin/pa-admin" --config "$PA_ROOT/provider-access.conf" "$@"; }
org=$(q "SELECT org_npi FROM roster WHERE id = 'roster-org-0'")
mm=$(admin client add --name "Match EHR" --npi "$org" --secret 2> /dev/null)
MM_TOKEN=$(token_for "$(sed -n 1p <<< "$mm")" "$(sed -n 2p <<< "$mm")")
today=$(date -u +%Y-%m-%d)

# bundle PATIENT_ID [overrides as jq]: a MemberBundle for a payer member, as a provider would send it
bundle() {
  local row
  row=$(q "SELECT json_build_object('fam', m.family, 'giv', split_part(m.given, ' ', 1), 'birth', m.birth_date,
             'gender', m.gender, 'sub', c.subscriber_id) FROM member m JOIN coverage c ON c.patient_id = m.patient_id
           WHERE m.patient_id = '$1'")
  jq -c --arg npi "$org" --arg today "$today" "${2:-.}" <<< "$(jq -c --arg npi "$org" --arg today "$today" '
    {name: "MemberBundle", part: [
      {name: "MemberPatient", resource: {resourceType: "Patient", id: "sub-\(.sub)",
        name: [{family: (.fam | ascii_upcase), given: [.giv]}], birthDate: .birth, gender: .gender}},
      {name: "CoverageToMatch", resource: {resourceType: "Coverage", id: "c1", status: "active", subscriberId: .sub,
        beneficiary: {reference: "Patient/sub-\(.sub)"}, relationship: {coding: [{code: "self"}]},
        payor: [{identifier: {system: "urn:oid:2.16.840.1.113883.6.300", value: "98765"}}]}},
      {name: "Consent", resource: {resourceType: "Consent", id: "a1", status: "active",
        scope: {coding: [{system: "http://terminology.hl7.org/CodeSystem/consentscope", code: "patient-privacy"}]},
        category: [{coding: [{code: "IDSCL"}]}],
        patient: {reference: "Patient/sub-\(.sub)"}, dateTime: $today,
        performer: [{identifier: {system: "http://hl7.org/fhir/sid/us-npi", value: $npi}}],
        provision: {type: "permit", period: {start: $today}}}}]}' <<< "$row")"
}
match() {  # match BUNDLE...: a synchronous $provider-member-match as the match client
  local body
  body=$(jq -cs '{resourceType: "Parameters", parameter: .}' <<< "$(printf '%s\n' "$@")")
  NOAUTH=1 http POST "$BASE/Group/\$provider-member-match" -H "Authorization: Bearer $MM_TOKEN" \
    -H 'Accept: application/fhir+json' -H 'Content-Type: application/fhir+json' --data "$body"
}
bucket_of() {  # bucket_of SUBMITTED_ID: which Group of the last answer holds the submitted Patient
  jq_body --arg id "$1" '[.parameter[] | select(any(.resource.contained[]?; .id == $id)) | .name] | join(",")'
}
# members with a claim at this organization in the last year (the treatment-relationship rule), not opted out, covered
pick() {
  q "SELECT m.patient_id FROM member m JOIN coverage c ON c.patient_id = m.patient_id AND c.status = '$1'
     WHERE ($2) ORDER BY m.patient_id LIMIT 1"
}
CLAIMS="EXISTS (SELECT 1 FROM resource r WHERE r.patient_id = m.patient_id AND r.type = 'ExplanationOfBenefit'
   AND coalesce(r.clin_start, r.created) >= current_date - interval '12 months' AND r.tokens @> '{ref=Organization/org-0}')"
NOT_OPTED="NOT EXISTS (SELECT 1 FROM opt_out o WHERE o.patient_id = m.patient_id)"
good=$(pick active "$CLAIMS AND $NOT_OPTED")
other=$(pick active "NOT $CLAIMS AND $NOT_OPTED AND NOT EXISTS (SELECT 1 FROM treatment_relationship t WHERE t.patient_id = m.patient_id AND t.npi = '$org')")
lapsed=$(pick cancelled "true")
opted=$(q "SELECT patient_id FROM opt_out WHERE scope = 'global' AND NOT revoked ORDER BY patient_id LIMIT 1")
expect_true "the synthetic payer has a member of each kind" test -n "$good" -a -n "$other" -a -n "$lapsed" -a -n "$opted"
sub() { q "SELECT subscriber_id FROM coverage WHERE patient_id = '$1'"; }

match "$(bundle "$good")"
expect_eq "a member with a claim at the provider matches" "$(bucket_of "sub-$(sub "$good")")" MatchedMembers
expect_eq "the answer is the response Parameters" "$(jq_body '.meta.profile[0]')" \
  "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/provider-parameters-multi-member-match-bundle-out"
mg=$(jq_body '.parameter[] | select(.name == "MatchedMembers") | .resource')
expect_eq "the Matched Group names the payer's Patient" "$(jq -r '.member[0].entity.reference' <<< "$mg")" "Patient/$good"
expect_eq "... and points at the submitted demographics" "$(jq -r '.member[0].entity.extension[0].valueReference.reference' <<< "$mg")" "#sub-$(sub "$good")"
expect_eq "... with the PDex profile and code" "$(jq -r '.meta.profile[0] + " " + .code.coding[0].code' <<< "$mg")" \
  "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-provider-member-match match"
mg_id=$(jq -r .id <<< "$mg")

match "$(bundle "$good" '.part[0].resource.birthDate = "1901-01-01"')" "$(bundle "$other")" "$(bundle "$lapsed")" \
  "$(bundle "$opted")" "$(bundle "$good" 'del(.part[2])')" "$(bundle "$good" '.part[2].resource.performer[0].identifier.value = "1245319599"')" \
  "$(bundle "$good" '.part[2].resource.provision.period = {start: "2024-01-01", end: "2024-12-31"}')"
expect_eq "MatchedMembers is always there, even empty" "$(jq_body '[.parameter[] | select(.name == "MatchedMembers") | .resource.member | length] | join(",")')" 0
expect_eq "wrong demographics, no treatment relationship, lapsed coverage, an opt-out (suppressed), a bundle without its attestation, another provider's attestation and an expired one are all NonMatched" \
  "$(jq_body '[.parameter[] | select(.name == "NonMatchedMembers") | .resource.member | length] | join(",")')" 7
expect_eq "an opt-out is not disclosed: no ConsentConstrained Group" "$(jq_body '[.parameter[].name] | join(",")')" \
  "MatchedMembers,NonMatchedMembers"
expect_eq "non-matched members are the submitted ones, contained" \
  "$(jq_body '[.parameter[] | select(.name == "NonMatchedMembers") | .resource.member[].entity.reference | startswith("#")] | all')" true
audit_settle
reasons=$(q "SELECT detail FROM audit_event WHERE operation = 'member-match' ORDER BY id DESC LIMIT 1")
for why in "no member matches" "no treatment relationship" "no active coverage today" "opted out" \
           "needs MemberPatient, CoverageToMatch and Consent" "does not name the requesting provider"; do
  expect_true "the audit keeps the reason: $why" grep -q "$why" <<< "$reasons"
done
# each member's disclosure record: what the caller was told and the reason code
rid=$(header X-Request-Id)
expect_eq "every member submitted has a disclosure record, in order, with its reason code" \
  "$(q "SELECT string_agg(entry || ' ' || outcome || ' ' || reason, ',' ORDER BY entry) FROM disclosure WHERE request_id = '$rid'")" \
  "1 non-matched no-member,2 non-matched no-treatment-relationship,3 non-matched not-covered,4 non-matched opted-out,5 non-matched bundle-incomplete,6 non-matched attestation-npi,7 non-matched attestation-expired"
expect_eq "... naming the member when one was identified, and what the provider sent" \
  "$(q "SELECT string_agg(coalesce(patient_id, '-') || ' ' || submitted, ',' ORDER BY entry) FROM disclosure WHERE request_id = '$rid' AND entry IN (1, 2, 3, 4)")" \
  "- sub-$(sub "$good"),$other sub-$(sub "$other"),$lapsed sub-$(sub "$lapsed"),$opted sub-$(sub "$opted")"
expect_eq "... with the client, its NPI and the Matched Group, and no job (synchronous)" \
  "$(q "SELECT DISTINCT client_id || ' ' || npi || ' ' || (group_id IS NOT NULL) || ' ' || (job_id IS NULL) FROM disclosure WHERE request_id = '$rid'")" \
  "$(sed -n 1p <<< "$mm") $org true true"
match "$(bundle "$good")"
expect_eq "a matched member's record names it, matched for its treatment relationship" \
  "$(q "SELECT patient_id || ' ' || outcome || ' ' || reason FROM disclosure WHERE request_id = '$(header X-Request-Id)'")" \
  "$good matched treatment-relationship"

# two members with the same demographics and coverage identifier: no match
q "INSERT INTO member SELECT 'twin-1', family, given, birth_date, gender, member_id FROM member WHERE patient_id = '$good'" > /dev/null
q "INSERT INTO coverage (coverage_id, patient_id, subscriber_id, status) VALUES ('cov-twin', 'twin-1', '$(sub "$good")', 'active')" > /dev/null
match "$(bundle "$good")"
expect_eq "two candidates are no match" "$(bucket_of "sub-$(sub "$good")")" NonMatchedMembers
q "DELETE FROM coverage WHERE coverage_id = 'cov-twin'; DELETE FROM member WHERE patient_id = 'twin-1'" > /dev/null

# request-level problems
NOAUTH=1 http POST "$BASE/Group/\$provider-member-match" -H "Authorization: Bearer $MM_TOKEN" \
  -H 'Content-Type: application/fhir+json' --data '{"resourceType":"Patient"}'
expect_outcome "a body that is not Parameters is 400" 400 "Parameters"
NOAUTH=1 http POST "$BASE/Group/\$provider-member-match" -H "Authorization: Bearer $MM_TOKEN" \
  -H 'Content-Type: application/fhir+json' --data '{"resourceType":"Parameters","parameter":[]}'
expect_outcome "a request without MemberBundle is 400" 400 "no MemberBundle"
eleven=$(for i in $(seq 11); do bundle "$good"; done)
match $eleven
expect_outcome "more members than are answered at once asks for respond-async" 400 "respond-async"

# asynchronously: 202, poll, a manifest of Group and Parameters NDJSON (PDex pdex-288a/b)
body=$(jq -cs '{resourceType: "Parameters", parameter: .}' <<< "$(printf '%s\n' "$(bundle "$good")" "$(bundle "$other")" "$(bundle "$lapsed")")")
NOAUTH=1 http POST "$BASE/Group/\$provider-member-match" -H "Authorization: Bearer $MM_TOKEN" -H 'Prefer: respond-async' \
  -H 'Accept: application/fhir+json' -H 'Content-Type: application/fhir+json' --data "$body"
expect_eq "with Prefer: respond-async the match answers 202" "$STATUS" 202
am_job=$(header Content-Location)
wait_job_as "$MM_TOKEN" "$am_job"
expect_eq "the asynchronous match completes" "$STATUS" 200
expect_eq "its manifest lists a Group file and a Parameters file" "$(jq_body '[.output[].type] | join(",")')" "Group,Parameters"
groups=$(curl -s -H "Authorization: Bearer $MM_TOKEN" "$(jq_body '.output[0].url')")
expect_eq "the Group file holds the Matched and NonMatched Groups" "$(jq -r '.code.coding[0].code' <<< "$groups" | tr '\n' ,)" "match,nomatch,"
expect_eq "... with the members where they belong" "$(jq -r '.member | length' <<< "$groups" | tr '\n' ,)" "1,2,"
params_line=$(curl -s -H "Authorization: Bearer $MM_TOKEN" "$(jq_body '.output[1].url')")
expect_eq "the Parameters file wraps the same Groups" "$(jq -r '[.parameter[].resource.id] | join(",")' <<< "$params_line")" \
  "$(jq -r '.id' <<< "$groups" | paste -sd,)"
expect_eq "the Matched Group is stored under the job's id" "$(jq -r 'select(.code.coding[0].code == "match") | .id' <<< "$groups")" "${am_job##*/}"
NOAUTH=1 http GET "$BASE/Group/${am_job##*/}" -H "Authorization: Bearer $MM_TOKEN"
expect_eq "... and can be read" "$(jq_body '.member[0].entity.reference')" "Patient/$good"
NOAUTH=1 http DELETE "$am_job" -H "Authorization: Bearer $MM_TOKEN"

NOAUTH=1 http GET "$BASE/Group?code=match" -H "Authorization: Bearer $MM_TOKEN"
expect_true "a search with code=match finds the client's Matched Groups" eval "jq -e --arg id '$mg_id' 'any(.entry[]; .resource.id == \$id)' <<< \"\$BODY\" > /dev/null"
http GET "$BASE/Group?code=match"
expect_eq "another client finds none of them" "$(jq_body .total)" 0

# the Matched Group: its client's alone, and exportable
NOAUTH=1 http GET "$BASE/Group/$mg_id" -H "Authorization: Bearer $MM_TOKEN"
expect_eq "the client reads its Matched Group" "$(jq_body '.id + " " + .code.coding[0].code')" "$mg_id match"
http GET "$BASE/Group/$mg_id"
expect_outcome "another client gets 404" 404 "no Group"
NOAUTH=1 kickoff "$mg_id" -H "Authorization: Bearer $MM_TOKEN"
expect_eq "the Matched Group can be exported" "$STATUS" 202
mg_job=$JOB_URL
wait_job_as "$MM_TOKEN" "$mg_job"
pat_url=$(jq_body '.output[] | select(.type == "Patient") | .url')
expect_eq "its export holds the matched member" "$(curl -s -H "Authorization: Bearer $MM_TOKEN" "$pat_url" | jq -r .id)" "$good"
expect_true "and the member's claims" test "$(jq_body '[.output[] | select(.type == "ExplanationOfBenefit") | .count] | add')" -gt 0
NOAUTH=1 http DELETE "$mg_job" -H "Authorization: Bearer $MM_TOKEN"
q "UPDATE matched_group SET expires_at = now() - interval '1 second' WHERE id = '$mg_id'" > /dev/null
NOAUTH=1 http GET "$BASE/Group/$mg_id" -H "Authorization: Bearer $MM_TOKEN"
expect_outcome "an expired Matched Group is 410" 410 "expired"
NOAUTH=1 kickoff "$mg_id" -H "Authorization: Bearer $MM_TOKEN"
expect_outcome "and can no longer be exported" 404 "no Group"

# suppress_consent_constrained = 0: an opted-out member is reported as ConsentConstrained
conf=$PA_ROOT/provider-access.conf
cp -p "$conf" "$HTTP_TMP/conf.keep"
echo "suppress_consent_constrained = 0" >> "$conf"
apache_graceful
MM_TOKEN=$(token_for "$(sed -n 1p <<< "$mm")" "$(sed -n 2p <<< "$mm")")
match "$(bundle "$opted")" "$(bundle "$good")"
expect_eq "unsuppressed, the opted-out member has its own Group" "$(jq_body '[.parameter[].name] | join(",")')" \
  "MatchedMembers,ConsentConstrainedMembers"
cc=$(jq_body '.parameter[] | select(.name == "ConsentConstrainedMembers") | .resource')
expect_eq "... a PDex MemberOptOut Group naming the payer's Patient" \
  "$(jq -r '.meta.profile[0] + " " + .code.coding[0].code + " " + .member[0].entity.reference' <<< "$cc")" \
  "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-member-opt-out consentconstraint Patient/$opted"
expect_eq "no member is in two buckets" "$(jq_body '[.parameter[].resource.member[].entity.reference] | length == (unique | length)')" true
opted_since=$(q "SELECT period_start FROM opt_out WHERE patient_id = '$opted' AND scope = 'global' AND NOT revoked ORDER BY period_start DESC LIMIT 1")
expect_eq "... whose characteristic says the opt-out is global, in force since it started" \
  "$(jq -r '[.characteristic[] | .valueCodeableConcept.coding[0].code + " " + .period.start] | join(",")' <<< "$cc")" \
  "global $opted_since"
expect_eq "... as does the member's own period" "$(jq -r '.member[0].period.start' <<< "$cc")" "$opted_since"
cp -p "$HTTP_TMP/conf.keep" "$conf"
apache_graceful

# the tester's script for the whole v2 flow
jq -cs '{resourceType: "Parameters", parameter: .}' <<< "$(printf '%s\n' "$(bundle "$good")" "$(bundle "$other")")" > "$HTTP_TMP/v2.json"
out=$(BASE=$BASE OUT=$HTTP_TMP/v2 "$REPO/examples/v2-flow" "$(sed -n 1p <<< "$mm")" "$(sed -n 2p <<< "$mm")" "$HTTP_TMP/v2.json" 2> "$HTTP_TMP/v2.log")
expect_eq "examples/v2-flow runs the whole flow" "$?" 0
expect_eq "and exports the matched member" "$(jq -r .id "$HTTP_TMP/v2/Patient-1.ndjson")" "$good"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$HTTP_TMP/v2.pem" 2> /dev/null
"$REPO/examples/get-token" jwks "$HTTP_TMP/v2.pem" v2k > "$HTTP_TMP/v2.jwks"
v2j=$(admin client add --name "v2 JWT EHR" --npi "$org" --jwks "$HTTP_TMP/v2.jwks" 2> /dev/null | head -n 1)
out=$(BASE=$BASE OUT=$HTTP_TMP/v2j "$REPO/examples/v2-flow" --jwt "$v2j" "$HTTP_TMP/v2.pem" v2k "$HTTP_TMP/v2.json" 2> "$HTTP_TMP/v2j.log")
expect_eq "examples/v2-flow --jwt runs it with a signed JWT assertion" "$?" 0
expect_eq "... and exports the matched member" "$(jq -r .id "$HTTP_TMP/v2j/Patient-1.ndjson")" "$good"
expect_true "examples/v2-request.json (for the quickstart demo) is a Parameters of MemberBundles" \
  jq -e '.resourceType == "Parameters" and ([.parameter[].name] | unique == ["MemberBundle"])' "$REPO/examples/v2-request.json"

# opt-outs and treatment relationships by hand take effect at the next match
expect_eq "pa-admin optout add" "$(admin optout add "Patient/$good" --npi "$org" --reason provider-relationship)" "opted out"
expect_match "pa-admin optout list shows it" "$(admin optout list --no-header)" "$good	provider-specific	$org	$today\\.\\.	active	provider-relationship"
match "$(bundle "$good")"
expect_eq "an opt-out from this provider makes the member NonMatched" "$(bucket_of "sub-$(sub "$good")")" NonMatchedMembers
expect_eq "pa-admin optout revoke" "$(admin optout revoke "$good" --npi "$org")" "revoked 1"
match "$(bundle "$good")"
expect_eq "after the revocation the member matches again" "$(bucket_of "sub-$(sub "$good")")" MatchedMembers
expect_eq "pa-admin trl add" "$(admin trl add "$other" "$org" --from 2025-01-01)" added
expect_match "pa-admin trl list --npi shows it" "$(admin trl list --npi "$org" --no-header)" "$other	$org	2025-01-01\\.\\.	payer	active"
match "$(bundle "$other")"
expect_eq "with a treatment relationship the member matches" "$(bucket_of "sub-$(sub "$other")")" MatchedMembers
expect_eq "pa-admin trl remove" "$(admin trl remove "$other" "$org")" "removed 1"
match "$(bundle "$other")"
expect_eq "without it, no longer" "$(bucket_of "sub-$(sub "$other")")" NonMatchedMembers
admin optout add "$good" --global --npi "$org" > /dev/null 2>&1
expect_eq "an opt-out is global or names one NPI, not both" "$?" 2
admin optout add no-such-member --global > /dev/null 2>&1
expect_eq "pa-admin refuses an opt-out of someone who is no member" "$?" 1

# POST /fhir/Consent: the member-facing system records an opt-out, or its revocation
ops=$(admin client add --name "Member portal" --admin --secret)
portal=$(token_for "$(sed -n 1p <<< "$ops")" "$(sed -n 2p <<< "$ops")" "system/Consent.write")
consent() {  # [PATIENT=id] [START=date] consent TOKEN TYPE [RECIPIENT_NPI]
  local actor=''
  [ -n "${3:-}" ] && actor=",\"actor\":[{\"role\":{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/v3-ParticipationType\",\"code\":\"IRCP\"}]},\"reference\":{\"identifier\":{\"system\":\"http://hl7.org/fhir/sid/us-npi\",\"value\":\"$3\"}}}]"
  NOAUTH=1 http POST "$BASE/Consent" -H "Authorization: Bearer $1" -H 'Content-Type: application/fhir+json' \
    --data "{\"resourceType\":\"Consent\",\"status\":\"active\",\"patient\":{\"reference\":\"Patient/${PATIENT:-$good}\"},
      \"category\":[{\"coding\":[{\"system\":\"http://hl7.org/fhir/us/davinci-pdex/CodeSystem/pdex-consent-api-purpose\",\"code\":\"provider-access\"}]}],
      \"provision\":{\"type\":\"$2\",\"period\":{\"start\":\"${START:-$today}\"}$actor}}"
}
consent "$MM_TOKEN" deny
expect_outcome "a provider's client cannot record an opt-out" 403 "Consent"
consent "$portal" deny "$org"
expect_eq "a deny Consent naming a provider records a provider-specific opt-out" \
  "$(psql_q "SELECT scope || ' ' || npi FROM opt_out WHERE patient_id = '$good' AND NOT revoked")" "provider-specific $org"
match "$(bundle "$good")"
expect_eq "... which the next match honours" "$(bucket_of "sub-$(sub "$good")")" NonMatchedMembers
consent "$portal" permit "$org"
expect_outcome "a permit Consent revokes it" 200 "1 opt-outs"
match "$(bundle "$good")"
expect_eq "... and the member matches again" "$(bucket_of "sub-$(sub "$good")")" MatchedMembers
PATIENT=no-such-member consent "$portal" deny
expect_outcome "a Consent of someone who is no member answers 422" 422 "not a member"
consent "$portal" maybe
expect_outcome "provision.type must be deny or permit" 400 "deny"

# PDex's reading of an opt-out: provision.actor role performer (the source slice) names the
# plan that discloses; recipients (role IRCP) name the providers; none named: every provider.
# The IG's own examples, as they are but for the member, are accepted and take effect.
ig_consent() {  # ig_consent FILE: one of the IG's examples for $good, starting today
  NOAUTH=1 http POST "$BASE/Consent" -H "Authorization: Bearer $portal" -H 'Content-Type: application/fhir+json' \
    --data "$(jq -c --arg p "Patient/$good" --arg d "$today" '.patient.reference = $p | .performer[0].reference = $p
      | .provision.period.start = $d' "$HERE/ig/$1")"
}
ig_consent Consent-no-consent-1.json
expect_outcome "the IG's opt-out example (its source NPI fails its check digit) is accepted" 200 "from every provider"
expect_eq "as an opt-out from every provider, not from the plan it names" \
  "$(psql_q "SELECT scope || '/' || npi FROM opt_out WHERE patient_id = '$good' ORDER BY recorded_at DESC LIMIT 1")" "global/"
match "$(bundle "$good")"
expect_eq "... which the next match honours" "$(bucket_of "sub-$(sub "$good")")" NonMatchedMembers
kickoff_as_mm() { NOAUTH=1 kickoff "$1" -H "Authorization: Bearer $MM_TOKEN"; }
ig_consent Consent-consent-permit-1.json
expect_outcome "the IG's permit example revokes it" 200 "revoked"
match "$(bundle "$good")"
expect_eq "... and the member matches again" "$(bucket_of "sub-$(sub "$good")")" MatchedMembers
other_npi=1245319599
consent "$portal" deny "$other_npi"
expect_outcome "a deny naming a recipient (IRCP) is against that provider" 200 "from the providers named"
match "$(bundle "$good")"
expect_eq "... so another provider still matches the member" "$(bucket_of "sub-$(sub "$good")")" MatchedMembers
consent "$portal" deny
match "$(bundle "$good")"
expect_eq "a deny naming no recipient withholds the member from every provider" "$(bucket_of "sub-$(sub "$good")")" NonMatchedMembers
consent "$portal" permit "$org"
match "$(bundle "$good")"
expect_eq "a later permit for one provider lets that provider match (the latest record decides)" \
  "$(bucket_of "sub-$(sub "$good")")" MatchedMembers
START=2020-01-01 consent "$portal" deny "$org"
match "$(bundle "$good")"
expect_eq "an opt-out whose period starts before that permit does not override it" \
  "$(bucket_of "sub-$(sub "$good")")" MatchedMembers
consent "$portal" deny "$org"
match "$(bundle "$good")"
expect_eq "one that starts as late, recorded after it, does" "$(bucket_of "sub-$(sub "$good")")" NonMatchedMembers
consent "$portal" permit
match "$(bundle "$good")"
expect_eq "a permit naming no recipient revokes every opt-out before it" "$(bucket_of "sub-$(sub "$good")")" MatchedMembers
NOAUTH=1 http POST "$BASE/Consent" -H "Authorization: Bearer $portal" -H 'Content-Type: application/fhir+json' \
  --data "$(jq -c --arg p "Patient/$good" '.patient.reference = $p | .provision.actor += [{role: {coding: [{system:
    "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", code: "IRCP"}]}, reference: {display: "Dr. Who"}}]' \
    "$HERE/ig/Consent-no-consent-1.json")"
expect_outcome "a recipient without an NPI is refused: whom it covers cannot be told" 422 "without an NPI"
consent "$portal" deny 1234567890
expect_outcome "a recipient NPI that fails its check digit is refused" 400 "check digit"
reader=$(token_for "$(sed -n 1p <<< "$ops")" "$(sed -n 2p <<< "$ops")" "system/Consent.read system/Consent.write")
NOAUTH=1 http GET "$BASE/Consent?patient=Patient/$good&category=provider-access" -H "Authorization: Bearer $reader"
expect_eq "GET Consent?patient= lists the member's records" "$(jq_body -r '.resourceType + " " + .type')" "Bundle searchset"
expect_eq "every one of them, as recorded" "$(jq_body .total)" \
  "$(psql_q "SELECT (SELECT count(*) FROM opt_out WHERE patient_id = '$good') + (SELECT count(*) FROM opt_in WHERE patient_id = '$good')")"
expect_eq "newest first, as pdex-provider-consent" \
  "$(jq_body -r '.entry[0].resource | .provision.type + " " + .meta.profile[0]')" \
  "permit http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-provider-consent"
expect_eq "a provider-specific one names its recipient" \
  "$(jq_body -r '[.entry[].resource.provision | select(.type == "deny") | .actor[0]?.reference.identifier.value // "all"] | unique | join(",")')" \
  "$(psql_q "SELECT string_agg(DISTINCT CASE WHEN npi = '' THEN 'all' ELSE npi END, ',' ORDER BY CASE WHEN npi = '' THEN 'all' ELSE npi END) FROM opt_out WHERE patient_id = '$good'")"
NOAUTH=1 http GET "$BASE/Consent?patient=Patient/$good" -H "Authorization: Bearer $MM_TOKEN"
expect_outcome "a provider's client cannot read them" 403 "Consent"
NOAUTH=1 http GET "$BASE/Consent" -H "Authorization: Bearer $reader"
expect_outcome "the member must be named" 400 "patient="
# a NonMatched Patient submitted without an id is still listed, by its place in the request
match "$(bundle "$good" '.part[0].resource |= del(.id)')" "$(bundle "$other")"
expect_eq "a NonMatched Patient without an id is echoed as submitted-1" \
  "$(jq_body -r '.parameter[] | select(.name == "NonMatchedMembers") | .resource | [.contained[].id, .member[].entity.reference] | join(",")' | tr ',' '\n' | grep -c '^#\?submitted-1$')" 2
# a stored Matched Group no longer lists a member who opted out after the match
match "$(bundle "$good")"
later_group=$(jq_body -r '.parameter[] | select(.name == "MatchedMembers") | .resource.id')
NOAUTH=1 http GET "$BASE/Group/$later_group" -H "Authorization: Bearer $MM_TOKEN"
expect_eq "the Matched Group lists the member" "$(jq_body -r '[.member[].entity.reference] | join(",")')" "Patient/$good"
consent "$portal" deny
NOAUTH=1 http GET "$BASE/Group/$later_group" -H "Authorization: Bearer $MM_TOKEN"
expect_eq "once the member opts out, the stored Group no longer lists it" \
  "$(jq_body -r '(.member | length | tostring) + " " + (.quantity | tostring) + " " + (.contained | length | tostring)')" "0 0 0"
consent "$portal" permit
NOAUTH=1 http GET "$BASE/Group/$later_group" -H "Authorization: Bearer $MM_TOKEN"
expect_eq "and lists it again once the opt-out is revoked" "$(jq_body -r '[.member[].entity.reference] | join(",")')" "Patient/$good"

# the attestation is checked against the Provider Treatment Attestation profile, the
# coverage against HRex, and the payor against this plan: each failure NonMatched, for its reason
for edit in '.part[2].resource |= del(.scope)' '.part[2].resource.scope.coding[0].code = "research"' \
            '.part[2].resource |= del(.category)' '.part[2].resource |= del(.dateTime)' \
            '.part[2].resource.status = "entered-in-error"' \
            '.part[2].resource.performer[0].identifier.system = "urn:oid:2.16.840.1.113883.4.6.x"' \
            '.part[1].resource |= del(.relationship)' \
            '.part[1].resource.payor = [{identifier: {system: "urn:oid:2.16.840.1.113883.6.300", value: "11111"}}]' \
            '.part[1].resource.payor = [{display: "some plan"}]'; do
  match "$(bundle "$good" "$edit")"
  expect_eq "an attestation or coverage whose $edit is NonMatched" "$(bucket_of "sub-$(sub "$good")")" NonMatchedMembers
done
audit_settle
reasons=$(q "SELECT string_agg(detail, ' ') FROM (SELECT detail FROM audit_event WHERE operation = 'member-match' ORDER BY id DESC LIMIT 9) d")
for why in "scope is not consentscope#patient-privacy" "has no category" "has no dateTime" "is not active" \
           "does not name the requesting provider's NPI" "needs a relationship" "payor does not name this plan"; do
  expect_true "the audit counts the reason: $why" grep -qF "$why" <<< "$reasons"
done
# the IG's own attestation example, for this member and this provider, is verified
ig_att=$(jq -c --arg p "Patient/sub-$(sub "$good")" --arg npi "$org" --arg d "$today" '.patient.reference = $p
  | .performer[0].identifier.value = $npi | .provision.period.start = $d | .id = "att"' "$HERE/ig/Consent-provider-treatment-attestation-1.json")
match "$(bundle "$good" ".part[2].resource = $ig_att")"
expect_eq "the IG's attestation example is verified" "$(bucket_of "sub-$(sub "$good")")" MatchedMembers

# treatment_relationship_policy = attestation: a verified attestation of an in-network
# provider stands for the relationship, which is recorded (source attestation)
match "$(bundle "$other")"
expect_eq "by default (list), an attestation alone does not match a member with no relationship" \
  "$(bucket_of "sub-$(sub "$other")")" NonMatchedMembers
cp -p "$conf" "$HTTP_TMP/conf.keep"
echo "treatment_relationship_policy = attestation" >> "$conf"
apache_graceful
MM_TOKEN=$(token_for "$(sed -n 1p <<< "$mm")" "$(sed -n 2p <<< "$mm")")
match "$(bundle "$other" ".part[2].resource.provision.period = {start: \"$today\", end: \"2099-12-31\"}")"
expect_eq "with treatment_relationship_policy = attestation it matches" "$(bucket_of "sub-$(sub "$other")")" MatchedMembers
expect_match "and the relationship is on file, from the attestation, for its period" \
  "$(admin trl list --npi "$org" --no-header | grep "^$other	")" "$other	$org	$today\\.\\.2099-12-31	attestation	active"
audit_settle
expect_match "the match's audit event says so" \
  "$(q "SELECT detail FROM audit_event WHERE operation = 'member-match' ORDER BY id DESC LIMIT 1")" "a treatment relationship recorded"
cp -p "$HTTP_TMP/conf.keep" "$conf"
apache_graceful
MM_TOKEN=$(token_for "$(sed -n 1p <<< "$mm")" "$(sed -n 2p <<< "$mm")")
q "DELETE FROM treatment_relationship WHERE patient_id = '$other' AND source = 'attestation'" > /dev/null
echo "treatment_relationship_policy = sometimes" >> "$HTTP_TMP/bad-policy.conf"
cat "$conf" "$HTTP_TMP/bad-policy.conf" > "$HTTP_TMP/policy.conf"
expect_match "any other policy is a configuration error naming the key" \
  "$("$PA_ROOT/bin/pa-admin" --config "$HTTP_TMP/policy.conf" check 2>&1)" "treatment_relationship_policy must be list or attestation"

# the enumeration guard: a scripted client guessing one person's subscriber id
# (the runner too: an asynchronous match is charged by it)
PA_EXTRA_CONFIG="$PA_EXTRA_CONFIG
match_nonmatch_budget = 300
match_repeat_weight = 100" "$REPO/scripts/pa-stack" restart-runner > /dev/null 2>&1
apache_graceful
gs=$(admin client add --name "Guesser EHR" --npi "$org" --secret 2> /dev/null)
gs_id=$(sed -n 1p <<< "$gs")
GS=$(token_for "$gs_id" "$(sed -n 2p <<< "$gs")")
params() { jq -cs '{resourceType: "Parameters", parameter: .}' <<< "$1"; }
guess() {  # guess BODY [curl args]: a match as the guessing client
  local body=$1; shift
  NOAUTH=1 http POST "$BASE/Group/\$provider-member-match" -H "Authorization: Bearer $GS" \
    -H 'Accept: application/fhir+json' -H 'Content-Type: application/fhir+json' --data "$body" "$@"
}
strangers=$(for n in $(seq 1 10); do bundle "$good" ".part[0].resource.name[0].family = \"STRANGER$n\" | .part[1].resource.subscriberId = \"X$n\""; done)
guess "$(jq -cs '{resourceType: "Parameters", parameter: .}' <<< "$strangers")"
expect_eq "ten unknown people (a provider's usual misses) cost little: answered" "$STATUS" 200
throttled_at=0
for r in $(seq 1 30); do
  tries=$(for k in $(seq 1 10); do bundle "$good" ".part[1].resource.subscriberId = \"GUESS-$r-$k\""; done)
  guess "$(jq -cs '{resourceType: "Parameters", parameter: .}' <<< "$tries")"
  if [ "$STATUS" = 429 ]; then throttled_at=$r; break; fi
done
expect_match "guessing ids for one person is stopped within a few requests (at request $throttled_at)" "$throttled_at" '^[1-3]$'
expect_outcome "with 429 and an OperationOutcome" 429 "more members that match no member"
expect_match "and Retry-After" "$(header Retry-After)" '^[1-9][0-9]*$'
guess "$(params "$(bundle "$good")")"
expect_eq "the real id is refused too, not matched" "$STATUS" 429
guess "$(params "$(bundle "$good")")" -H 'Prefer: respond-async'
expect_eq "asynchronously as well" "$STATUS" 429
expect_true "a security event is in the log" grep -q "security: client $gs_id" "$PA_ROOT/log/provider-access.log"
audit_settle
expect_match "and in the audit" "$(q "SELECT detail FROM audit_event WHERE client_id = '$gs_id' ORDER BY id DESC LIMIT 1")" "^security: "
expect_match "pa-admin client list flags the client" "$(admin client list --no-header | grep "^$gs_id")" "member id guessing"
expect_eq "pa-admin client unflag clears it" "$(admin client unflag "$gs_id"; echo $?)" 0
expect_eq "... the flag" "$(admin client list --no-header | grep "^$gs_id" | awk -F'\t' '{print $NF}')" ""
guess "$(params "$(bundle "$good")")"
expect_eq "... and the spent budget: the client is answered again" "$(bucket_of "sub-$(sub "$good")")" MatchedMembers
# an asynchronous match is charged as a synchronous one
tries=$(for k in $(seq 1 5); do bundle "$good" ".part[1].resource.subscriberId = \"ASYNC-$k\""; done)
guess "$(jq -cs '{resourceType: "Parameters", parameter: .}' <<< "$tries")" -H 'Prefer: respond-async'
gjob=$(header Content-Location)
wait_job_as "$GS" "$gjob" 30
guess "$(params "$(bundle "$good")")"
expect_eq "an asynchronous match's misses spend the budget too" "$STATUS" 429
admin client unflag "$gs_id"
"$REPO/scripts/pa-stack" restart-runner > /dev/null 2>&1
apache_graceful
MM_TOKEN=$(token_for "$(sed -n 1p <<< "$mm")" "$(sed -n 2p <<< "$mm")")

# a former member: coverage still marked active, but its period ended
keep=$(psql_q "SELECT coalesce(period_end::text, '') FROM coverage WHERE patient_id = '$good' LIMIT 1")
psql_q "UPDATE coverage SET period_end = '2025-06-30' WHERE patient_id = '$good'" > /dev/null
match "$(bundle "$good")"
expect_eq "a former member (coverage marked active, its period over) is NonMatched" \
  "$(bucket_of "sub-$(sub "$good")")" NonMatchedMembers
audit_settle
expect_match "for a reason of its own" \
  "$(psql_q "SELECT detail FROM audit_event WHERE operation = 'member-match' ORDER BY id DESC LIMIT 1")" \
  "no active coverage today"
psql_q "UPDATE coverage SET period_end = nullif('$keep', '')::date WHERE patient_id = '$good'" > /dev/null
match "$(bundle "$good")"
expect_eq "covered again, it matches" "$(bucket_of "sub-$(sub "$good")")" MatchedMembers
NOAUTH=1 http GET "$BASE/metadata"
expect_eq "the CapabilityStatement declares Consent" \
  "$(jq_body -r '[.rest[0].resource[] | select(.type == "Consent") | .interaction[].code] | join(",")')" "create,search-type"
