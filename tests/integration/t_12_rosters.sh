# pa-admin roster: the payer's rosters by hand.

admin() { "$PA_ROOT/bin/pa-admin" --config "$PA_ROOT/provider-access.conf" "$@"; }
out=$(admin roster create hand-made --name "Made by hand" --npi 1234567893)
expect_eq "roster create succeeds" "$?" 0
admin roster create hand-made --name again --npi 1234567893 > /dev/null 2>&1
expect_eq "creating it twice is refused" "$?" 1
admin roster create bad-npi --name x --npi 1234567890 > /dev/null 2>&1
expect_eq "a roster for an invalid NPI is refused" "$?" 1
expect_eq "roster add adds members (ids or references)" "$(admin roster add hand-made p1 Patient/p2 --from 2025-01-01)" "added 2 members"
out=$(admin roster add hand-made p3 no-such-member --from 2025-01-01 2>&1); rc=$?
expect_eq "roster add refuses a patient the payer does not have" "$rc" 1
expect_eq "... naming it, and adds nothing" "$out" "pa-admin: not members the payer has (nothing was added): no-such-member"
expect_match "roster list shows it with its member count" "$(admin roster list --npi 1234567893 --no-header)" \
  $'hand-made\t1234567893\t\t2\topen\tMade by hand'
expect_eq "roster remove makes a member inactive" "$(admin roster remove hand-made p1)" "removed 1 members"
http GET "$BASE/Group/hand-made"
expect_eq "the provider sees the change" "$(jq_body '[.member[] | .entity.reference + ":" + (.inactive | tostring)] | join(",")')" \
  "Patient/p1:true,Patient/p2:false"
expect_eq "the removed member's period ends today" "$(jq_body '.member[0].period.end')" "$(date -u +%Y-%m-%d)"
admin roster status hand-made final
expect_eq "roster status sets the attribution list status" "$(admin roster status hand-made | cut -f2)" final
http GET "$BASE/Group/hand-made"
expect_eq "the Group carries it" "$(jq_body '.extension[0].valueCode')" final
admin roster status hand-made closed > /dev/null 2>&1
expect_eq "an unknown status is refused" "$?" 2
out=$(admin roster add nosuch p1 2>&1); rc=$?
expect_eq "adding to an unknown roster fails" "$rc" 1
expect_eq "... and says why" "$out" "pa-admin: no roster nosuch"

