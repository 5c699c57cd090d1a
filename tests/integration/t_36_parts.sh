# One export on many workers: an export of more members than
# export_part_members is split into parts any worker takes; a type's files,
# concatenated in the manifest's order, equal the unsplit export's; a
# split export killed mid-way resumes to the same files; a cancelled one
# stops; a small export started behind it does not wait for it.

# concat_types MANIFEST DIR: each type's downloaded files, in manifest order,
# into DIR/<Type>.all (download_all numbers them in that order)
concat_types() {
  local f t
  for f in "$2"/*.ndjson; do
    t=$(basename "$f" | sed 's/^[0-9]*-//; s/-.*//')
    cat "$f" >> "$2/$t.all"
  done
}
# split_runner WORKERS: the runner (re)started to split at 50 members
split_runner() {
  local how=restart-runner state
  state=$(ps -o stat= -p "$(head -n 1 "$PA_ROOT/run/runner.pid" 2> /dev/null)" 2> /dev/null)
  [ -n "$state" ] && [[ "$state" != Z* ]] || how=start
  PA_EXTRA_CONFIG="$PA_EXTRA_CONFIG
export_part_members = 50
runner_workers = $1" "$REPO/scripts/pa-stack" $how > /dev/null 2>&1
}
# two practitioners, referenced by a member of the first part and one of the
# last: the last step writes both, from the references the parts gathered
psql_q "INSERT INTO resource (type, id, last_updated, json) VALUES
  ('Practitioner', 'gp-first', '2024-01-01', '{\"resourceType\":\"Practitioner\",\"id\":\"gp-first\"}'),
  ('Practitioner', 'gp-last', '2024-01-01', '{\"resourceType\":\"Practitioner\",\"id\":\"gp-last\"}')
  ON CONFLICT DO NOTHING;
  UPDATE resource SET tokens = ARRAY['ref=Practitioner/gp-first'] WHERE type = 'Patient' AND id = 'p1';
  UPDATE resource SET tokens = ARRAY['ref=Practitioner/gp-last'] WHERE type = 'Patient' AND id = 'p99'" > /dev/null
log=$PA_ROOT/log/provider-access.log

# the reference: the same Group exported whole
kickoff big -H 'Prefer: respond-async'
wait_job "$JOB_URL" 120
expect_eq "an unsplit export of 400 members completes" "$STATUS" 200
download_all "$BODY" "$HTTP_TMP/whole"
concat_types "$BODY" "$HTTP_TMP/whole"
http DELETE "$JOB_URL"

