# Who received what about whom: every export records, member by member, what
# was exported (types, _since) and what an opt-out withheld; the records are
# append-only; pa-admin disclosures and pa-admin audit --export answer for a
# member or a client.  (Matches' records: t_14 and t_15.)

q() { psql_q "$1"; }
admin() { "$PA_ROOT/bin/pa-admin" --config "$PA_ROOT/provider-access.conf" "$@"; }
job_id() { echo "${1##*/}"; }
rows() { q "SELECT string_agg(patient_id || ' ' || outcome || coalesce(' ' || reason, ''), ',' ORDER BY patient_id)
            FROM disclosure WHERE job_id = '$1'"; }

# an export of the small roster, p2 having opted out of every provider
q "INSERT INTO opt_out (patient_id, scope, period_start) VALUES ('p2', 'global', current_date - 1)" > /dev/null
kickoff small -G --data-urlencode '_type=Patient,Observation' --data-urlencode '_since=2001-02-03T04:05:06Z'
wait_job "$JOB_URL" 60
expect_eq "the export completes" "$STATUS" 200
j1=$(job_id "$JOB_URL")
expect_eq "every member has a record: exported, or withheld for an opt-out" "$(rows "$j1")" \
  "ghost exported,p1 exported,p2 withheld opted-out,p300 exported"
expect_eq "... naming the client, its NPI, the Group and the request" \
  "$(q "SELECT DISTINCT client_id || ' ' || npi || ' ' || group_id || ' ' || (request_id IS NOT NULL) FROM disclosure WHERE job_id = '$j1'")" \
  "$CLIENT_ID 1234567893 small true"
expect_eq "... and the types and _since asked" \
  "$(q "SELECT DISTINCT types || ' ' || to_char(since AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || ' ' || (until IS NULL) FROM disclosure WHERE job_id = '$j1'")" \
  "Patient,Observation 2001-02-03T04:05:06 true"
expect_eq "the members written are kept only while the job runs" "$(q "SELECT count(*) FROM export_member WHERE job_id = '$j1'")" 0

# append-only
for stmt in "DELETE FROM disclosure WHERE job_id = '$j1'" "UPDATE disclosure SET outcome = 'exported' WHERE job_id = '$j1'" \
            "TRUNCATE disclosure"; do
  out=$(q "$stmt" 2>&1)
  expect_match "the records are append-only: ${stmt%% *} is refused" "$out" "append-only"
done
expect_eq "... and all still there" "$(q "SELECT count(*) FROM disclosure WHERE job_id = '$j1'")" 4

# pa-admin disclosures
out=$(admin disclosures --patient Patient/p2 --no-header)
expect_match "pa-admin disclosures --patient: who received (or was refused) the member's data" "$out" \
  "$CLIENT_ID	1234567893	export	withheld	opted-out	p2		small	$j1"
expect_eq "... the member's records only" "$(cut -f7 <<< "$out" | sort -u)" p2
out=$(admin disclosures --client "$CLIENT_ID" --no-header)
expect_eq "pa-admin disclosures --client: the client's records" "$(grep -c "	$j1	" <<< "$out")" 4
expect_eq "--since leaves out what came before" "$(admin disclosures --client "$CLIENT_ID" --since 2999-01-01 --no-header | wc -l)" 0
admin disclosures > /dev/null 2>&1
expect_eq "a member or a client is required (usage, exit 2)" "$?" 2
admin disclosures --patient p2 --since yesterday > /dev/null 2>&1
expect_eq "a bad --since is refused (exit 2)" "$?" 2

# AuditEvents with the member as entity
ae=$(admin audit --export --client "$CLIENT_ID" --limit 100000 | jq -c --arg j "$j1" \
  'select(.id | startswith("di-")) | select(any(.entity[]; .what.identifier.value? == $j))')
expect_eq "pa-admin audit --export has an AuditEvent per record" "$(wc -l <<< "$ae")" 4
p2e=$(jq -c 'select(.entity[0].what.reference == "Patient/p2")' <<< "$ae")
expect_eq "... the member as entity (patient role), what happened in its details" \
  "$(jq -r '[.entity[0].role.code, (.entity[0].detail[] | .type + "=" + .valueString)] | join(" ")' <<< "$p2e")" \
  "1 outcome=withheld reason=opted-out _type=Patient,Observation _since=2001-02-03T04:05:06.000Z"
expect_eq "... an Export by the client for treatment" \
  "$(jq -r '[.type.code, .action, .agent[0].who.identifier.value, .purposeOfEvent[0].coding[0].code] | join(" ")' <<< "$p2e")" \
  "110106 R $CLIENT_ID TREAT"
q "DELETE FROM opt_out WHERE patient_id = 'p2'" > /dev/null

# a cancelled export disclosed nothing, and records nothing
kickoff big
big=$JOB_URL
# running before it is cancelled
wait_for 30 eval "[ \"\$(q \"SELECT state FROM job WHERE id = '$(job_id "$big")'\")\" = running ]"
http DELETE "$big"
expect_eq "a running export is cancelled" "$STATUS" 202
# the worker hears it at its next checkpoint, and drops what it kept
wait_for 10 eval "[ \"\$(q \"SELECT count(*) FROM export_member WHERE job_id = '$(job_id "$big")'\")\" = 0 ]"
expect_eq "a cancelled export has no disclosure record" "$(q "SELECT count(*) FROM disclosure WHERE job_id = '$(job_id "$big")'")" 0
expect_eq "... nor members kept" "$(q "SELECT count(*) FROM export_member WHERE job_id = '$(job_id "$big")'")" 0

# nothing is served that is not recorded: with the records refused, an export fails
# (no files, no manifest) and a synchronous match answers 500 and stores nothing
q "CREATE FUNCTION refuse_disclosure() RETURNS trigger LANGUAGE plpgsql AS \$\$
   BEGIN RAISE EXCEPTION 'refused for the test'; END \$\$;
   CREATE TRIGGER refuse_disclosure BEFORE INSERT ON disclosure FOR EACH ROW EXECUTE FUNCTION refuse_disclosure()" > /dev/null
kickoff small
wait_job "$JOB_URL" 60
expect_outcome "an export whose disclosures cannot be recorded fails, never completes" 500 "the export failed"
expect_eq "... and leaves no files to serve" "$(ls "$PA_ROOT/data/jobs/$(job_id "$JOB_URL")" 2> /dev/null | wc -l)" 0
groups_before=$(q "SELECT count(*) FROM matched_group")
http POST "$BASE/Group/\$provider-member-match" -H 'Accept: application/fhir+json' -H 'Content-Type: application/fhir+json' \
  --data '{"resourceType":"Parameters","parameter":[{"name":"MemberBundle","part":[{"name":"MemberPatient",
    "resource":{"resourceType":"Patient","id":"nobody","name":[{"family":"Nobody","given":["No"]}],"birthDate":"1970-01-01"}}]}]}'
expect_outcome "a synchronous match whose disclosures cannot be recorded answers 500" 500 "database refused a statement"
expect_eq "... and stores no Matched Group" "$(q "SELECT count(*) FROM matched_group")" "$groups_before"
q "DROP TRIGGER refuse_disclosure ON disclosure; DROP FUNCTION refuse_disclosure()" > /dev/null
kickoff small
wait_job "$JOB_URL" 60
expect_eq "with the records writable again, the same export completes" "$STATUS" 200
