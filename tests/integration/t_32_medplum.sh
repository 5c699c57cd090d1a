# An independent Bulk Data client from npm (@medplum/cli) runs a Group and a
# Patient-level export against us, handed a token (it does not do SMART
# Backend Services itself), and downloads exactly what our own client does.

MEDPLUM_VERSION=4.3.13
MP=$HTTP_TMP/medplum
mkdir -p "$MP"
npm_out=$(cd "$MP" && npm install --no-audit --no-fund --loglevel=error "@medplum/cli@$MEDPLUM_VERSION" 2>&1)
expect_eq "@medplum/cli $MEDPLUM_VERSION installs from npm" "$?" 0 || echo "$npm_out" | tail -5

ensure_token
medplum_export() {  # medplum_export LEVEL DIR: runs medplum bulk export into DIR
  rm -rf "$2"; mkdir -p "$2"
  (cd "$2" && MEDPLUM_BASE_URL="${BASE%/fhir}/" MEDPLUM_FHIR_URL_PATH=fhir/ MEDPLUM_CLIENT_ACCESS_TOKEN=$TOKEN \
     timeout 300 "$MP/node_modules/.bin/medplum" bulk export -e "$1" > "$2.log" 2>&1)
}
by_type() {  # by_type DIR: "Type lines sha" per type, of the sorted lines of its files
  local t lines
  for t in $(cat "$1"/* 2>/dev/null | jq -r .resourceType | sort -u); do
    lines=$(cat "$1"/* | jq -c "select(.resourceType == \"$t\")" | sort)
    echo "$t $(wc -l <<< "$lines") $(sha256sum <<< "$lines" | cut -c1-16)"
  done
}
ours() {  # ours PATH DIR: our own client's export (kick-off PATH) into DIR
  rm -rf "$2"
  http GET "$BASE/$1" -H 'Accept: application/fhir+json' -H 'Prefer: respond-async'
  JOB_URL=$(header Content-Location)
  wait_job "$JOB_URL" 120
  download_all "$BODY" "$2"
  http DELETE "$JOB_URL"
}

medplum_export Group/small "$MP/group"
expect_eq "medplum's Group export completes" "$?" 0 || tail -5 "$MP/group.log"
ours 'Group/small/$export' "$HTTP_TMP/ours-group"
expect_true "... with data" test "$(cat "$MP"/group/* 2>/dev/null | wc -l)" -gt 0
expect_eq "... and downloads what our client gets, type by type" "$(by_type "$MP/group")" "$(by_type "$HTTP_TMP/ours-group")"

medplum_export Patient "$MP/patient"
expect_eq "medplum's Patient-level export completes" "$?" 0 || tail -5 "$MP/patient.log"
ours 'Patient/$export' "$HTTP_TMP/ours-patient"
expect_true "... with data" test "$(cat "$MP"/patient/* 2>/dev/null | wc -l)" -gt 0
expect_eq "... and downloads what our client gets, type by type" "$(by_type "$MP/patient")" "$(by_type "$HTTP_TMP/ours-patient")"
