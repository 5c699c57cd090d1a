# $davinci-data-export on the synthetic payer (loaded by t_08): parameters,
# rejections, opt-outs, filters, the service-date floor, the EOB view.

admin() { "$PA_ROOT/bin/pa-admin" --config "$PA_ROOT/provider-access.conf" "$@"; }
q() { psql_q "$1"; }
# a client acting for the organization of roster-org-0
org_npi=$(q "SELECT org_npi FROM roster WHERE id = 'roster-org-0'")
creds=$(admin client add --name "Org 0 EHR" --npi "$org_npi" --secret 2> /dev/null)
ORG_TOKEN=$(token_for "$(sed -n 1p <<< "$creds")" "$(sed -n 2p <<< "$creds")")
fin=$(admin client add --name "Org 0 VBC" --npi "$org_npi" --secret --financial 2> /dev/null)
FIN_TOKEN=$(token_for "$(sed -n 1p <<< "$fin")" "$(sed -n 2p <<< "$fin")")
as_org() { NOAUTH=1 http "$1" "$2" -H "Authorization: Bearer ${3:-$ORG_TOKEN}" "${@:4}"; }
dx() {  # dx [curl args]: kick off $davinci-data-export of roster-org-0 as the org's client
  as_org POST "$BASE/Group/roster-org-0/\$davinci-data-export" "$ORG_TOKEN" -H 'Accept: application/fhir+json' \
    -H 'Prefer: respond-async' "$@"
  JOB_URL=$(header Content-Location)
}
params() {  # params NAME=VALUE...: a Parameters body
  local out='{"resourceType":"Parameters","parameter":[' sep='' kv
  for kv in "$@"; do
    out+="$sep$(jq -cn --arg n "${kv%%=*}" --arg v "${kv#*=}" '{name: $n, valueString: $v}')"; sep=,
  done
  printf '%s]}' "$out"
}
wait_as() {  # wait_as URL [TOKEN]: polls as the org's client until done; sets STATUS/BODY
  local deadline=$((SECONDS + 60))
  while :; do
    as_org GET "$1" "${2:-$ORG_TOKEN}" -H 'Accept: application/json'
    { [ "$STATUS" = 202 ] || [ "$STATUS" = 429 ]; } || return 0
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.2
  done
}
fetch_all() {  # fetch_all TYPE [TOKEN]: every line of the manifest's TYPE files
  local u
  for u in $(jq -r --arg t "$1" '.output[] | select(.type == $t) | .url' <<< "$MANIFEST"); do
    curl -s -H "Authorization: Bearer ${2:-$ORG_TOKEN}" "$u"
  done
}
# the members an export of roster-org-0 covers today
MEMBERS="SELECT patient_id FROM roster_member m WHERE roster_id = 'roster-org-0' AND NOT inactive
  AND NOT EXISTS (SELECT 1 FROM opt_out o WHERE o.patient_id = m.patient_id AND NOT o.revoked
    AND o.period_start <= current_date AND (o.period_end IS NULL OR o.period_end >= current_date)
    AND (o.scope = 'global' OR o.npi = '$org_npi'))"

dx -H 'Content-Type: application/fhir+json' --data "$(params exportType=hl7.fhir.us.davinci-pdex#provider-download \
  _type=Patient,Coverage,ExplanationOfBenefit,Observation,Organization,Practitioner)"
expect_eq "\$davinci-data-export with Parameters answers 202" "$STATUS" 202
wait_as "$JOB_URL"
expect_eq "the export completes" "$STATUS" 200
MANIFEST=$BODY
expect_eq "the manifest lists only the requested types" \
  "$(jq -r '[.output[].type] | unique | join(",")' <<< "$MANIFEST")" "Coverage,ExplanationOfBenefit,Observation,Organization,Patient,Practitioner"
expect_eq "manifest.request is the kick-off URL" "$(jq -r .request <<< "$MANIFEST")" "$BASE/Group/roster-org-0/\$davinci-data-export"
# the references to shared resources the chunks gathered go when the job ends
# (its durable record is updated just after Redis says it is done)
refs_left() { q "SELECT count(*) FROM export_ref WHERE job_id = '${JOB_URL##*/}'"; }
deadline=$((SECONDS + 10))
while [ "$(refs_left)" != 0 ] && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
expect_eq "the references the export gathered are removed when it ends" "$(refs_left)" 0
got=$(fetch_all Patient | jq -r .id | sort | tr '\n' ' ')
want=$(q "SELECT string_agg(patient_id, ' ' ORDER BY patient_id) FROM ($MEMBERS) s")
expect_eq "exactly the Group's members, without the opted-out" "$got" "$want "
expect_eq "no opted-out member's data is exported" \
  "$(fetch_all Observation | jq -r .subject.reference | sort -u | sed 's|Patient/||' | grep -cxF -f <(q "SELECT patient_id FROM opt_out WHERE scope = 'global'") || true)" 0
eobs=$(fetch_all ExplanationOfBenefit)
expect_eq "every EOB of the members since the floor is exported" "$(wc -l <<< "$eobs")" \
  "$(q "SELECT count(*) FROM resource WHERE type = 'ExplanationOfBenefit' AND patient_id IN ($MEMBERS) AND coalesce(clin_end, clin_start, created) >= '2016-01-01'")"
expect_eq "nothing with a service date before 2016 is exported" \
  "$(jq -r '.billablePeriod.end // .billablePeriod.start // empty' <<< "$eobs" | awk '$1 < "2016-01-01"' | wc -l)" 0
expect_eq "a provider client gets EOBs without financial elements" \
  "$(jq -c 'select(has("total") or has("payment") or (.. | objects | has("amount")))' <<< "$eobs" | wc -l)" 0
expect_eq "... under the Basis profiles" \
  "$(jq -r '.meta.profile[]' <<< "$eobs" | grep C4BB | grep -vc -- '-Basis' || true)" 0
pracs=$(fetch_all Practitioner | jq -r .id | sort)
expect_eq "only the practitioners the exported resources reference" "$(tr '\n' ' ' <<< "$pracs")" \
  "$(q "SELECT string_agg(DISTINCT substr(t, 18), ' ' ORDER BY substr(t, 18)) FROM resource r, unnest(r.tokens) t
        WHERE r.patient_id IN ($MEMBERS) AND r.type IN ('Patient','Coverage','ExplanationOfBenefit','Observation')
        AND t LIKE 'ref=Practitioner/%'") "
# files are split at export_file_max_bytes (16 KiB in this stack)
files=$(jq -r '.output[] | select(.type == "Observation") | .url' <<< "$MANIFEST")
expect_true "a large type is split into several files" test "$(wc -l <<< "$files")" -gt 1
sizes_ok=1
for u in $files; do
  n=$(curl -s -H "Authorization: Bearer $ORG_TOKEN" "$u" | wc -c)
  [ "$n" -le 16384 ] || sizes_ok=0
done
expect_eq "no file is over the limit" "$sizes_ok" 1
expect_eq "the files' counts add up to the lines" "$(jq '[.output[] | select(.type == "Observation") | .count] | add' <<< "$MANIFEST")" \
  "$(fetch_all Observation | grep -c .)"
expect_eq "split files are numbered in order" \
  "$(for u in $files; do basename "$u"; done | tr '\n' ' ')" "$(for i in $(seq 1 "$(wc -l <<< "$files")"); do printf 'Observation-%d.ndjson ' "$i"; done)"
as_org DELETE "$JOB_URL"

as_org POST "$BASE/Group/roster-org-0/\$davinci-data-export" "$FIN_TOKEN" -H 'Accept: application/fhir+json' \
  -H 'Prefer: respond-async' -H 'Content-Type: application/fhir+json' --data "$(params _type=ExplanationOfBenefit)"
fin_url=$(header Content-Location)
wait_as "$fin_url" "$FIN_TOKEN"
MANIFEST=$BODY
expect_true "a financial client gets EOBs with their financial elements" \
  eval "fetch_all ExplanationOfBenefit '$FIN_TOKEN' | jq -e 'select(has(\"total\"))' > /dev/null"
as_org DELETE "$fin_url" "$FIN_TOKEN"

# _typeFilter, evaluated in SQL
dx --get --data-urlencode '_type=Observation' --data-urlencode '_typeFilter=Observation?code=http://loinc.org|4548-4'
wait_as "$JOB_URL"
MANIFEST=$BODY
obs=$(fetch_all Observation)
expect_eq "_typeFilter code=system|code keeps only those Observations" "$(jq -r '.code.coding[0].code' <<< "$obs" | sort -u)" 4548-4
expect_eq "... all of them" "$(grep -c . <<< "$obs")" \
  "$(q "SELECT count(*) FROM resource WHERE type = 'Observation' AND patient_id IN ($MEMBERS) AND tokens @> '{code=http://loinc.org|4548-4}'")"
as_org DELETE "$JOB_URL"
dx --get --data-urlencode '_type=ExplanationOfBenefit' \
  --data-urlencode '_typeFilter=ExplanationOfBenefit?service-date=ge2024-01-01&type=pharmacy' \
  --data-urlencode '_typeFilter=ExplanationOfBenefit?use=preauthorization'
wait_as "$JOB_URL"
MANIFEST=$BODY
eobs=$(fetch_all ExplanationOfBenefit)
expect_eq "_typeFilter queries are OR'ed, their parameters AND'ed" \
  "$(jq -r 'select(.use != "preauthorization" and (.type.coding[0].code != "pharmacy" or .billablePeriod.start < "2024-01-01")) | .id' <<< "$eobs" | wc -l)" 0
expect_eq "... and nothing that matches is left out" "$(grep -c . <<< "$eobs")" \
  "$(q "SELECT count(*) FROM resource WHERE type = 'ExplanationOfBenefit' AND patient_id IN ($MEMBERS)
        AND coalesce(clin_end, clin_start, created) >= '2016-01-01'
        AND ((clin_start >= '2024-01-01' AND tokens && '{type=pharmacy}') OR tokens && '{use=preauthorization}')")"
as_org DELETE "$JOB_URL"
# PDex's portable filter for prior authorizations: by profile
dx --get --data-urlencode '_type=ExplanationOfBenefit' \
  --data-urlencode '_typeFilter=ExplanationOfBenefit?_profile=http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-priorauthorization'
wait_as "$JOB_URL"
MANIFEST=$BODY
eobs=$(fetch_all ExplanationOfBenefit)
expect_eq "_typeFilter ExplanationOfBenefit?_profile=...pdex-priorauthorization keeps the prior authorizations" \
  "$(jq -r '.use' <<< "$eobs" | sort -u)" preauthorization
expect_eq "... all of them" "$(grep -c . <<< "$eobs")" \
  "$(q "SELECT count(*) FROM resource WHERE type = 'ExplanationOfBenefit' AND patient_id IN ($MEMBERS)
        AND coalesce(clin_end, clin_start, created) >= '2016-01-01' AND tokens && '{use=preauthorization}'")"
as_org DELETE "$JOB_URL"

for bad in 'Observation?value-quantity=5|parameter .value-quantity. is not supported' \
           'Observation?code:not=x|modifier' 'Observation?date=ne2020|prefix' 'Claim?status=x|Claim' \
           'Observation?code=http://loinc.org%7C|system without a code' 'Observation|not Type?parameters'; do
  dx --get --data-urlencode "_typeFilter=${bad%%|*}"
  expect_outcome "_typeFilter ${bad%%|*} is refused, not ignored" 400 "$(sed 's/\./ /g' <<< "${bad#*|}" | cut -d' ' -f1)"
done
dx --get --data-urlencode '_type=Patient' --data-urlencode '_typeFilter=Observation?status=final'
expect_outcome "a _typeFilter for a type _type does not ask for is refused" 400 "_type does not ask for"
dx --get --data-urlencode 'exportType=hl7.fhir.us.davinci-pdex#provider-delta'
expect_outcome "provider-delta without _since is refused" 400 "provider-delta needs _since"
dx --get --data-urlencode 'exportType=hl7.fhir.us.davinci-pdex#payertopayer'
expect_outcome "another exportType is refused" 400 "exportType"
dx --get --data-urlencode 'organizeOutputBy=Patient'
expect_outcome "an unsupported parameter (Bulk Data 3.0's organizeOutputBy) is refused, not ignored" 400 "organizeOutputBy"
dx --get --data-urlencode '_since=2024-01-01T00:00:00Z' --data-urlencode '_until=2023-01-01T00:00:00Z'
expect_outcome "_since after _until is refused" 400 "before _until"

# patient: a subset; what is not a member is reported in error[]
member=$(q "SELECT min(patient_id) FROM ($MEMBERS) s")
dx -H 'Content-Type: application/fhir+json' --data "$(jq -cn --arg m "Patient/$member" \
  '{resourceType:"Parameters",parameter:[{name:"_type",valueString:"Patient"},
    {name:"patient",valueReference:{reference:$m}},{name:"patient",valueReference:{reference:"Patient/p1"}},
    {name:"patient",valueReference:{reference:"Observation/x"}}]}')"