# ATR $member-add / $member-remove: the payer's admin clients only
ops=$(admin client add --name "Payer roster ops" --admin --secret)
ops_token=$(token_for "$(sed -n 1p <<< "$ops")" "$(sed -n 2p <<< "$ops")" "system/Group.write system/Group.read")
read_only=$(token_for "$(sed -n 1p <<< "$ops")" "$(sed -n 2p <<< "$ops")" "system/Group.read")
admin roster status hand-made open
member_op() {  # member_op OP TOKEN PARAMETERS_JSON_ARRAY
  NOAUTH=1 http POST "$BASE/Group/hand-made/\$$1" -H "Authorization: Bearer $2" \
    -H 'Content-Type: application/fhir+json' --data "{\"resourceType\":\"Parameters\",\"parameter\":$3}"
}
npi_param='{"name":"providerNpi","valueIdentifier":{"system":"http://hl7.org/fhir/sid/us-npi","value":"1234567893"}}'
member_op member-add "$TOKEN" "[{\"name\":\"patientReference\",\"valueReference\":{\"reference\":\"Patient/p5\"}}]"
expect_outcome "a provider's client may not change a roster" 403 "admin clients"
member_op member-add "$read_only" "[{\"name\":\"patientReference\",\"valueReference\":{\"reference\":\"Patient/p5\"}}]"
expect_outcome "an admin token without Group write may not either" 403 "writes Group"
member_op member-add "$ops_token" "[{\"name\":\"patientReference\",\"valueReference\":{\"reference\":\"Patient/p5\"}},$npi_param,
  {\"name\":\"attributionPeriod\",\"valuePeriod\":{\"start\":\"2026-01-01\"}}]"
expect_eq "\$member-add by patientReference and providerNpi" "$STATUS" 200
member_op member-add "$ops_token" '[{"name":"memberId","valueIdentifier":{"value":"M00000003"}}]'
expect_eq "\$member-add by memberId (the MB identifier)" "$STATUS" 200
expect_eq "both are members now" \
  "$(psql_q "SELECT string_agg(patient_id || '@' || period_start, ',' ORDER BY patient_id) FROM roster_member WHERE roster_id = 'hand-made' AND patient_id IN ('p5', 'mem-000003')")" \
  "mem-000003@$(date -u +%Y-%m-%d),p5@2026-01-01"
member_op member-add "$ops_token" "[{\"name\":\"patientReference\",\"valueReference\":{\"reference\":\"Patient/p6\"}},
  {\"name\":\"providerNpi\",\"valueIdentifier\":{\"value\":\"1245319599\"}}]"
expect_outcome "another provider than the roster's is refused" 422 "attributed to NPI 1234567893"
member_op member-add "$ops_token" '[{"name":"memberId","valueIdentifier":{"value":"NOBODY"}}]'
expect_outcome "an unknown memberId is refused" 422 "NOBODY"
member_op member-add "$ops_token" '[{"name":"patientReference","valueReference":{"reference":"Patient/nobody-here"}}]'
expect_outcome "... as is a patient the payer does not have" 422 "Patient/nobody-here is not a member of this payer"
expect_eq "... which is not added" \
  "$(psql_q "SELECT count(*) FROM roster_member WHERE patient_id = 'nobody-here'")" 0
expect_eq "the members added are new (ATR changeType)" \
  "$(psql_q "SELECT string_agg(DISTINCT change_type, ',') FROM roster_member WHERE roster_id = 'hand-made' AND patient_id IN ('p5', 'mem-000003')")" new
cov3=$(psql_q "SELECT coverage_id FROM coverage WHERE patient_id = 'mem-000003' LIMIT 1")
member_op member-remove "$ops_token" "[{\"name\":\"patientReference\",\"valueReference\":{\"reference\":\"Patient/p5\"}},
  {\"name\":\"coverageReference\",\"valueReference\":{\"reference\":\"Coverage/$cov3\"}}]"
expect_outcome "\$member-remove with another member's coverageReference is refused" 422 "Coverage/$cov3 is not Patient/p5's coverage"
expect_eq "... and removes nothing" "$(psql_q "SELECT count(*) FROM roster_member WHERE roster_id = 'hand-made' AND patient_id = 'p5'")" 1
member_op member-remove "$ops_token" "[{\"name\":\"patientReference\",\"valueReference\":{\"reference\":\"Patient/p5\"}}]"
expect_eq "\$member-remove from an open list removes" "$(psql_q "SELECT count(*) FROM roster_member WHERE roster_id = 'hand-made' AND patient_id = 'p5'")" 0
member_op member-remove "$ops_token" "[{\"name\":\"patientReference\",\"valueReference\":{\"reference\":\"Patient/p5\"}}]"
expect_outcome "removing a non-member is 404" 404 "not a member"
admin roster status hand-made draft
member_op member-remove "$ops_token" '[{"name":"memberId","valueIdentifier":{"value":"M00000003"}}]'
expect_eq "\$member-remove from a draft list keeps the member, inactive and dropped" \
  "$(psql_q "SELECT inactive || ' ' || change_type FROM roster_member WHERE roster_id = 'hand-made' AND patient_id = 'mem-000003'")" "true dropped"
admin roster status hand-made final
member_op member-add "$ops_token" "[{\"name\":\"patientReference\",\"valueReference\":{\"reference\":\"Patient/p5\"}}]"
expect_outcome "a final list cannot change" 422 "final"
member_op member-add "$ops_token" '[{"name":"somethingElse","valueString":"x"}]'
expect_outcome "an unknown parameter is refused" 400 "somethingElse"
