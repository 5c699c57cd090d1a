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

psql_q "DELETE FROM resource WHERE id LIKE 'fl-%'" > /dev/null
