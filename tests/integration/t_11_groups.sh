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
expect_outcome "a search modifier answers 400" 400 "modifier 'name:exact' is not supported"

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
# a member whose period has ended is listed (with its period) but not active:
# quantity and an export agree on who is, as do both counts for an opted-out one
psql_q "UPDATE roster_member SET period_end = current_date - 1 WHERE roster_id = 'small' AND patient_id = 'p300'" > /dev/null
http GET "$BASE/Group/small"
expect_eq "a member whose period ended is listed, with its end" \
  "$(jq_body '[.member[] | select(.entity.reference == "Patient/p300") | .period.end != null] | join(",")')" true
expect_eq "... and not counted in quantity" "$(jq_body .quantity)" 3
psql_q "INSERT INTO opt_out (patient_id, scope, period_start) VALUES ('p300', 'global', current_date - 1)" > /dev/null
http GET "$BASE/Group/small"
expect_eq "... nor among the members an opt-out keeps out" \
  "$(jq_body '.extension[] | select(.url | endswith("base-ext-members-opted-out")) | .valueQuantity.value')" 0
kickoff small
wait_job "$JOB_URL" 30
download_all "$BODY" "$HTTP_TMP/ended"
expect_eq "... nor exported" "$(cat "$HTTP_TMP"/ended/*-Patient-*.ndjson | jq -r .id | sort | tr '\n' ' ')" "p1 p2 "
http DELETE "$JOB_URL"
psql_q "DELETE FROM opt_out WHERE patient_id = 'p300'" > /dev/null
psql_q "UPDATE roster_member SET period_end = NULL WHERE roster_id = 'small' AND patient_id = 'p300'" > /dev/null
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
# PA_BASE_URL (what ./quickstart env exports) is the default base; a step the
# server refuses prints its answer instead of exiting in silence
PA_BASE_URL=$BASE "$REPO/examples/v1-flow" "$CLIENT_ID" "$CLIENT_SECRET" nosuch > /dev/null 2> "$HTTP_TMP/v1-bad.log"
expect_eq "examples/v1-flow stops at a step the server refuses" "$?" 1
expect_true "... printing the status and the server's OperationOutcome" \
  grep -q "HTTP 404 from $BASE/Group/nosuch:" "$HTTP_TMP/v1-bad.log"
expect_true "... whose diagnostics say why" grep -q '"resourceType":"OperationOutcome"' "$HTTP_TMP/v1-bad.log"
PA_BASE_URL=$BASE "$REPO/examples/v1-flow" "$CLIENT_ID" wrong-secret > /dev/null 2> "$HTTP_TMP/v1-secret.log"
expect_true "... and a refused token request its OAuth error" grep -q '"error":"invalid_client"' "$HTTP_TMP/v1-secret.log"

# Roster discovery as PDex and ATR say: the served Group conforms to the PDex
# provider Group profile, keeps what it was loaded with, and the search
# parameters the provider-access CapabilityStatement marks SHALL work with
# FHIR's OR (comma) and AND (repeated) and system|code.
NPI_SYS=http://hl7.org/fhir/sid/us-npi
ATTR_CS=http://hl7.org/fhir/us/davinci-pdex/CodeSystem/PdexMemberAttributionCS
http GET "$BASE/Group/small"
expect_eq "a served roster has the profile's code" "$(jq_body -r '.code.coding[0] | .system + "|" + .code')" "$ATTR_CS|pdexprovidergroup"
expect_eq "... the attributed provider's NPI among its identifiers" \
  "$(jq_body -r --arg s "$NPI_SYS" '[.identifier[] | select(.system == $s) | .value] | join(",")')" 1234567893
expect_eq "... its pdexprovidergroup characteristic with the provider and a period" \
  "$(jq_body -r '.characteristic[0] | [.code.coding[0].code, .valueReference.identifier.value, (.period.start | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}$")), .exclude] | map(tostring) | join(" ")')" \
  "pdexprovidergroup 1234567893 true false"
