# Jobs survive their runner: killed mid-job (SIGKILL) or stopped (SIGTERM),
# a restarted runner completes the job with output identical, line for line,
# to an uninterrupted run.

runner_pid() { head -n 1 "$PA_ROOT/run/runner.pid" 2>/dev/null; }
alive() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) && [[ "$s" != Z* ]]; }
# term_mid_job: starts an export of big (JOB_URL), and once it is a fifth done stops the
# runner with SIGTERM and waits until it is gone; sets pid
term_mid_job() {
  local deadline=$((SECONDS + 30))
  kickoff big
  while [ "$(progress_of "$JOB_URL")" -lt 20 ] && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
  pid=$(runner_pid)
  kill -TERM "$pid"
  deadline=$((SECONDS + 30))
  while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
}

# two practitioners: one referenced only by members exported early (p100 to
# p109 come soon after p1 in the members' order), one only by members exported
# late; the shared pass at the end writes both, from the references each chunk
# gathered, also when the job was resumed in between
psql_q "INSERT INTO resource (type, id, last_updated, json) VALUES
  ('Practitioner', 'gp-early', '2024-01-01', '{\"resourceType\":\"Practitioner\",\"id\":\"gp-early\"}'),
  ('Practitioner', 'gp-late', '2024-01-01', '{\"resourceType\":\"Practitioner\",\"id\":\"gp-late\"}');
  UPDATE resource SET tokens = ARRAY['ref=Practitioner/gp-early'] WHERE type = 'Patient' AND id ~ '^p10[0-9]$';
  UPDATE resource SET tokens = ARRAY['ref=Practitioner/gp-late'] WHERE type = 'Patient' AND id ~ '^p9[0-9]$'" > /dev/null

kickoff big
wait_job "$JOB_URL" 120
expect_eq "an uninterrupted export of 400 members completes" "$STATUS" 200
download_all "$BODY" "$HTTP_TMP/reference"
expect_eq "the reference holds every member" "$(cat "$HTTP_TMP"/reference/* | grep -c '"resourceType":"Patient"')" 400
# the shared resources come last, from the references the chunks gathered: a
# resumed job must still have those of the chunks done before the crash
expect_eq "the reference holds the practitioners the members reference" \
  "$(cat "$HTTP_TMP"/reference/* | jq -r 'select(.resourceType == "Practitioner") | .id' | paste -sd,)" gp-early,gp-late
http DELETE "$JOB_URL"

# SIGKILL to the whole runner (supervisor and workers) mid-job
kickoff big
crash_url=$JOB_URL
deadline=$((SECONDS + 30))
while [ "$(progress_of "$crash_url")" -lt 20 ] && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
at=$(progress_of "$crash_url")
pid=$(runner_pid)
pkill -KILL -P "$pid"; kill -KILL "$pid"
wait_for 5 eval "! alive $pid"
after=$(progress_of "$crash_url")
if [ "$at" -ge 20 ] && [ "$after" -lt 100 ]; then ok "the runner was killed mid-job (at $after%)"; else fail "the runner was killed mid-job" "progress $at% then $after%"; fi
"$REPO/scripts/pa-stack" start > /dev/null 2>&1
if wait_job "$crash_url" 120; then ok "a restarted runner takes the job over"; else fail "a restarted runner takes the job over" "still running"; fi
expect_eq "the resumed job completes" "$STATUS" 200
download_all "$BODY" "$HTTP_TMP/crashed"
expect_true "the resumed output equals the uninterrupted one, line for line" \
  cmp -s <(cat "$HTTP_TMP"/reference/*) <(cat "$HTTP_TMP"/crashed/*)
expect_true "the runner resumed from its checkpoint" grep -q "job ${crash_url##*/} (export) started, attempt 2, resuming" "$PA_ROOT/log/provider-access.log"
expect_eq "the resumed job records each of its 400 members once as disclosed" \
  "$(psql_q "SELECT count(*) || ' ' || count(DISTINCT patient_id) || ' ' || bool_and(outcome = 'exported') FROM disclosure WHERE job_id = '${crash_url##*/}'")" \
  "400 400 true"
http DELETE "$crash_url"

