# Group search and read: only the rosters attributed to the caller, as PDex
# provider Groups, without opted-out members.

http GET "$BASE/Group"
expect_eq "a search answers a searchset Bundle" "$(jq_body '.resourceType + "/" + .type')" "Bundle/searchset"
expect_eq "it finds only the caller's rosters" "$(jq_body '[.entry[].resource.id] | join(",")')" "big,empty,small"
expect_eq "with their total" "$(jq_body .total)" 3
expect_eq "search results leave members out, and say so" "$(jq_body '[.entry[].resource | (has("member")|not) and .meta.tag[0].code == "SUBSETTED"] | all')" true
expect_eq "entries have their fullUrl" "$(jq_body '.entry[0].fullUrl')" "$BASE/Group/big"
http GET "$BASE/Group?_id=small,elsewhere"
expect_eq "_id finds only what the caller may see" "$(jq_body '[.entry[].resource.id] | join(",")')" small
http GET "$BASE/Group?name=THREE"
expect_eq "name matches the start, whatever the case" "$(jq_body '[.entry[].resource.id] | join(",")')" small
http GET "$BASE/Group?characteristic-value=http://hl7.org/fhir/sid/us-npi%7C1245319599"
expect_eq "characteristic-value of another provider finds nothing" "$(jq_body .total)" 0
http GET "$BASE/Group?characteristic-value=1234567893&code=pdexprovidergroup"
expect_eq "characteristic-value and code find the rosters" "$(jq_body .total)" 3
http GET "$BASE/Group?_summary=count"
expect_eq "_summary=count gives the total alone" "$(jq_body '"\(.total) \(.entry | length)"')" "3 0"
http GET "$BASE/Group?_count=2"
expect_eq "_count pages" "$(jq_body '[.entry[].resource.id] | join(",")')" "big,empty"
next=$(jq_body '.link[] | select(.relation == "next") | .url')
expect_match "with a next link" "$next" "^$BASE/Group\\?_count=2&_cursor=empty$"
http GET "$next"
expect_eq "the next page goes on" "$(jq_body '[.entry[].resource.id] | join(",")')" small
expect_eq "the last page has no next link" "$(jq_body '[.link[].relation] | join(",")')" self
http GET "$BASE/Group?member=Patient/p1"
expect_outcome "an unsupported search parameter answers 400" 400 "member"
http GET "$BASE/Group?name:exact=x"
expect_outcome "a search modifier answers 400" 400 "modifiers"

http GET "$BASE/Group/small"
expect_eq "a read answers the roster" "$(jq_body '.resourceType + "/" + .id')" Group/small
expect_eq "as a PDex provider Group" "$(jq_body '.meta.profile[0]')" "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-provider-group"
expect_eq "with its attribution list status" "$(jq_body '.extension[0].valueCode')" open
expect_eq "and its members" "$(jq_body '[.member[].entity.reference] | join(",")')" "Patient/ghost,Patient/p1,Patient/p2,Patient/p300"
psql_q "INSERT INTO opt_out (patient_id, scope, period_start) VALUES ('p2', 'global', current_date - 1)" > /dev/null
psql_q "INSERT INTO opt_out (patient_id, scope, npi, period_start) VALUES ('p300', 'provider-specific', '1234567893', current_date)" > /dev/null
psql_q "INSERT INTO opt_out (patient_id, scope, npi, period_start) VALUES ('p1', 'provider-specific', '1245319599', current_date)" > /dev/null
http GET "$BASE/Group/small"
expect_eq "members who opted out, globally or from this provider, are left out" \
  "$(jq_body '[.member[].entity.reference] | join(",")')" "Patient/ghost,Patient/p1"
expect_eq "quantity counts what the caller sees" "$(jq_body .quantity)" 2
psql_q "DELETE FROM opt_out WHERE patient_id IN ('p1', 'p2', 'p300')" > /dev/null
http GET "$BASE/Group/elsewhere"
expect_outcome "another provider's roster is 404, not 403" 404 "elsewhere"
http GET "$BASE/Group/nosuch"
expect_outcome "an unknown Group is 404 too" 404 "nosuch"
adm=$("$PA_ROOT/bin/pa-admin" --config "$PA_ROOT/provider-access.conf" client add --name "Payer ops" --admin --secret)
NOAUTH=1 http GET "$BASE/Group/elsewhere" -H "Authorization: Bearer $(token_for "$(sed -n 1p <<< "$adm")" "$(sed -n 2p <<< "$adm")")"
expect_eq "the payer's admin client reads any roster" "$STATUS" 200

# the tester's script for the whole v1 flow
out=$(BASE=$BASE OUT=$HTTP_TMP/v1 "$REPO/examples/v1-flow" "$CLIENT_ID" "$CLIENT_SECRET" small 2> "$HTTP_TMP/v1.log")
expect_eq "examples/v1-flow runs the whole flow" "$?" 0
expect_eq "and downloads the members' Patients" "$(jq -r .id "$HTTP_TMP/v1/Patient-1.ndjson" | sort | tr '\n' ,)" "p1,p2,p300,"
