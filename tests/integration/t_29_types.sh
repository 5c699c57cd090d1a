# The data classes loaded from the synthetic payer's files (t_08) beyond the
# first ones: Medication, MedicationDispense (PDex profile), ServiceRequest,
# Specimen, QuestionnaireResponse and RelatedPerson are loaded, exported and
# filterable like the others.

org_npi=$(psql_q "SELECT org_npi FROM roster WHERE id = 'roster-org-0'")
c=$("$PA_ROOT/bin/pa-admin" --config "$PA_ROOT/provider-access.conf" client add --name "Types" --npi "$org_npi" --secret 2> /dev/null)
ctok=$(token_for "$(sed -n 1p <<< "$c")" "$(sed -n 2p <<< "$c")")
NEW="MedicationDispense,ServiceRequest,Specimen,QuestionnaireResponse,RelatedPerson"

for t in Medication ${NEW//,/ }; do
  expect_true "the synthetic payer's $t resources are loaded" test "$(psql_q "SELECT count(*) FROM resource WHERE type = '$t'")" -gt 0
done

export_lines() {  # export_lines [curl args]: every line roster-org-0's export gives the Types client
  NOAUTH=1 http GET "$BASE/Group/roster-org-0/\$export" -H 'Accept: application/fhir+json' -H 'Prefer: respond-async' \
    -H "Authorization: Bearer $ctok" "$@"
  local url u
  url=$(header Content-Location)
  [ -n "$url" ] || { echo "kick-off $STATUS: ${BODY:0:200}" >&2; return; }
  for _ in $(seq 300); do
    NOAUTH=1 http GET "$url" -H "Authorization: Bearer $ctok"
    [ "$STATUS" = 202 ] || [ "$STATUS" = 429 ] || break; sleep 0.2
  done
  for u in $(jq_body -r '.output[].url'); do curl -s -H "Authorization: Bearer $ctok" "$u"; done
  NOAUTH=1 http DELETE "$url" -H "Authorization: Bearer $ctok"
}
floor="coalesce(clin_end, clin_start, created) IS NULL OR coalesce(clin_end, clin_start, created) >= '2016-01-01'"

all=$(export_lines --get --data-urlencode "_type=$NEW,Medication,Patient")
pats=$(jq -r 'select(.resourceType == "Patient") | "\(.id)"' <<< "$all" | sed "s/.*/'&'/" | paste -sd,)
expect_true "the export has members" test -n "$pats"
for t in ${NEW//,/ }; do
  expect_eq "an export holds the members' $t resources" \
    "$(jq -r "select(.resourceType == \"$t\") | .id" <<< "$all" | LC_ALL=C sort | paste -sd' ')" \
    "$(psql_q "SELECT string_agg(id, ' ' ORDER BY id COLLATE \"C\") FROM resource WHERE type = '$t'
               AND patient_id IN (${pats:-''}) AND ($floor)")"
done
expect_eq "... and the Medications their dispenses reference" \
  "$(jq -r 'select(.resourceType == "Medication") | .id' <<< "$all" | sort | paste -sd' ')" \
  "$(jq -r 'select(.resourceType == "MedicationDispense") | .medicationReference.reference | sub("Medication/"; "")' <<< "$all" | sort -u | paste -sd' ')"
expect_eq "... each dispense with its PDex profile" \
  "$(jq -r 'select(.resourceType == "MedicationDispense") | .meta.profile[0]' <<< "$all" | sort -u)" \
  "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-medicationdispense"

filtered=$(export_lines --get --data-urlencode "_type=ServiceRequest,Specimen,QuestionnaireResponse,RelatedPerson,MedicationDispense" \
  --data-urlencode '_typeFilter=ServiceRequest?code=http://www.ama-assn.org/go/cpt|93000' \
  --data-urlencode '_typeFilter=Specimen?type=http://snomed.info/sct|119297000' \
  --data-urlencode '_typeFilter=QuestionnaireResponse?status=in-progress' \
  --data-urlencode '_typeFilter=RelatedPerson?relationship=C' \
  --data-urlencode '_typeFilter=MedicationDispense?whenhandedover=ge2024-01-01')
expect_eq "_typeFilter selects among them: ServiceRequest by code" \
  "$(jq -r 'select(.resourceType == "ServiceRequest") | .code.coding[0].code' <<< "$filtered" | sort -u)" "93000"
expect_eq "... Specimen by type, RelatedPerson by relationship (all of them)" \
  "$(jq -r 'select(.resourceType == "Specimen" or .resourceType == "RelatedPerson") | .resourceType' <<< "$filtered" | sort | uniq -c | awk '{print $1}' | paste -sd' ')" \
  "$(jq -r 'select(.resourceType == "Specimen" or .resourceType == "RelatedPerson") | .resourceType' <<< "$all" | sort | uniq -c | awk '{print $1}' | paste -sd' ')"
expect_eq "... QuestionnaireResponse by status (none in progress)" \
  "$(jq -r 'select(.resourceType == "QuestionnaireResponse") | .id' <<< "$filtered" | wc -l)" 0
expect_eq "... MedicationDispense by date" \
  "$(jq -r 'select(.resourceType == "MedicationDispense") | .id' <<< "$filtered" | sort | paste -sd' ')" \
  "$(jq -r 'select(.resourceType == "MedicationDispense" and .whenHandedOver >= "2024-01-01") | .id' <<< "$all" | sort | paste -sd' ')"
expect_eq "the loader keeps each resource's references into a compartment apart (a Condition's Encounter)" \
  "$(psql_q "SELECT count(*) FILTER (WHERE refs = ARRAY['Encounter/' || (json::jsonb->'encounter'->>'reference')::text]
              OR refs = ARRAY[json::jsonb->'encounter'->>'reference']) = count(*) AND count(*) > 0
             FROM resource WHERE type = 'Condition' AND json::jsonb ? 'encounter'")" t
expect_eq "... out of the search tokens" \
  "$(psql_q "SELECT count(*) FROM resource WHERE type = 'Condition' AND EXISTS (SELECT 1 FROM unnest(tokens) t WHERE t LIKE 'ref=Encounter/%')")" 0