expect_eq "... the payer as managingEntity" "$(jq_body -r .managingEntity.identifier.value)" 98765
expect_eq "... the opted-out count (PDex), and each member's ATR changeType" \
  "$(jq_body -r '[(.extension[] | select(.url | endswith("base-ext-members-opted-out")) | .valueQuantity.value), (.member[0].extension[] | select(.url | endswith("ext-changeType")) | .valueCode)] | map(tostring) | join(" ")')" \
  "0 nochange"
expect_eq "... and none of PDex 2.1.0's member extensions (off by default)" \
  "$(jq_body '[.member[].extension[] | select(.url | test("last-"))] | length')" 0
http GET "$BASE/Group/small?_summary=true"
expect_eq "_summary=true on a read leaves the members out, and says so" \
  "$(jq_body -r '[has("member"), .meta.tag[0].code, .quantity] | map(tostring) | join(" ")')" "false SUBSETTED 4"

cat > "$HTTP_TMP/loaded-group.ndjson" <<'JSON'
{"resourceType":"Group","id":"loaded-pdex","meta":{"profile":["http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-provider-group"]},"extension":[{"url":"http://hl7.org/fhir/us/davinci-atr/StructureDefinition/ext-attributionListStatus","valueCode":"final"},{"url":"http://hl7.org/fhir/us/davinci-atr/StructureDefinition/ext-contractValidityPeriod","valuePeriod":{"start":"2026-01-01"}}],"identifier":[{"system":"urn:oid:2.16.840.1.113883.4.4","value":"99-12345"}],"active":true,"type":"person","actual":true,"code":{"coding":[{"system":"http://hl7.org/fhir/us/davinci-pdex/CodeSystem/PdexMemberAttributionCS","code":"pdexprovidergroup"}]},"name":"Loaded roster","managingEntity":{"reference":"Organization/payer","display":"Synthetic Health Plan"},"characteristic":[{"code":{"coding":[{"system":"http://hl7.org/fhir/us/davinci-pdex/CodeSystem/PdexMemberAttributionCS","code":"pdexprovidergroup"}]},"valueReference":{"reference":"Organization/loaded-org","identifier":{"system":"http://hl7.org/fhir/sid/us-npi","value":"1234567893"}},"exclude":false,"period":{"start":"2025-07-01"}}],"member":[{"extension":[{"url":"http://hl7.org/fhir/us/davinci-atr/StructureDefinition/ext-changeType","valueCode":"changed"}],"entity":{"reference":"Patient/p1"}},{"entity":{"reference":"Patient/p2"}}]}
JSON
"$PA_ROOT/bin/pa-admin" --config "$PA_ROOT/provider-access.conf" load "$HTTP_TMP/loaded-group.ndjson" > /dev/null 2>&1
http GET "$BASE/Group/loaded-pdex"
expect_eq "a loaded Group keeps its TIN, adds the NPI" \
  "$(jq_body -r '[.identifier[] | .system + "|" + .value] | join(",")')" "urn:oid:2.16.840.1.113883.4.4|99-12345,$NPI_SYS|1234567893"
expect_eq "... keeps its managingEntity, its characteristic's period and provider, its other extensions" \
  "$(jq_body -r '[.managingEntity.reference, .characteristic[0].period.start, .characteristic[0].valueReference.reference, (.extension | map(.url | split("/") | last) | join("+"))] | join(" ")')" \
  "Organization/payer 2025-07-01 Organization/loaded-org ext-contractValidityPeriod+ext-attributionListStatus+base-ext-members-opted-out"
expect_eq "... and the changeType each member was loaded with, computed for the others" \
  "$(jq_body -r '[.member[] | .entity.reference + "=" + (.extension[] | select(.url | endswith("ext-changeType")) | .valueCode)] | join(",")')" \
  "Patient/p1=changed,Patient/p2=new"