wait_as "$JOB_URL"
MANIFEST=$BODY
expect_eq "patient exports only the named members" "$(fetch_all Patient | jq -r .id)" "$member"
errs=$(curl -s -H "Authorization: Bearer $ORG_TOKEN" "$(jq -r '.error[0].url' <<< "$MANIFEST")")
expect_eq "the others are reported as OperationOutcomes in error[]" "$(jq -r .resourceType <<< "$errs" | sort -u)" OperationOutcome
expect_true "... naming the non-member" grep -q "Patient/p1 is not a member of Group/roster-org-0" <<< "$errs"
expect_true "... and the reference that is no Patient" grep -q "'Observation/x' is not a Patient reference" <<< "$errs"
as_org DELETE "$JOB_URL"
dx --get --data-urlencode '_type=Patient' --data-urlencode "patient=Patient/$member,Patient/p1"
wait_as "$JOB_URL"
MANIFEST=$BODY
expect_eq "a comma-separated patient query parameter names each reference" "$(fetch_all Patient | jq -r .id)" "$member"
expect_true "... and reports the non-member among them" grep -q "Patient/p1 is not a member of Group/roster-org-0" \
  <<< "$(curl -s -H "Authorization: Bearer $ORG_TOKEN" "$(jq -r '.error[0].url' <<< "$MANIFEST")")"
