# pa-admin report: a week of known requests (written as the service records
# them) judged against the one-business-day rule, per provider figures from
# the audit trail and the disclosure records, in every format; then the
# report of today's real traffic.

q() { psql_q "$1"; }
admin() { "$PA_ROOT/bin/pa-admin" --config "$PA_ROOT/provider-access.conf" "$@"; }
odd=$(admin client add --name 'Clinic <b>"A&B", Inc</b>' --npi 1245319599 --secret 2> /dev/null | sed -n 1p)
A=$CLIENT_ID
job() {  # job ID KIND OWNER CREATED FINISHED STATE [ERROR]
  q "INSERT INTO job (id, kind, owner, state, request, params, transaction_time, created_at, finished_at, error, request_id)
     VALUES ('$1', '$2', '$3', '$6', 'x', '{\"npi\": \"1234567893\"}', '$4', '$4', nullif('$5', '')::timestamptz,
     nullif('${7:-}', ''), 'r-$1')" > /dev/null
}
# Monday 2 March 2026 to Monday 9 March (New York's clocks go forward on Sunday the 8th)
job rep-e1 export "$A" 2026-03-02T10:00:00Z 2026-03-02T10:00:30Z completed            # 30 s
job rep-e2 export "$A" 2026-03-06T15:00:00Z 2026-03-09T14:00:00Z completed            # Friday to Monday, in time
job rep-e3 export "$A" 2026-03-06T15:00:00Z 2026-03-09T16:00:00Z expired              # an hour late (then expired)
job rep-e4 export "$A" 2026-03-03T09:00:00Z 2026-03-03T09:00:10Z failed 'it failed'   # never answered
job rep-e5 export "$A" 2026-03-04T09:00:00Z 2026-03-04T09:00:01Z cancelled            # not counted
job rep-m1 match "$A" 2026-03-07T10:00:00Z 2026-03-09T23:00:00Z completed             # Saturday: all of Monday
job rep-m2 match "$A" 2026-03-07T02:00:00Z 2026-03-10T00:30:00Z completed             # Saturday in UTC, Friday in New York
q "INSERT INTO audit_event (at, request_id, client_id, npi, method, endpoint, operation, members, outcome, status, duration_ms)
   VALUES ('2026-03-04T12:00:00Z', 'rep-s1', '$odd', '1245319599', 'POST', '/Group/\$provider-member-match', 'member-match', 3, 'success', 200, 120),
          ('2026-03-04T12:05:00Z', 'rep-s2', '$odd', '1245319599', 'POST', '/Group/\$provider-member-match', 'member-match', 3, 'refused', 429, 2),
          ('2026-03-04T12:00:01Z', 'rep-s1', '$odd', '1245319599', 'JOB', '/Group/\$provider-member-match', 'member-match-result', 3, 'success', 200, 120)" > /dev/null
q "INSERT INTO disclosure (at, client_id, npi, operation, request_id, job_id, group_id, entry, submitted, patient_id, outcome, reason) VALUES
   ('2026-03-02T10:00:30Z', '$A', '1234567893', 'export', 'r-rep-e1', 'rep-e1', 'small', NULL, NULL, 'p1', 'exported', NULL),
   ('2026-03-02T10:00:30Z', '$A', '1234567893', 'export', 'r-rep-e1', 'rep-e1', 'small', NULL, NULL, 'p2', 'exported', NULL),
   ('2026-03-02T10:00:30Z', '$A', '1234567893', 'export', 'r-rep-e1', 'rep-e1', 'small', NULL, NULL, 'p300', 'withheld', 'opted-out'),
   ('2026-03-09T14:00:00Z', '$A', '1234567893', 'export', 'r-rep-e2', 'rep-e2', 'small', NULL, NULL, 'p1', 'exported', NULL),
   ('2026-03-04T12:00:00Z', '$odd', '1245319599', 'member-match', 'rep-s1', NULL, 'g', 1, 's1', 'p1', 'matched', 'treatment-relationship'),
   ('2026-03-04T12:00:00Z', '$odd', '1245319599', 'member-match', 'rep-s1', NULL, 'g', 2, 's2', NULL, 'non-matched', 'no-member'),
   ('2026-03-04T12:00:00Z', '$odd', '1245319599', 'member-match', 'rep-s1', NULL, 'g', 3, 's3', 'p2', 'non-matched', 'opted-out')" > /dev/null

week=(--from 2026-03-02 --to 2026-03-09)
js=$(admin report "${week[@]}" --format json)
expect_eq "the JSON report parses" "$(jq -r .business_timezone <<< "$js")" UTC
expect_eq "the period: from the first day's midnight to the end of the last" "$(jq -r '.from + " " + .to' <<< "$js")" \
  "2026-03-02T00:00:00.000Z 2026-03-10T00:00:00.000Z"
expect_eq "turnaround of exports: requests, completed, median, 95th, max (s), over; cancelled not counted" \
  "$(jq -r '.turnaround.export | [.requests, .completed, .median_seconds, .p95_seconds, .max_seconds, .over_one_business_day] | join(" ")' <<< "$js")" \
  "4 3 255600 262800 262800 2"
expect_eq "... of matches (synchronous ones from the audit trail)" \
  "$(jq -r '.turnaround.match | [.requests, .completed, .median_seconds, .max_seconds, .over_one_business_day] | join(" ")' <<< "$js")" \
  "3 3 219600 253800 1"
expect_eq "... of all: the median of an even count is the mean of the middle two" \
  "$(jq -r '.turnaround.all | [.requests, .completed, .median_seconds, .p95_seconds, .over_one_business_day] | join(" ")' <<< "$js")" \
  "7 6 236700 262800 3"
