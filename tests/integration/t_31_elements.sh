# _elements (Bulk Data 2.0): an export keeps the top-level elements listed
# and the mandatory ones, marking each resource SUBSETTED; Type.element
# applies to that type alone; nested elements and unknown types are refused.

psql_q "INSERT INTO resource (type, id, patient_id, last_updated, json) VALUES
  ('Observation', 'el-obs', 'p1', now() - interval '1 minute',
   '{\"resourceType\":\"Observation\",\"id\":\"el-obs\",\"status\":\"final\",\"code\":{\"text\":\"x\"},\"subject\":{\"reference\":\"Patient/p1\"},\"valueQuantity\":{\"value\":1},\"note\":[{\"text\":\"n\"}]}')" > /dev/null

el_export() {  # el_export [curl args]: the manifest's lines, one per line
  kickoff small "$@"
  [ "$STATUS" = 202 ] || { echo "kick-off $STATUS: ${BODY:0:200}"; return; }
  wait_job "$JOB_URL" 60
  rm -rf "$HTTP_TMP/el"
  download_all "$BODY" "$HTTP_TMP/el"
  cat "$HTTP_TMP"/el/*
  http DELETE "$JOB_URL"
}

lines=$(el_export --get --data-urlencode '_type=Patient,Observation' --data-urlencode '_elements=birthDate')
expect_eq "_elements keeps what it names and resourceType, id, meta, on every type" \
  "$(jq -c 'select(.resourceType == "Patient") | keys' <<< "$lines" | sort -u | paste -sd' ')" \
  '["birthDate","id","meta","resourceType"]'
expect_eq "... plus each type's mandatory elements (Observation: status, code)" \
  "$(jq -c 'select(.id == "el-obs") | keys' <<< "$lines")" '["code","id","meta","resourceType","status"]'
expect_eq "... each resource marked SUBSETTED" \
  "$(jq -r '[.meta.tag[]? | select(.code == "SUBSETTED")] | length' <<< "$lines" | sort -u)" 1

lines=$(el_export --get --data-urlencode '_type=Patient,Observation' --data-urlencode '_elements=Observation.note')
expect_eq "Type.element cuts down that type only" \
  "$(jq -c 'select(.id == "el-obs") | keys' <<< "$lines") $(jq -r 'select(.resourceType == "Patient") | .meta.tag // [] | length' <<< "$lines" | sort -u)" \
  '["code","id","meta","note","resourceType","status"] 0'

el_export --get --data-urlencode '_elements=name.family' > /dev/null
expect_outcome "a nested element is refused" 400 "nested"
el_export --get --data-urlencode '_elements=Nonesuch.id' > /dev/null
expect_outcome "an unknown type is refused" 400 "Nonesuch"
el_export --get --data-urlencode '_type=Patient' --data-urlencode '_elements=Observation.status' > /dev/null
expect_outcome "a type _type does not ask for is refused" 400 "_type does not ask for"
el_export --get --data-urlencode '_elements=' > /dev/null
expect_outcome "an empty _elements is refused" 400 "_elements is empty"
psql_q "DELETE FROM resource WHERE id = 'el-obs'" > /dev/null