as_org DELETE "$JOB_URL"

# _since: changes and tombstones
# to the millisecond: what was loaded before is before it, the delete after
since=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
gone=$(q "SELECT id FROM resource WHERE type = 'Observation' AND patient_id = '$member' LIMIT 1")
admin delete "Observation/$gone" > /dev/null
dx --get --data-urlencode "_since=$since" --data-urlencode '_type=Observation,Patient'
wait_as "$JOB_URL"
MANIFEST=$BODY
expect_eq "with _since, nothing unchanged is exported" "$(jq '.output | length' <<< "$MANIFEST")" 0
del=$(curl -s -H "Authorization: Bearer $ORG_TOKEN" "$(jq -r '.deleted[0].url' <<< "$MANIFEST")")
expect_eq "deleted[] lists the tombstone as a DELETE Bundle" \
  "$(jq -r '.type + " " + .entry[0].request.method + " " + .entry[0].request.url' <<< "$del")" "transaction DELETE Observation/$gone"
as_org DELETE "$JOB_URL"

# polling faster than allowed
dx --get --data-urlencode '_type=Patient'
as_org GET "$JOB_URL"; as_org GET "$JOB_URL"
expect_outcome "polling faster than allowed answers 429" 429 "polled too often"
expect_eq "429 advises Retry-After" "$(header Retry-After)" 1
sleep 0.2
as_org DELETE "$JOB_URL"

