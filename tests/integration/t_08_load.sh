# pa-admin load and synth: what a payer's data load must guarantee.

admin() { "$PA_ROOT/bin/pa-admin" --config "$PA_ROOT/provider-access.conf" "$@"; }
syn=$HTTP_TMP/synth
admin synth --members 40 --seed 3 --today 2026-11-01 --out "$syn" > /dev/null
admin synth --members 40 --seed 3 --today 2026-11-01 --out "$syn-again" > /dev/null
expect_true "synth is deterministic: same seed, same bytes" diff -r "$syn" "$syn-again"
admin synth --members 40 --seed 4 --today 2026-11-01 --out "$syn-other" > /dev/null
expect_true "another seed gives another payer" eval "! cmp -s '$syn/Patient.ndjson' '$syn-other/Patient.ndjson'"
expect_eq "synth has claims from before the 2016 floor" \
  "$(jq -r 'select(.billablePeriod.start < "2016-01-01") | .id' "$syn/ExplanationOfBenefit.ndjson" | head -n 1 | grep -c .)" 1
expect_eq "synth has prior authorizations" \
  "$(jq -r 'select(.use == "preauthorization") | .id' "$syn/ExplanationOfBenefit.ndjson" | head -n 1 | grep -c .)" 1
expect_eq "every synthetic resource names a meta.profile" \
  "$(cat "$syn"/*.ndjson | jq -r 'select((.meta.profile | length) == 0) | .id' | wc -l)" 0

