# pa-admin load takes FHIR Bundles as payers' systems write them (Synthea's
# R4 output: a transaction Bundle per patient with urn:uuid: references, the
# providers in Bundles of their own, referred to conditionally), and answers
# with a summary, not a line per refusal.

admin() { "$PA_ROOT/bin/pa-admin" --config "$PA_ROOT/provider-access.conf" "$@"; }
d=$HTTP_TMP/bundles
admin synth --members 40 --seed 3 --today 2026-11-01 --out "$d-ndjson" > /dev/null
admin synth --members 40 --seed 3 --today 2026-11-01 --bundles --out "$d" > /dev/null
expect_eq "synth --bundles writes a Bundle per member and two of providers" \
  "$(ls "$d" | grep -c '^mem-.*\.json$') $(ls "$d" | grep -c 'Information\.json$')" "40 2"
expect_true "... pretty-printed, with urn:uuid: references" grep -q '"reference": "urn:uuid:' "$d/mem-000003.json"
expect_true "... and conditional ones to the practitioners" grep -q 'Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|' "$d/mem-000003.json"

lines=$(cat "$d-ndjson"/*.ndjson | grep -vc '"resourceType":"Group"')
out=$(admin load "$d" 2>&1); rc=$?
expect_eq "a Synthea-shaped folder loads with one command, nothing refused" "$rc" 0
# (the same payer as t_08's: after it, the Bundles change nothing)
expect_match "... every resource in it" "$out" "^loaded $lines resources "
expect_match "... the summary counts them by type" "$out" "by type: Patient 40, Coverage 40,"
expect_eq "no reference is left as a urn:uuid: or a search" \
  "$(psql_q "SELECT count(*) FROM resource WHERE json LIKE '%\"reference\":\"urn:%' OR json LIKE '%\"reference\":\"%?identifier=%'")" 0
# the same resources as the NDJSON form of the same payer, but for meta.lastUpdated
psql_q "CREATE TABLE t34_ndjson (j jsonb)" > /dev/null
cat "$d-ndjson"/*.ndjson | grep -v '"resourceType":"Group"' > "$HTTP_TMP/t34.ndjson"
psql_q "\\copy t34_ndjson FROM '$HTTP_TMP/t34.ndjson' WITH (FORMAT csv, QUOTE e'\\x01', DELIMITER e'\\x02')" > /dev/null
expect_eq "every resource is stored as its NDJSON form is (references to Type/id)" \
  "$(psql_q "SELECT count(*) FROM t34_ndjson n WHERE NOT EXISTS (SELECT 1 FROM resource r WHERE r.type = n.j->>'resourceType'
             AND r.id = n.j->>'id' AND r.json::jsonb #- '{meta,lastUpdated}' = n.j #- '{meta,lastUpdated}')")" 0
expect_eq "the practitioners named conditionally are the ones referenced" \
  "$(psql_q "SELECT count(*) FROM resource r JOIN t34_ndjson n ON n.j->>'resourceType' = 'Encounter' AND r.id = n.j->>'id'
             WHERE r.type = 'Encounter' AND r.tokens @> ARRAY['ref=Practitioner/prac-0']")" \
  "$(grep -c '"reference":"Practitioner/prac-0"' "$d-ndjson/Encounter.ndjson")"
psql_q "DROP TABLE t34_ndjson" > /dev/null
out=$(admin load "$d" 2>&1)
expect_match "loading it again changes nothing" "$out" "\\(0 new, 0 updated, $lines unchanged\\)"

# hand-written Bundles: every kind, and what is refused or skipped in them
b=$HTTP_TMP/hand
mkdir -p "$b"
cat > "$b/a-transaction.json" <<'JSON'
{
  "resourceType": "Bundle", "type": "transaction",
  "entry": [
    { "fullUrl": "urn:uuid:0b1e0000-0000-4000-8000-000000000001",
      "resource": { "resourceType": "Patient", "name": [ { "family": "Noid" } ] },
      "request": { "method": "POST", "url": "Patient" } },
    { "resource": { "resourceType": "Patient", "name": [ { "family": "Put" } ] },
      "request": { "method": "PUT", "url": "Patient/t34-put" } },
    { "fullUrl": "urn:uuid:0b1e0000-0000-4000-8000-000000000002",
      "resource": { "resourceType": "Observation", "id": "t34-obs", "status": "final", "code": { "text": "x" },
                    "subject": { "reference": "urn:uuid:0b1e0000-0000-4000-8000-000000000001" },
                    "performer": [ { "reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|0000000000" } ] },
      "request": { "method": "POST", "url": "Observation" } },
    { "resource": { "resourceType": "Claim", "id": "t34-claim" }, "request": { "method": "POST", "url": "Claim" } },
    { "request": { "method": "GET", "url": "Patient?name=x" } }
  ]
}
{ "resourceType": "Bundle", "type": "collection",
  "entry": [ { "fullUrl": "http://ehr.example/fhir/Patient/t34-coll",
               "resource": { "resourceType": "Patient", "id": "t34-coll" } },
             { "resource": { "resourceType": "Condition", "id": "t34-cond", "code": { "text": "y" },
                             "subject": { "reference": "http://ehr.example/fhir/Patient/t34-coll" } } } ] }
JSON
{
  echo '{"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceType":"Patient","id":"t34-search"},"search":{"mode":"match"}},{"resource":{"resourceType":"OperationOutcome","issue":[]},"search":{"mode":"outcome"}}]}'
  echo '{"resourceType":"Bundle","type":"history","entry":[]}'
  echo '{'
  echo '  "resourceType": "Bundle", "type": "batch",'
  echo '  "entry": [ { "resource": { "resourceType": "Patient", "id": "t34-broken" } }'
  echo '  "oops"'
  echo '  ]'
  echo '}'
  echo '{"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Patient","id":"t34-batch"},"request":{"method":"PUT","url":"Patient/t34-batch"}}]}'
} | gzip > "$b/b-more.ndjson.gz"
out=$(admin load --errors "$HTTP_TMP/t34-errors.txt" "$b" 2>&1); rc=$?
expect_eq "a load with refused entries exits 1" "$rc" 1
expect_eq "an entry without an id takes its urn:uuid:, a PUT's its url" \
  "$(psql_q "SELECT string_agg(id, ' ' ORDER BY id) FROM resource WHERE type = 'Patient' AND (id LIKE 't34-%' OR id LIKE '0b1e%')")" \
  "0b1e0000-0000-4000-8000-000000000001 t34-batch t34-coll t34-put t34-search"
expect_eq "references by urn:uuid: and by an absolute fullUrl become Type/id" \
  "$(psql_q "SELECT string_agg(patient_id, ' ' ORDER BY id) FROM resource WHERE id IN ('t34-obs', 't34-cond')")" \
  "t34-coll 0b1e0000-0000-4000-8000-000000000001"
expect_eq "a conditional reference that names nothing is kept as it is" \
  "$(psql_q "SELECT json::jsonb->'performer'->0->>'reference' FROM resource WHERE id = 't34-obs'")" \
  "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|0000000000"
expect_match "... and is counted as a warning" "$out" "stored with warnings: 1"
expect_match "a type the server does not keep is counted, not refused" "$out" "not stored: 2 of types this server does not keep: Claim 1 .*a-transaction.json:1 entry 3.*OperationOutcome 1"
expect_match "a GET entry is refused, by entry" "$out" "a-transaction.json:1: entry 4: a GET request is not loaded"
expect_match "a history Bundle is refused" "$out" "b-more.ndjson.gz:2: a Bundle of type 'history'"
expect_match "a broken pretty-printed Bundle is one refusal, named by its first line" "$out" "b-more.ndjson.gz:3: not valid JSON: the text that starts here breaks on line 6"
expect_match "... and the Bundle after it loads" "$out" "refused: 3"
expect_eq "--errors FILE lists every report" "$(grep -c . "$HTTP_TMP/t34-errors.txt")" 6

# a flood of one reason: counted once, three examples
for i in $(seq 1 12); do echo "{\"resourceType\":\"Observation\",\"id\":\"t34-nosubj-$i\",\"status\":\"final\"}"; done > "$HTTP_TMP/nosubj.ndjson"
out=$(admin load "$HTTP_TMP/nosubj.ndjson" 2>&1)
expect_match "twelve refusals of one reason are one line of the summary" "$out" "12  Observation/\\*: Observation needs a Patient reference in subject"
expect_eq "... with its first three examples" "$(grep -c 'nosubj.ndjson:[0-9]*: Observation/t34-nosubj' <<< "$out")" 3

# a Practitioner whose NPI fails its check digit: stored, but not in the directory
echo '{"resourceType":"Practitioner","id":"t34-badnpi","identifier":[{"system":"http://hl7.org/fhir/sid/us-npi","value":"1234567890"}]}' > "$HTTP_TMP/badnpi.ndjson"
out=$(admin load "$HTTP_TMP/badnpi.ndjson" 2>&1); rc=$?
expect_eq "a Practitioner with a bad NPI loads (exit 0)" "$rc" 0
expect_match "... counted in the summary" "$out" "NPI '1234567890' fails its check digit: stored, not in the provider directory"
expect_eq "... stored" "$(psql_q "SELECT count(*) FROM resource WHERE type = 'Practitioner' AND id = 't34-badnpi'")" 1
expect_eq "... and left out of the provider directory" "$(psql_q "SELECT count(*) FROM provider WHERE npi = '1234567890'")" 0

# PDex Groups naming patients the payer does not have
pdex=http://hl7.org/fhir/us/davinci-pdex/StructureDefinition
{
  echo '{"resourceType":"Group","id":"t34-roster","meta":{"profile":["'$pdex'/pdex-provider-group"]},"type":"person","actual":true,"characteristic":[{"code":{"coding":[{"code":"pdexprovidergroup"}]},"valueReference":{"identifier":{"system":"http://hl7.org/fhir/sid/us-npi","value":"1234567893"}},"exclude":false}],"member":[{"entity":{"reference":"Patient/mem-000001"}},{"entity":{"reference":"Patient/t34-nobody"}}]}'
  echo '{"resourceType":"Group","id":"t34-optout","meta":{"profile":["'$pdex'/pdex-member-opt-out"]},"type":"person","actual":true,"characteristic":[{"code":{"coding":[{"code":"consentconstraint"}]},"valueCodeableConcept":{"coding":[{"code":"global"}]},"exclude":false,"period":{"start":"2025-01-01"}}],"member":[{"entity":{"reference":"Patient/t34-later"}}]}'
} > "$HTTP_TMP/t34-groups.ndjson"
out=$(admin load "$HTTP_TMP/t34-groups.ndjson" 2>&1); rc=$?
expect_eq "a roster naming a patient the payer does not have is reported (exit 1)" "$rc" 1
expect_match "... naming the patient" "$out" "Group/t34-roster member Patient/t34-nobody: the payer has no such member"
expect_eq "... and stored without it" "$(psql_q "SELECT string_agg(patient_id, ' ') FROM roster_member WHERE roster_id = 't34-roster'")" mem-000001
expect_match "an opt-out for a patient not loaded yet is kept, with a warning" "$out" "Patient/t34-later is not a member the payer has yet: its opt-out is kept"
expect_eq "... stored" "$(psql_q "SELECT count(*) FROM opt_out WHERE patient_id = 't34-later'")" 1
psql_q "DELETE FROM roster_member WHERE roster_id = 't34-roster'; DELETE FROM roster WHERE id = 't34-roster'; DELETE FROM opt_out WHERE patient_id = 't34-later'" > /dev/null

admin delete Practitioner/t34-badnpi Patient/t34-put Patient/t34-coll Patient/t34-search Patient/t34-batch \
  Patient/0b1e0000-0000-4000-8000-000000000001 Observation/t34-obs Condition/t34-cond > /dev/null
psql_q "DELETE FROM resource_deleted WHERE id LIKE 't34-%' OR id LIKE '0b1e%'" > /dev/null