# an opt-out recorded after the kick-off is honoured at run time
kickoff big
late=p399
q "INSERT INTO opt_out (patient_id, scope, period_start) VALUES ('$late', 'global', current_date)" > /dev/null
wait_job "$JOB_URL" 120
download_all "$BODY" "$HTTP_TMP/late"
expect_eq "a member who opted out after kick-off is not exported" "$(cat "$HTTP_TMP"/late/* | jq -r .id | grep -cx "$late" || true)" 0
expect_eq "the others still are" "$(cat "$HTTP_TMP"/late/* | grep -c .)" 399
expect_eq "... and its disclosure record says withheld for the opt-out, the others exported" \
  "$(q "SELECT string_agg(DISTINCT outcome || coalesce(' ' || reason, ''), ',') FILTER (WHERE patient_id = '$late')
        || ' ' || count(*) FILTER (WHERE outcome = 'exported') FROM disclosure WHERE job_id = '${JOB_URL##*/}'")" \
  "withheld opted-out 399"
q "DELETE FROM opt_out WHERE patient_id = '$late'" > /dev/null
http DELETE "$JOB_URL"

# provider-download remembers who got what; the Group shows it to that client
dx -H 'Content-Type: application/fhir+json' --data "$(params _type=Patient,Observation '_typeFilter=Observation?category=laboratory')"
dl_job=${JOB_URL##*/}
wait_as "$JOB_URL"
expect_eq "a provider-download records each member it gave" \
  "$(q "SELECT count(*) FROM download_record WHERE job_id = '$dl_job'")" "$(q "SELECT count(*) FROM ($MEMBERS) s")"
expect_eq "pa-admin downloads lists them" \
  "$(admin downloads --client "$(sed -n 1p <<< "$creds")" --no-header | grep -c "	$dl_job	Patient,Observation	Observation?category=laboratory$")" \
  "$(q "SELECT count(*) FROM ($MEMBERS) s")"
as_org GET "$BASE/Group/roster-org-0"
expect_eq "by default (PDex 2.2.0) the roster's members carry no 2.1.0 extensions" \
  "$(jq_body '[.member[].extension // [] | .[] | select(.url | test("base-ext-last-"))] | length')" 0
# a payer serving 2.1.0 clients turns them on
legacy_conf() {  # legacy_conf 0|1
  sed -i '/^pdex_member_extensions/d' "$PA_ROOT/provider-access.conf"
  echo "pdex_member_extensions = $1" >> "$PA_ROOT/provider-access.conf"
  apache_graceful
}
legacy_conf 1
as_org GET "$BASE/Group/roster-org-0"
first=$(q "SELECT min(patient_id) FROM ($MEMBERS) s")
ext=$(jq_body --arg p "Patient/$first" '.member[] | select(.entity.reference == $p) | .extension')
expect_eq "the roster's members carry lastResources and lastFilters" \
  "$(jq -r '[.[] | select(.url | endswith("last-types") or endswith("last-typefilter")) | .valueString] | join(" ")' <<< "$ext")" \
  "Patient,Observation Observation?category=laboratory"
expect_match "... and lastTransmitted, the export's transactionTime" \
  "$(jq -r '.[] | select(.url | endswith("last-transmission")) | .valueDateTime' <<< "$ext")" '^20[0-9-]+T[0-9:.]+Z$'
as_org GET "$BASE/Group/roster-org-0" "$FIN_TOKEN"
expect_eq "another client sees only what it got itself" \
  "$(jq_body '[.member[].extension // [] | .[] | select(.url | endswith("last-types")) | .valueString] | unique | join(" ")')" \
  "ExplanationOfBenefit"
as_org DELETE "$JOB_URL"
until_at=$(date -u -d '-1 day' +%Y-%m-%dT%H:%M:%S.000Z)
dx --get --data-urlencode '_type=Patient' --data-urlencode "_until=$until_at"
wait_as "$JOB_URL"
as_org GET "$BASE/Group/roster-org-0"
expect_eq "lastTransmitted is _until when that is earlier than the kick-off" \
  "$(jq_body -r --arg p "Patient/$first" '.member[] | select(.entity.reference == $p) | .extension[] | select(.url | endswith("last-transmission")) | .valueDateTime')" \
  "$until_at"
legacy_conf 0
as_org DELETE "$JOB_URL"
dx --get --data-urlencode 'exportType=hl7.fhir.us.davinci-pdex#provider-snapshot' --data-urlencode '_type=Patient'
wait_as "$JOB_URL"
expect_eq "other export types record nothing" "$(q "SELECT count(*) FROM download_record WHERE job_id = '${JOB_URL##*/}'")" 0
as_org DELETE "$JOB_URL"