split_runner 2
kickoff big
wait_job "$JOB_URL" 120
expect_eq "a split export completes" "$STATUS" 200
split_id=${JOB_URL##*/}
expect_true "it was split into 8 parts of 50 members" grep -q "job $split_id split into 8 parts of 50 members" "$log"
parts_by=$(grep "job $split_id (export) part [0-9]* started" "$log" | sed 's/.*pa-runner\[\([0-9]*\)\].*/\1/' | sort -u | wc -l)
if [ "$parts_by" -ge 2 ]; then ok "its parts ran on both workers"; else fail "its parts ran on both workers" "$parts_by worker(s)"; fi
expect_eq "the manifest lists each part's files, in order" \
  "$(jq -r '[.output[] | select(.type == "Patient") | .url | capture("Patient-(?<p>[0-9]+)-").p | tonumber] | (. == sort) and (unique | length == 8)' <<< "$BODY")" true
expect_eq "its counts add up to the members" "$(jq '[.output[] | select(.type == "Patient") | .count] | add' <<< "$BODY")" 400
download_all "$BODY" "$HTTP_TMP/split2"
concat_types "$BODY" "$HTTP_TMP/split2"
expect_eq "the types exported whole and split" "$(cd "$HTTP_TMP/split2" && ls *.all | paste -sd,)" \
  "$(cd "$HTTP_TMP/whole" && ls *.all | paste -sd,)"
expect_eq "... include the practitioners the parts' members reference" \
  "$(jq -r 'select(.resourceType == "Practitioner") | .id' "$HTTP_TMP/split2/Practitioner.all" 2> /dev/null | paste -sd,)" gp-first,gp-last
for f in "$HTTP_TMP"/whole/*.all; do
  expect_true "$(basename "$f" .all): its files concatenated in manifest order equal the unsplit export's" \
    cmp -s "$f" "$HTTP_TMP/split2/$(basename "$f")"
done
expect_eq "every file's count is its lines" \
  "$(for f in "$HTTP_TMP"/split2/*.ndjson; do wc -l < "$f"; done | paste -sd+ | bc)" \
  "$(jq '[.output[].count] | add' <<< "$BODY")"
expect_eq "each member is disclosed once" \
  "$(psql_q "SELECT count(*) || ' ' || count(DISTINCT patient_id) FROM disclosure WHERE job_id = '$split_id' AND outcome = 'exported'")" "400 400"
expect_eq "the parts leave nothing behind in the job's record" \
  "$(psql_q "SELECT count(*) FROM export_ref WHERE job_id = '$split_id'") $(psql_q "SELECT count(*) FROM export_member WHERE job_id = '$split_id'")" "0 0"
split_body=$BODY
http DELETE "$JOB_URL"

# one worker writes the same files, byte for byte
split_runner 1
kickoff big
wait_job "$JOB_URL" 120
expect_eq "the split export with one worker completes" "$STATUS" 200
download_all "$BODY" "$HTTP_TMP/split1"
same_files "one worker and two write the same files, byte for byte" "$HTTP_TMP/split1" "$HTTP_TMP/split2"
http DELETE "$JOB_URL"

# kill -9 mid-way: a restarted runner resumes each part where it was
split_runner 2
kickoff big
kill_url=$JOB_URL
deadline=$((SECONDS + 30))
until grep -q "job ${kill_url##*/} (export) part 3 started" "$log" || [ $SECONDS -ge $deadline ]; do sleep 0.05; done
pid=$(head -n 1 "$PA_ROOT/run/runner.pid")
pkill -KILL -P "$pid"; kill -KILL "$pid"
poll "$kill_url"
expect_eq "a split export whose runner was killed is still in progress" "$STATUS" 202
split_runner 2
if wait_job "$kill_url" 120; then ok "a restarted runner finishes it"; else fail "a restarted runner finishes it" "still running"; fi
expect_eq "... and it completes" "$STATUS" 200
download_all "$BODY" "$HTTP_TMP/killed"
same_files "its files equal the uninterrupted split export's, byte for byte" "$HTTP_TMP/killed" "$HTTP_TMP/split2"
expect_true "a part resumed on a later attempt" grep -q "job ${kill_url##*/} (export) part [0-9]* started, attempt 2" "$log"
http DELETE "$kill_url"

# a small export started behind a split one is not kept waiting for it
kickoff big
big_url=$JOB_URL
deadline=$((SECONDS + 30))
until grep -q "job ${big_url##*/} (export) part 1 started" "$log" || [ $SECONDS -ge $deadline ]; do sleep 0.05; done
kickoff small
small_url=$JOB_URL
wait_job "$small_url" 60
expect_eq "a small export started behind a split one completes" "$STATUS" 200
poll "$big_url"
expect_eq "... while the split one is still running" "$STATUS" 202
expect_match "... whose progress counts its parts and last step" "$(header X-Progress)" '^[0-9]+% \([0-9] of 9 parts\)$'

# cancelled mid-way: the job answers 404, its files go, no later part starts
http DELETE "$big_url"
expect_eq "a running split export can be cancelled" "$STATUS" 202
# its workers hear it at their next checkpoint and remove its files
wait_for 20 test ! -e "$PA_ROOT/data/jobs/${big_url##*/}"
poll "$big_url"
expect_eq "... and is gone" "$STATUS" 404
started=$(grep -c "job ${big_url##*/} (export) part [0-9]* started" "$log")
sleep 1.5 # a while for a part that should not start: nothing to wait for
expect_eq "... no part of it starts after" "$(grep -c "job ${big_url##*/} (export) part [0-9]* started" "$log")" "$started"
expect_true "... and its files are removed" test ! -e "$PA_ROOT/data/jobs/${big_url##*/}"
http DELETE "$small_url"

psql_q "UPDATE resource SET tokens = '{}' WHERE type = 'Patient' AND id IN ('p1', 'p99');
  DELETE FROM resource WHERE type = 'Practitioner' AND id IN ('gp-first', 'gp-last')" > /dev/null
"$REPO/scripts/pa-stack" restart-runner > /dev/null 2>&1