sed 's/"entity":{"reference":"Patient\/p2"}/"entity":{"reference":"Patient\/p3"}/' "$HTTP_TMP/loaded-group.ndjson" > "$HTTP_TMP/loaded-group2.ndjson"
"$PA_ROOT/bin/pa-admin" --config "$PA_ROOT/provider-access.conf" load "$HTTP_TMP/loaded-group2.ndjson" > /dev/null 2>&1
http GET "$BASE/Group/loaded-pdex"
expect_eq "a new version of the Group: a member left out is dropped (inactive), a new one new" \
  "$(jq_body -r '[.member[] | .entity.reference + "=" + (.extension[] | select(.url | endswith("ext-changeType")) | .valueCode) + "/" + (.inactive | tostring)] | join(",")')" \
  "Patient/p1=changed/false,Patient/p2=dropped/true,Patient/p3=new/false"

ids() { jq_body -r '[.entry[].resource.id] | sort | join(",")'; }
http GET "$BASE/Group" --get --data-urlencode "identifier=$NPI_SYS|1234567893"
expect_eq "identifier finds the rosters by the attributed provider's NPI" "$(ids)" "big,empty,loaded-pdex,small"
http GET "$BASE/Group" --get --data-urlencode "identifier=urn:oid:2.16.840.1.113883.4.4|99-12345"
expect_eq "... and by TIN" "$(ids)" "loaded-pdex"
http GET "$BASE/Group" --get --data-urlencode "identifier=urn:other|99-12345"
expect_eq "... its system respected" "$(jq_body .total)" 0
http GET "$BASE/Group" --get --data-urlencode "identifier=99-12345"
expect_eq "... a value alone matching any system" "$(ids)" "loaded-pdex"
http GET "$BASE/Group" --get --data-urlencode "identifier=|99-12345"
expect_eq "... and |value only an identifier without one" "$(jq_body .total)" 0
http GET "$BASE/Group" --get --data-urlencode "_id=small,loaded-pdex,elsewhere"
expect_eq "a comma list is OR" "$(ids)" "loaded-pdex,small"
http GET "$BASE/Group" --get --data-urlencode "_id=small,loaded-pdex" --data-urlencode "identifier=urn:oid:2.16.840.1.113883.4.4|99-12345"
expect_eq "repeated parameters are AND" "$(ids)" "loaded-pdex"
http GET "$BASE/Group" --get --data-urlencode "code=$ATTR_CS|pdexprovidergroup"
expect_eq "code with its system finds the rosters" "$(jq_body .total)" 4
http GET "$BASE/Group" --get --data-urlencode "code=urn:other|pdexprovidergroup"
expect_eq "... not with another system" "$(jq_body .total)" 0
http GET "$BASE/Group" --get --data-urlencode "characteristic=$ATTR_CS|pdexprovidergroup" --data-urlencode "_id=small"
expect_eq "characteristic finds them by the characteristic's code" "$(ids)" "small"
http GET "$BASE/Group" --get --data-urlencode "characteristic=pdex-member"
expect_eq "... not by another" "$(jq_body .total)" 0
http GET "$BASE/Group" --get --data-urlencode "characteristic-value-reference=Organization/loaded-org"
expect_eq "characteristic-value-reference finds the roster attributed to that provider" "$(ids)" "loaded-pdex"
http GET "$BASE/Group" --get --data-urlencode "characteristic-value-reference=https://payer.example/fhir/Organization/loaded-org"
expect_eq "... by an absolute reference too" "$(ids)" "loaded-pdex"
http GET "$BASE/Group" --get --data-urlencode "characteristic-value-reference:identifier=$NPI_SYS|1234567893" --data-urlencode "_summary=count"
expect_eq "... and, with :identifier, by the provider's NPI" "$(jq_body '"\(.total) \(.entry | length)"')" "4 0"
http GET "$BASE/Group" --get --data-urlencode "characteristic-value-reference=Organization/elsewhere-org"
expect_eq "... nothing for another provider" "$(jq_body .total)" 0
"$PA_ROOT/bin/pa-admin" --config "$PA_ROOT/provider-access.conf" delete Group/loaded-pdex > /dev/null 2>&1 ||
  psql_q "DELETE FROM roster WHERE id = 'loaded-pdex'" > /dev/null
psql_q "DELETE FROM roster WHERE id = 'loaded-pdex'" > /dev/null
