# pa-admin load FOLDER takes its subfolders too, in name order (hidden ones
# skipped), and says so when a folder cannot be read.

admin() { "$PA_ROOT/bin/pa-admin" --config "$PA_ROOT/provider-access.conf" "$@"; }
pat() { printf '{"resourceType":"Patient","id":"%s"}\n' "$1"; }
d=$HTTP_TMP/extract
mkdir -p "$d/2024/01" "$d/2024/02/late" "$d/.cache"
pat lf-top > "$d/top.ndjson"
pat lf-jan > "$d/2024/01/patients.ndjson"
pat lf-feb > "$d/2024/02/patients.ndjson"
pat lf-late | gzip > "$d/2024/02/late/patients.ndjson.gz"
pat lf-hidden > "$d/.cache/patients.ndjson"
echo "not data" > "$d/2024/README.txt"
out=$(admin load "$d" 2>&1); rc=$?
expect_eq "a folder loads with its subfolders" "$rc" 0
expect_eq "... every loadable file in them, hidden folders and other files left alone" \
  "$(psql_q "SELECT string_agg(id, ' ' ORDER BY id) FROM resource WHERE type = 'Patient' AND id LIKE 'lf-%'")" \
  "lf-feb lf-jan lf-late lf-top"
expect_match "... and says how many it loaded" "$out" "^loaded 4 resources"
mkdir -p "$d/2024/locked"
chmod 000 "$d/2024/locked"
if [ "$(id -u)" = 0 ]; then
  # root reads any folder: make one unreadable for it by a name that is no folder any more
  rmdir "$d/2024/locked"; ln -s /nonexistent "$d/2024/locked"
fi
out=$(admin load "$d" 2>&1); rc=$?
expect_eq "a folder entry that cannot be read fails the load" "$rc" 2
expect_match "... naming it" "$out" "cannot read $d/2024/locked"
rm -rf "$d"
psql_q "DELETE FROM resource WHERE type = 'Patient' AND id LIKE 'lf-%'" > /dev/null

# a first load into an empty store puts its rows straight in; a resource it
# meets twice (in one batch, in two) is merged as any load would merge it
psql_q "DROP DATABASE IF EXISTS first_load" > /dev/null 2>&1
psql_q "CREATE DATABASE first_load" > /dev/null
fconf=$HTTP_TMP/first.conf
sed 's/dbname=provider_access/dbname=first_load/' "$PA_ROOT/provider-access.conf" > "$fconf"
"$PA_ROOT/bin/pa-admin" --config "$fconf" migrate --sql-dir "$REPO/sql" > /dev/null
npi_of() { printf '{"resourceType":"Practitioner","id":"%s","identifier":[{"system":"http://hl7.org/fhir/sid/us-npi","value":"1234567893"}],"name":[{"family":"%s"}]}\n' "$1" "$2"; }
{
  npi_of fl-npi-a First
  for i in $(seq 0 5999); do printf '{"resourceType":"Patient","id":"fl-%d","gender":"female"}\n' "$i"; done
  echo '{"resourceType":"Patient","id":"fl-0","gender":"male"}'
  echo '{"resourceType":"Patient","id":"fl-5999","gender":"other"}'
  # the same NPI on another practitioner, in a later batch (stored while
  # the first may still be): the directory names the last
  npi_of fl-npi-b Last
} > "$HTTP_TMP/first.ndjson"
echo '{"resourceType":"Patient","id":"fl-1","gender":"unknown"}' > "$HTTP_TMP/first2.ndjson"
out=$("$PA_ROOT/bin/pa-admin" --config "$fconf" load "$HTTP_TMP/first.ndjson" "$HTTP_TMP/first2.ndjson" 2>&1); rc=$?
expect_eq "a first load with repeated resources loads" "$rc" 0
expect_match "... counting each resource once as new, a later line as an update (a repeat within a batch: unchanged, as always)" "$out" '^loaded 6005 resources \(6002 new, 2 updated, 1 unchanged\)'
expect_eq "... the last line of each resource wins" \
  "$(psql_q "SELECT string_agg(id || '=' || (json::jsonb->>'gender'), ' ' ORDER BY id) FROM resource WHERE id IN ('fl-0', 'fl-1', 'fl-5999')" first_load)" \
  "fl-0=male fl-1=unknown fl-5999=other"
expect_eq "... every member derived" "$(psql_q "SELECT count(*), count(*) FILTER (WHERE gender = 'male') FROM member" first_load)" "6000|1"
expect_eq "... and an NPI given twice names its last practitioner in the directory" \
  "$(psql_q "SELECT resource_id || ' ' || name FROM provider WHERE npi = '1234567893'" first_load)" "fl-npi-b Last"
# an NPI far too long to be one: stored, with a warning, and kept out of the directory
long_npi=$(printf '1%.0s' $(seq 1 100))
npi_of fl-npi-long Long | sed "s/1234567893/$long_npi/" > "$HTTP_TMP/long-npi.ndjson"
out=$("$PA_ROOT/bin/pa-admin" --config "$fconf" load "$HTTP_TMP/long-npi.ndjson" 2>&1)
expect_match "a practitioner whose NPI is 100 digits is stored with a warning" "$out" "fails its check digit"
expect_eq "... and is not in the directory" \
  "$(psql_q "SELECT count(*) FROM resource WHERE id = 'fl-npi-long'" first_load)|$(psql_q "SELECT count(*) FROM provider WHERE resource_id = 'fl-npi-long'" first_load)" \
  "1|0"
expect_eq "... and meta.lastUpdated is each row's change time" \
  "$(psql_q "SELECT count(*) FROM resource WHERE json::jsonb->'meta'->>'lastUpdated' <> to_char(last_updated AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')" first_load)" 0
psql_q "DROP DATABASE IF EXISTS first_load" > /dev/null 2>&1