expect_eq "the requests over one business day: late, failed, Saturday's due at the end of Monday" \
  "$(jq -r '[.over_one_business_day[] | .id + " " + .state + " due " + .due] | join(", ")' <<< "$js")" \
  "rep-e4 failed due 2026-03-04T09:00:00.000Z, rep-e3 completed due 2026-03-09T15:00:00.000Z, rep-m2 completed due 2026-03-10T00:00:00.000Z"
expect_eq "the distribution counts every completed request once, late ones apart" \
  "$(jq -r '[.distribution[] | "\(.on_time)+\(.late)"] | join(" ")' <<< "$js")" "1+0 0+0 1+0 0+0 0+0 0+0 0+0 2+2"
pa=$(jq -c --arg c "$A" '.providers[] | select(.client_id == $c)' <<< "$js")
expect_eq "per provider: requests, exports, matches, members disclosed, withheld, late" \
  "$(jq -r '[.requests, .exports, .matches, .members_disclosed, .withheld_members, .late] | join(" ")' <<< "$pa")" "0 4 2 2 1 3"
pb=$(jq -c --arg c "$odd" '.providers[] | select(.client_id == $c)' <<< "$js")
expect_eq "... a provider's API requests (not the runner's events), its matches and its throttled answers" \
  "$(jq -r '[.npi, .requests, .matches, .throttled, .members_disclosed, .withheld_members] | join(" ")' <<< "$pb")" "1245319599 2 1 1 1 1"
expect_eq "... match outcomes by reason code" "$(jq -r '.outcomes | to_entries | map("\(.key)=\(.value)") | join(" ")' <<< "$pb")" \
  "matched:treatment-relationship=1 non-matched:no-member=1 non-matched:opted-out=1"

# the payer's clock and holidays
conf=$HTTP_TMP/report.conf
cp "$PA_ROOT/provider-access.conf" "$conf"
echo "business_timezone = America/New_York" >> "$conf"
js=$("$PA_ROOT/bin/pa-admin" --config "$conf" report "${week[@]}" --format json)
expect_eq "in New York time, Friday 21:00 is a business day: rep-m2 was in time; the week is New York's" \
  "$(jq -r '([.over_one_business_day[].id] | join(",")) + " " + .from' <<< "$js")" "rep-e4,rep-e3 2026-03-02T05:00:00.000Z"
echo "business_holidays = 2026-03-09, 2026-12-25" >> "$conf"
js=$("$PA_ROOT/bin/pa-admin" --config "$conf" report "${week[@]}" --format json)
expect_eq "a holiday on Monday moves Friday's deadline to Tuesday" "$(jq -r '[.over_one_business_day[].id] | join(",")' <<< "$js")" rep-e4
echo "business_timezone = Nowhere/Atlantis" > "$conf.bad"
grep -v business_ "$PA_ROOT/provider-access.conf" >> "$conf.bad"
out=$("$PA_ROOT/bin/pa-admin" --config "$conf.bad" report 2>&1)
expect_match "an unknown time zone is a configuration error, not UTC in disguise" "$out" "business_timezone must be UTC or a time zone"

# text, CSV, HTML
txt=$(admin report "${week[@]}")
expect_match "the text report lists each provider" "$txt" "1234567893  $A"
expect_match "... and each late request, due when" "$txt" "export  rep-e3 .* due 2026-03-09 15:00 UTC, completed after 3.0 d"
csv=$(admin report "${week[@]}" --format csv)
expect_eq "the CSV is one long table" "$(head -1 <<< "$csv")" "section,npi,client,name,metric,value"
expect_match "... names quoted as CSV quotes them" "$csv" "provider,1245319599,$odd,\"Clinic <b>\"\"A&B\"\", Inc</b>\",throttled,1"
expect_match "... with the turnaround figures" "$csv" "turnaround,,,export,p95_seconds,262800.000"
admin report "${week[@]}" --format html --out "$HTTP_TMP/report.html"
expect_eq "--out writes the HTML report" "$?" 0
html=$(cat "$HTTP_TMP/report.html")
expect_match "one HTML page with the turnaround chart drawn inline" "$html" "<svg xmlns=\"http://www.w3.org/2000/svg\""
expect_eq "... self-contained: no scripts, no external assets" \
  "$(grep -Ec '<script|<link|<img|src=|url\(|@import|href=' <<< "$html")" 0
expect_match "... names escaped" "$html" "Clinic &lt;b&gt;&quot;A&amp;B&quot;, Inc&lt;/b&gt;"
expect_eq "... never raw" "$(grep -c '<b>"A' <<< "$html")" 0
expect_match "... the late requests listed" "$html" "<code>rep-e3</code>"
PA_REPORT_HTML=$HTTP_TMP/report.html

# usage
admin report --format pdf > /dev/null 2>&1
expect_eq "an unknown format is refused (exit 2)" "$?" 2
admin report --from 2026-03-09 --to 2026-03-01 > /dev/null 2>&1
expect_eq "a period that ends before it begins is refused (exit 2)" "$?" 2
admin report --from last-week > /dev/null 2>&1
expect_eq "a bound that is no date is refused (exit 2)" "$?" 2

# today's real traffic: an export now, and whatever the tests before did
kickoff small
wait_job "$JOB_URL" 60
js=$(admin report --format json)
expect_true "today's report counts the suite's client's exports and the members disclosed to it" \
  jq -e --arg c "$A" '.providers[] | select(.client_id == $c) | .exports > 0 and .members_disclosed > 0' <<< "$js"
expect_true "... and their turnaround" jq -e '.turnaround.export.completed > 0 and .turnaround.export.max_seconds < 600' <<< "$js"
