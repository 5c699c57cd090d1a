# The service-date floor (2016-01-01), one rule per type (docs/EXPORT.md):
# a claim or clinical resource whose service ended before it is left out, a
# Condition only once it ended (an ongoing one is exported whenever it
# began), an AllergyIntolerance never (undated); and every resource the floor
# left out that an exported resource references is named in the error file.

row() {  # row TYPE ID START END REFS: a resource of p300, REFS its compartment references
  printf "('%s', '%s', 'p300', now() - interval '1 hour', '{\"resourceType\":\"%s\",\"id\":\"%s\"}', '{}', '%s', %s, %s)" \
    "$1" "$2" "$1" "$2" "$5" "$3" "$4"
}
psql_q "INSERT INTO resource (type, id, patient_id, last_updated, json, tokens, refs, clin_start, clin_end) VALUES
  $(row Encounter fl-enc-old "'2012-01-01'" "'2012-01-02'" '{}'),
  $(row Encounter fl-enc-new "'2020-01-01'" "'2020-01-02'" '{}'),
  $(row Condition fl-cond-ongoing "'2012-01-01'" NULL '{Encounter/fl-enc-old}'),
  $(row Condition fl-cond-resolved "'2012-01-01'" "'2013-01-01'" '{Encounter/fl-enc-old}'),
  $(row Observation fl-obs "'2020-01-01'" NULL '{Encounter/fl-enc-old,Encounter/fl-enc-new}'),
  $(row AllergyIntolerance fl-alg "'2009-01-01'" NULL '{}')" > /dev/null

floor_export() {  # floor_export TYPES: sets LINES (the fl-* ids exported) and ERRORS (the error file's diagnostics)
  kickoff small --get --data-urlencode "_type=$1"
  wait_job "$JOB_URL" 60
  rm -rf "$HTTP_TMP/floor"
  download_all "$BODY" "$HTTP_TMP/floor"
  LINES=$(cat "$HTTP_TMP"/floor/* 2>/dev/null | jq -r .id | grep '^fl-' | sort | paste -sd' ')
  ERRORS=$(for u in $(jq_body -r '.error[]?.url'); do curl -sf -H "Authorization: Bearer $TOKEN" "$u"; done |
    jq -r '.issue[0].diagnostics' | grep 'fl-' | sort)
  http DELETE "$JOB_URL"
}

floor_export Condition,Encounter,Observation,AllergyIntolerance
expect_eq "the floor leaves out the old Encounter and the Condition resolved before it, keeps the ongoing one" \
  "$LINES" "fl-alg fl-cond-ongoing fl-enc-new fl-obs"
expect_eq "... and the error file names, once, what it left out that the exported resources reference" \
  "$(cut -d' ' -f1-5 <<< "$ERRORS" | paste -sd';')" \
  "Encounter/fl-enc-old is referenced by resources"
expect_match "... saying why" "$ERRORS" "before the service-date floor \\(2016-01-01\\)"

floor_export Condition,Observation
expect_eq "a reference to a type the export does not hold is not named" "$ERRORS" ""

# The references gathered in batches: with export_refs_batch_bytes at 1 KB, a
# chunk's references (to shared resources, and to what the floor leaves out)
# are sent while its rows stream, on a connection of their own, and wait in
# export_ref until the chunk ends.  The files and the error file are the same.
whole_export() {  # whole_export DIR: roster small, every type, downloaded to DIR; sets MANIFEST
  kickoff small
  wait_job "$JOB_URL" 120
  MANIFEST=$BODY
  rm -rf "$1"
  download_all "$BODY" "$1"
  for u in $(jq_body -r '.error[]?.url'); do curl -sf -H "Authorization: Bearer $TOKEN" "$u"; done > "$1/errors.json"
  http DELETE "$JOB_URL"
}
# 100 Practitioners one Observation of p300 references: 2.8 KB of references in one row
psql_q "INSERT INTO resource (type, id, last_updated, json)
  SELECT 'Practitioner', 'rb-' || n, now() - interval '1 hour', '{\"resourceType\":\"Practitioner\",\"id\":\"rb-' || n || '\"}'
  FROM generate_series(1, 100) n;
  INSERT INTO resource (type, id, patient_id, last_updated, json, tokens)
  SELECT 'Observation', 'rb-obs', 'p300', now() - interval '1 hour', '{\"resourceType\":\"Observation\",\"id\":\"rb-obs\"}',
  array_agg('ref=Practitioner/rb-' || n) FROM generate_series(1, 100) n" > /dev/null
whole_export "$HTTP_TMP/refs-whole"
expect_eq "an export holds the 100 Practitioners one of its Observations references" \
  "$(cat "$HTTP_TMP"/refs-whole/*.ndjson | jq -r 'select(.resourceType == "Practitioner") | .id' | grep -c '^rb-')" "100"
PA_EXTRA_CONFIG="$PA_EXTRA_CONFIG
export_refs_batch_bytes = 1024" "$REPO/scripts/pa-stack" restart-runner > /dev/null 2>&1
floor_export Condition,Encounter,Observation,AllergyIntolerance
expect_eq "references sent in 1 KB batches: the floor leaves out the same" "$LINES" "fl-alg fl-cond-ongoing fl-enc-new fl-obs"
expect_eq "... and the error file names the same, once" "$(cut -d' ' -f1-5 <<< "$ERRORS" | paste -sd';')" \
  "Encounter/fl-enc-old is referenced by resources"
whole_export "$HTTP_TMP/refs-batched"
same_files "... and an export of every type writes the same files, the shared resources with them" \
  "$HTTP_TMP/refs-whole" "$HTTP_TMP/refs-batched"
expect_eq "... and the same error file" "$(cat "$HTTP_TMP/refs-batched/errors.json")" "$(cat "$HTTP_TMP/refs-whole/errors.json")"
expect_eq "... and nothing is left waiting in export_ref" \
  "$(psql_q "SELECT count(*) FROM export_ref WHERE type LIKE '+%' OR type LIKE '-%'")" "0"
"$REPO/scripts/pa-stack" restart-runner > /dev/null 2>&1

psql_q "DELETE FROM resource WHERE id LIKE 'fl-%' OR id LIKE 'rb-%'" > /dev/null