# SIGTERM: workers finish their chunk and hand the job back
term_mid_job
term_url=$JOB_URL
expect_true "SIGTERM stops the runner cleanly" eval "! alive $pid && test ! -e '$PA_ROOT/run/runner.pid'"
expect_true "the stopping worker handed its job back" grep -q "job ${term_url##*/} handed back" "$PA_ROOT/log/provider-access.log"
poll "$term_url"
expect_eq "a handed-back job is still in progress" "$STATUS" 202
"$REPO/scripts/pa-stack" start > /dev/null 2>&1
wait_job "$term_url" 120
expect_eq "the handed-back job completes after a restart" "$STATUS" 200
download_all "$BODY" "$HTTP_TMP/termed"
expect_true "its output equals the uninterrupted one, line for line" \
  cmp -s <(cat "$HTTP_TMP"/reference/*) <(cat "$HTTP_TMP"/termed/*)
http DELETE "$term_url"

# a checkpoint this version cannot use (an earlier version's, as after an upgrade,
# or a damaged one) makes the job start over, never fail it
for cp in '{"after":"p150","done":3,"outputs":[{"type":"Patient","file":1,"bytes":10,"count":1}]}' \
          'not json at all'; do
  term_mid_job
  old_url=$JOB_URL
  redis_q HSET "pa:job:${old_url##*/}" checkpoint "$cp" > /dev/null
  "$REPO/scripts/pa-stack" start > /dev/null 2>&1
  wait_job "$old_url" 120
  expect_eq "a job with an unusable checkpoint (${cp:0:12}...) completes after a restart" "$STATUS" 200
  expect_true "... having started over" grep -q "job ${old_url##*/}: its checkpoint cannot be resumed" "$PA_ROOT/log/provider-access.log"
  download_all "$BODY" "$HTTP_TMP/over-${#cp}"
  expect_true "... with output equal to the uninterrupted one, line for line" \
    cmp -s <(cat "$HTTP_TMP"/reference/*) <(cat "$HTTP_TMP/over-${#cp}"/*)
  http DELETE "$old_url"
done

# log rotation: the file moved away, SIGHUP to the runner and the responders: every
# process writes its next line to a new file, and a job running meanwhile goes on
log=$PA_ROOT/log/provider-access.log
kickoff big
rot_url=$JOB_URL
deadline=$((SECONDS + 30))
while [ "$(progress_of "$rot_url")" -lt 20 ] && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
mv "$log" "$log.1"
kill -HUP "$(runner_pid)"
pkill -HUP -f "$PA_ROOT/bin/pa-api.fcgi"
wait_job "$rot_url" 120
expect_eq "an export running through a log rotation completes" "$STATUS" 200
expect_true "its worker's next lines go to the new log" grep -q "job ${rot_url##*/} completed" "$log"
last=$(header X-Request-Id)
expect_true "... as do the supervisor's and the responders'" \
  eval "grep -q 'pa-runner\\[$(runner_pid)\\] .*log file reopened' '$log' && grep -q 'id=$last GET /bulkstatus/' '$log'"
expect_eq "... and none of them to the rotated one" \
  "$(grep -cE "job ${rot_url##*/} completed|id=$last " "$log.1" || true)" 0
expect_eq "the signal interrupted nothing: one attempt" "$(cat "$log.1" "$log" | grep -c "job ${rot_url##*/} (export) started")" 1
http DELETE "$rot_url"

# a job whose Redis state is lost is queued again from its durable record
kickoff big
lost=${JOB_URL##*/}
redis-cli -p "$PA_REDIS_PORT" -a "$(cat "$PA_ROOT/secrets/redis")" --no-auth-warning DEL "pa:job:$lost" > /dev/null
deadline=$((SECONDS + 30))
until [ "$(psql_q "SELECT state FROM job WHERE id='$lost'")" = completed ] || [ $SECONDS -ge $deadline ]; do sleep 0.3; done
expect_eq "a job lost from Redis is recovered from PostgreSQL and completes" \
  "$(psql_q "SELECT state FROM job WHERE id='$lost'")" completed
http DELETE "$JOB_URL"
deadline=$((SECONDS + 10))
until [ "$(psql_q "SELECT count(*) FROM export_ref")" = 0 ] || [ $SECONDS -ge $deadline ]; do sleep 0.2; done
expect_eq "the jobs, killed, stopped, cancelled or done, keep no references" "$(psql_q "SELECT count(*) FROM export_ref")" 0
expect_eq "... nor members" "$(psql_q "SELECT count(*) FROM export_member")" 0
psql_q "DELETE FROM resource WHERE type = 'Practitioner' AND id IN ('gp-early', 'gp-late');
  UPDATE resource SET tokens = '{}' WHERE type = 'Patient' AND tokens <> '{}'" > /dev/null