out=$(admin load "$syn" 2>&1); rc=$?
expect_eq "loading the synthetic payer succeeds" "$rc" 0
expect_match "the summary counts what was loaded" "$out" '^loaded [0-9]+ resources \([0-9]+ new, 0 updated, 0 unchanged\)'
mismatch=""
for f in "$syn"/*.ndjson; do
  type=$(basename "$f" .ndjson)
  [ "$type" = Group ] && continue
  want=$(wc -l < "$f")
  got=$(psql_q "SELECT count(*) FROM resource WHERE type = '$type' AND content_hash IS NOT NULL")
  [ "$want" = "$got" ] || mismatch="$mismatch $type($want/$got)"
done
expect_eq "counts per type read back equal the files exactly" "$mismatch" ""
expect_eq "every ExplanationOfBenefit has its non-financial form" \
  "$(psql_q "SELECT count(*) FROM resource WHERE type = 'ExplanationOfBenefit' AND json_nonfin IS NULL")" 0
for el in total payment benefitBalance; do
  expect_eq "no non-financial EOB has $el" \
    "$(psql_q "SELECT count(*) FROM resource WHERE type = 'ExplanationOfBenefit' AND json_nonfin::jsonb ? '$el'")" 0
done
for el in amount unitPrice net factor; do
  expect_eq "no non-financial EOB has $el at any depth" \
    "$(psql_q "SELECT count(*) FROM resource WHERE type = 'ExplanationOfBenefit' AND jsonb_path_exists(json_nonfin::jsonb, 'strict \$.**.$el')")" 0
done
expect_eq "the full form keeps the financial elements" \
  "$(psql_q "SELECT count(*) > 0 FROM resource WHERE type = 'ExplanationOfBenefit' AND json::jsonb ? 'total'")" t
expect_eq "non-financial EOBs name the Basis profiles" \
  "$(psql_q "SELECT count(*) FROM resource WHERE type = 'ExplanationOfBenefit' AND json_nonfin::jsonb->'meta'->>'profile' LIKE '%C4BB%' AND json_nonfin::jsonb->'meta'->>'profile' NOT LIKE '%-Basis%'")" 0
expect_eq "stored lines are compact JSON, as export writes them" \
  "$(psql_q "SELECT count(*) FROM resource WHERE json LIKE '%\": %' OR json LIKE E'%\\n%'")" 0
expect_eq "rosters loaded from their Groups" \
  "$(psql_q "SELECT count(*) FROM roster WHERE id LIKE 'roster-org-%'")" \
  "$(jq -r 'select(.id | startswith("roster-org-")) | .id' "$syn/Group.ndjson" | wc -l)"
expect_eq "roster members loaded" \
  "$(psql_q "SELECT count(*) FROM roster_member WHERE roster_id LIKE 'roster-org-%'")" \
  "$(jq -r 'select(.id | startswith("roster-org-")) | .member[]' "$syn/Group.ndjson" | jq -s length)"
expect_eq "opt-outs loaded from their Groups (global and provider-specific)" \
  "$(psql_q "SELECT string_agg(DISTINCT scope, ',' ORDER BY scope) FROM opt_out")" "global,provider-specific"
expect_eq "treatment relationships from claims (CSV) and from Groups" \
  "$(psql_q "SELECT string_agg(DISTINCT source, ',' ORDER BY source) FROM treatment_relationship")" "claims,payer"
expect_eq "providers' network status from the CSV feed" \
  "$(psql_q "SELECT count(*) FROM provider WHERE NOT in_network AND resource_id IS NOT NULL")" \
  "$(grep -c ',false,' "$syn/providers.csv")"
ml=$(admin member list --limit 2)
expect_match "member list is tab-separated with a header" "$ml" $'^patient_id\tfamily\tgiven\tbirth_date\tgender\tsubscriber_id\tcoverage_status\nmem-000000\t'
expect_eq "member list --no-header drops it" "$(admin member list --limit 1 --no-header | cut -f1)" mem-000000
expect_eq "provider list --in-network lists only in-network providers" \
  "$(admin provider list --in-network --no-header | cut -f4 | sort -u)" yes

before=$(psql_q "SELECT count(*), max(last_updated) FROM resource")
out=$(admin load "$syn" 2>&1)
expect_match "re-loading the same data changes nothing" "$out" '\(0 new, 0 updated, [0-9]+ unchanged\)'
expect_eq "re-loading leaves the store as it was" "$(psql_q "SELECT count(*), max(last_updated) FROM resource")" "$before"

# a file with bad lines: the good ones load, the bad ones are named
bad=$HTTP_TMP/bad.ndjson
{
  echo '{"resourceType":"Patient","id":"good-1","name":[{"family":"Good"}],"gender":"male","birthDate":"1990-01-01"}'
  echo '{"resourceType":"Patient","id":"good-1"'
  echo '{"resourceType":"Claim","id":"c1"}'
  echo '{"resourceType":"Observation","status":"final"}'
  echo '{"resourceType":"Condition","id":"no-subject","code":{"text":"x"}}'
  echo '{"resourceType":"Practitioner","id":"bad-npi","identifier":[{"system":"http://hl7.org/fhir/sid/us-npi","value":"1234567890"}]}'
  printf '{"resourceType":"Patient","id":"bad-utf8","name":[{"family":"\xff\xfe"}]}\n'
  echo '{"resourceType":"Patient","id":"trailing"} extra'
  echo '{"resourceType":"Observation","id":"bad-date","status":"final","subject":{"reference":"Patient/good-1"},"effectiveDateTime":"last week"}'
  echo ''
  echo '{"resourceType":"Observation","id":"good-2","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/good-1"}}'
  echo '{"resourceType":"Patient","id":"bad-birth","name":[{"family":"Feb"}],"birthDate":"1970-02-30"}'
  echo '{"resourceType":"Patient","id":"nul","name":[{"family":"a\u0000b"}]}'
} > "$bad"
out=$(admin load "$bad" 2>&1); rc=$?
expect_eq "a file with bad lines exits 1" "$rc" 1
expect_match "its good lines load (a Practitioner with a bad NPI too, out of the directory)" "$out" 'loaded 3 resources'
for want in "bad.ndjson:2: not valid JSON: the line ends before the JSON does" "Claim 1 ($bad:3)" "bad.ndjson:4: Observation without a valid id" \
            "bad.ndjson:5: Condition/no-subject: Condition needs a Patient reference" "bad.ndjson:6: Practitioner/bad-npi: NPI '1234567890' fails its check digit" \
            "bad.ndjson:7: not valid JSON" "bad.ndjson:8: not valid JSON" "bad.ndjson:9: Observation/bad-date: the clinical date" \
            "bad.ndjson:12: Patient/bad-birth: birthDate '1970-02-30' is not a FHIR date" \
            "bad.ndjson:13: not valid JSON: a \\u0000 (NUL) in a string"; do
  expect_true "the report names $want" grep -qF "$want" <<< "$out"
done
expect_eq "a resource without meta.lastUpdated gets the load's time" \
  "$(psql_q "SELECT json::jsonb->'meta'->>'lastUpdated' = to_char(last_updated AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') FROM resource WHERE type='Patient' AND id='good-1'")" t

# how a line is stored: a compact line as it is; one with white space, or a
# key twice, as its parse re-written (the last of a repeated key wins, the way
# the loader read it); a resource named twice in one batch: its last line
lu='"meta":{"lastUpdated":"2026-01-02T03:04:05Z"}'
forms=$HTTP_TMP/forms.ndjson
{
  echo '{"resourceType":"Patient","id":"form-1",'"$lu"',"name":[{"family":"Caf\u00e9 \/ Bar","given":["A"]}],"gender":"female"}'
  echo '{"resourceType":"Patient", "id":"form-2",'"$lu"',"name":[{"family":"Spaced"}],"gender":"male"}'
  echo '{"resourceType":"Patient","id":"form-3",'"$lu"',"gender":"male","gender":"female"}'
  echo '{"resourceType":"Patient","id":"form-4",'"$lu"',"gender":"male"}'
  echo '{"resourceType":"Patient","id":"form-4",'"$lu"',"gender":"other"}'
} > "$forms"
admin load "$forms" > /dev/null 2>&1
# meta.lastUpdated is this server's change time, the same for the whole batch
stamp=$(psql_q "SELECT to_char(last_updated AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') FROM resource WHERE type = 'Patient' AND id = 'form-1'")
now_lu='"meta":{"lastUpdated":"'$stamp'"}'
expect_eq "a compact line is stored byte for byte, but for meta.lastUpdated: this server's change time" \
  "$(psql_q "SELECT json FROM resource WHERE type = 'Patient' AND id = 'form-1'")" "$(sed -n 1p "$forms" | sed "s|$lu|$now_lu|")"
expect_eq "a line with white space is stored compact" \
  "$(psql_q "SELECT json FROM resource WHERE type = 'Patient' AND id = 'form-2'")" \
  '{"resourceType":"Patient","id":"form-2",'"$now_lu"',"name":[{"family":"Spaced"}],"gender":"male"}'
expect_eq "a key given twice is stored once, with the value the loader read" \
  "$(psql_q "SELECT json FROM resource WHERE type = 'Patient' AND id = 'form-3'")" \
  '{"resourceType":"Patient","id":"form-3",'"$now_lu"',"gender":"female"}'
expect_eq "a resource named twice in a batch keeps its last line" \
  "$(psql_q "SELECT json::jsonb->>'gender' FROM resource WHERE type = 'Patient' AND id = 'form-4'")" other
admin delete Patient/form-1 Patient/form-2 Patient/form-3 Patient/form-4 > /dev/null
psql_q "DELETE FROM resource_deleted WHERE id LIKE 'form-%'" > /dev/null

# a claim whose source names no CARIN profile: its non-financial form names the Basis one
jq -c 'select(.use == "claim" and (.type.coding[0].code == "pharmacy")) | .id = "no-profile-eob" | del(.meta.profile)' \
  "$syn/ExplanationOfBenefit.ndjson" | head -n 1 > "$HTTP_TMP/noprof.ndjson"
admin load "$HTTP_TMP/noprof.ndjson" > /dev/null
expect_eq "a claim loaded without a profile is served non-financial under its Basis profile" \
  "$(psql_q "SELECT json_nonfin::jsonb->'meta'->'profile'->>0 FROM resource WHERE type = 'ExplanationOfBenefit' AND id = 'no-profile-eob'")" \
  "http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-ExplanationOfBenefit-Pharmacy-Basis"
expect_eq "every non-financial claim names a CARIN Basis profile" \
  "$(psql_q "SELECT count(*) FROM resource WHERE type = 'ExplanationOfBenefit' AND json_nonfin::jsonb->>'use' <> 'preauthorization'
             AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text(json_nonfin::jsonb->'meta'->'profile') p WHERE p LIKE '%C4BB-%-Basis')")" 0
admin delete ExplanationOfBenefit/no-profile-eob > /dev/null
psql_q "DELETE FROM resource_deleted WHERE id = 'no-profile-eob'" > /dev/null

# gzip, deletes and tombstones
gzip -c "$syn/Immunization.ndjson" > "$HTTP_TMP/imm.ndjson.gz"
out=$(admin load "$HTTP_TMP/imm.ndjson.gz" 2>&1)
expect_match "gzip files load" "$out" "\\(0 new, 0 updated, $(wc -l < "$syn/Immunization.ndjson") unchanged\\)"
echo '{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Observation/good-2"}},{"request":{"method":"DELETE","url":"Patient/good-1"}}]}' > "$HTTP_TMP/del.ndjson"
out=$(admin load "$HTTP_TMP/del.ndjson" 2>&1)
expect_match "a DELETE Bundle deletes" "$out" '2 deleted'
expect_eq "deleted resources are gone" "$(psql_q "SELECT count(*) FROM resource WHERE id IN ('good-1', 'good-2')")" 0
expect_eq "and leave tombstones with their patient" \
  "$(psql_q "SELECT string_agg(type || '/' || id || '@' || patient_id, ',' ORDER BY id) FROM resource_deleted")" \
  "Patient/good-1@good-1,Observation/good-2@good-1"
admin load "$bad" > /dev/null 2>&1
expect_eq "loading a deleted resource again lifts its tombstone" "$(psql_q "SELECT count(*) FROM resource_deleted")" 0
out=$(admin delete Observation/good-2 Claim/x 2>&1); rc=$?
expect_eq "pa-admin delete refuses an unknown type" "$rc" 1
out=$(admin delete Observation/good-2)
expect_eq "pa-admin delete deletes" "$out" "deleted 1 of 1"

# CSV feeds: a bad row is named, the others load
cat > "$HTTP_TMP/optouts.csv" <<CSV
patient_id,scope,npi,period_start,period_end,reason
mem-000001,global,,2025-01-01,,member-choice
mem-000002,provider-specific,1234567893,2025-02-01,2025-12-31,"privacy, concern"
mem-000003,global,1234567893,2025-01-01,,
mem-000004,everyone,,2025-01-01,,
CSV
out=$(admin load "$HTTP_TMP/optouts.csv" 2>&1); rc=$?
expect_eq "a feed with bad rows exits 1" "$rc" 1
expect_match "its good rows load" "$out" '2 feed rows'
expect_true "the report names each bad row" eval "grep -q 'optouts.csv:4: a global opt-out names no npi' <<< \"\$out\" && grep -q 'optouts.csv:5: scope must be' <<< \"\$out\""
expect_eq "quoted CSV fields keep their commas" "$(psql_q "SELECT reason FROM opt_out WHERE patient_id = 'mem-000002'")" "privacy, concern"
echo "a,b,c" > "$HTTP_TMP/unknown.csv"
out=$(admin load "$HTTP_TMP/unknown.csv" 2>&1); rc=$?
expect_eq "a CSV that is no known feed is refused" "$rc" 1

# a provider-specific opt-out that names no provider is refused, not half-stored
echo '{"resourceType":"Group","id":"optout-nobody","meta":{"profile":["http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-member-opt-out"]},"type":"person","actual":true,"characteristic":[{"code":{"coding":[{"code":"consentconstraint"}]},"valueCodeableConcept":{"coding":[{"code":"provider-specific"}]},"exclude":false,"period":{"start":"2025-01-01"}}],"member":[{"entity":{"reference":"Patient/mem-000005"}}]}' > "$HTTP_TMP/optout-nobody.ndjson"
out=$(admin load "$HTTP_TMP/optout-nobody.ndjson" 2>&1); rc=$?
expect_eq "an opt-out Group naming no provider exits 1" "$rc" 1
expect_match "and is reported, not counted as stored" "$out" '0 groups.*1 refused'
