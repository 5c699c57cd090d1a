# Faults under running jobs: each ends byte-identical to an uninterrupted
# export or failed with an OperationOutcome, never a partial 200; a
# cancellation, a revocation, a lost Redis, a killed supervisor each take
# effect once and for all.

admin() { "$PA_ROOT/bin/pa-admin" --config "$PA_ROOT/provider-access.conf" "$@"; }
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_stop() { as_pg "$PG_BIN/pg_ctl" -D "$PA_ROOT/pg" -m fast -w stop > /dev/null; }
pg_restart() { as_pg "$PG_BIN/pg_ctl" -D "$PA_ROOT/pg" -l "$PA_ROOT/log/postgres.log" -m fast -w restart > /dev/null; }
svc_user=$(stat -c %U "$PA_ROOT/data")
job_dir_gone() { [ ! -e "$PA_ROOT/data/jobs/$1" ]; }
# waits until an export is at least PCT% done
wait_progress() {
  local deadline=$((SECONDS + 30))
  while [ "$(progress_of "$1")" -lt "$2" ] && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
}
# ends_whole NAME URL: the job completes with output equal to the reference,
# or fails with an OperationOutcome; never a partial 200
ends_whole() {
  wait_job "$2" 120
  if [ "$STATUS" = 200 ]; then
    rm -rf "$HTTP_TMP/faulted"
    download_all "$BODY" "$HTTP_TMP/faulted"
    if cmp -s <(cat "$HTTP_TMP"/whole/*) <(cat "$HTTP_TMP"/faulted/*); then ok "$1: complete and byte-identical"
    else fail "$1: complete and byte-identical" "the output differs from the uninterrupted export"; fi
  elif [ "$STATUS" = 500 ] && [ "$(jq_body .resourceType)" = OperationOutcome ]; then
    ok "$1: failed with an OperationOutcome"
  else
    fail "$1" "ended $STATUS: ${BODY:0:200}"
  fi
}

kickoff big
wait_job "$JOB_URL" 120
expect_eq "the uninterrupted export completes" "$STATUS" 200
download_all "$BODY" "$HTTP_TMP/whole"
http DELETE "$JOB_URL"

# --- a job whose files cannot be written fails, loudly and for good
if [ "$(id -u)" = 0 ]; then
  mount -t tmpfs -o "size=40k,mode=0750,uid=$(id -u "$svc_user")" pa-full "$PA_ROOT/data/jobs"
  how="a full disk"
else
  chmod 500 "$PA_ROOT/data/jobs"
  how="an unwritable data folder"
fi
kickoff big
full_url=$JOB_URL
full_id=${full_url##*/}
full_rid=$(header X-Request-Id)
wait_job "$full_url" 90
if [ "$(id -u)" = 0 ]; then umount "$PA_ROOT/data/jobs"; else chmod 750 "$PA_ROOT/data/jobs"; fi
expect_outcome "an export on $how fails with an OperationOutcome" 500 "its output files could not be written"
expect_eq "its status holds no manifest" "$(jq_body '.output // empty')" ""
diag=$(jq_body '.issue[0].diagnostics')
expect_match "the OperationOutcome names the kick-off's request id" "$diag" "request id $full_rid"
expect_true "and no path, system error or server message" \
  eval "! grep -qiE '/|No space|denied|PostgreSQL|errno' <<< \"\${diag//request id $full_rid (job $full_id)/}\""
expect_true "the details are in the log under the job and request" \
  grep -qE "job $full_id \\(request $full_rid\\) failed: cannot (write|create|open|sync)" "$PA_ROOT/log/provider-access.log"
expect_true "it failed after its attempts, for good" \
  grep -q "job $full_id (export) started, attempt 3" "$PA_ROOT/log/provider-access.log"
expect_eq "its durable record says failed" "$(psql_q "SELECT state FROM job WHERE id = '$full_id'")" failed
expect_true "it leaves no files" job_dir_gone "$full_id"
poll "$full_url"
expect_eq "and stays failed" "$STATUS" 500

# --- an export connection terminated mid-job
kickoff big
term_url=$JOB_URL
wait_progress "$term_url" 20
killed=$(psql_q "SELECT count(pg_terminate_backend(pid)) FROM (SELECT pid FROM pg_stat_activity
  WHERE usename = 'provider_access' AND pid <> pg_backend_pid()
  AND (query LIKE '%unnest(\$1::text[]) m(pid)%' OR query LIKE '%INSERT INTO export_ref%'
       OR query LIKE 'INSERT INTO export_member%') LIMIT 1) s")
expect_eq "one export connection was terminated mid-job" "$killed" 1
ends_whole "an export whose connection was terminated" "$term_url"
http DELETE "$term_url"

# --- PostgreSQL restarted under a running export, and the first requests after it
kickoff big
restart_url=$JOB_URL
wait_progress "$restart_url" 20
pg_restart
ensure_token --now
expect_match "the first token request after a PostgreSQL restart is answered" "$(curl -s -o /dev/null -w '%{http_code}' \
  -u "$CLIENT_ID:$CLIENT_SECRET" "$BASE/auth/token" -d grant_type=client_credentials -d 'scope=system/*.read')" '^200$'
kickoff small
expect_eq "the first kick-off after a PostgreSQL restart is accepted" "$STATUS" 202
http DELETE "$JOB_URL"
http GET "$BASE/Group/small" -H 'Accept: application/fhir+json'
expect_eq "a Group read after it is answered" "$STATUS" 200
ends_whole "an export under a PostgreSQL restart" "$restart_url"
http DELETE "$restart_url"

# --- a cancellation while PostgreSQL is down is refused, not half-done
kickoff big
cancel_url=$JOB_URL
cancel_id=${cancel_url##*/}
wait_progress "$cancel_url" 10
pg_stop
http DELETE "$cancel_url"
expect_outcome "DELETE while PostgreSQL is down answers 503" 503 "cannot answer now"
"$REPO/scripts/pa-stack" start > /dev/null 2>&1
http DELETE "$cancel_url"
expect_eq "DELETE once it is back cancels" "$STATUS" 202
expect_eq "the durable record says cancelled" "$(psql_q "SELECT state FROM job WHERE id = '$cancel_id'")" cancelled
sleep 7   # a janitor pass and a runner's retry
poll "$cancel_url"
expect_eq "the cancelled job stays gone" "$STATUS" 404
expect_eq "and is never run again" "$(psql_q "SELECT state FROM job WHERE id = '$cancel_id'")" cancelled
expect_true "its files are removed" job_dir_gone "$cancel_id"
expect_true "no runner completed it" eval "! grep -q 'job $cancel_id completed' '$PA_ROOT/log/provider-access.log'"
# Redis forgets the cancellation: PostgreSQL's word still holds
kickoff big
c2_url=$JOB_URL
c2_id=${c2_url##*/}
psql_q "UPDATE job SET state = 'cancelled', finished_at = now() WHERE id = '$c2_id'" > /dev/null
wait_job "$c2_url" 30
expect_eq "a job cancelled in PostgreSQL only is not completed" "$(psql_q "SELECT state FROM job WHERE id = '$c2_id'")" cancelled
poll "$c2_url"
expect_eq "and answers 404" "$STATUS" 404

# --- Redis loses everything: finished jobs still answer, files still expire
kickoff small
wait_job "$JOB_URL" 60
kept_url=$JOB_URL
kept_id=${kept_url##*/}
kept_manifest=$BODY
# a real restart with its data gone (the append-only file removed), so that
# every responder's and worker's connection to it is stale too
redis_q SHUTDOWN NOSAVE > /dev/null 2>&1
deadline=$((SECONDS + 10))
while [ -s "$PA_ROOT/run/redis.pid" ] && kill -0 "$(cat "$PA_ROOT/run/redis.pid")" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
  sleep 0.1
done
rm -rf "${PA_ROOT:?}"/redis/*
"$REPO/scripts/pa-stack" start > /dev/null 2>&1
expect_eq "Redis came back without the job" "$(redis_q EXISTS "pa:job:$kept_id")" 0
ensure_token --now
poll "$kept_url"
expect_eq "a finished job answers 200 after Redis lost its data" "$STATUS" 200
expect_eq "with the same output files" "$(jq_body -c '[.output[].url]')" "$(jq -c '[.output[].url]' <<< "$kept_manifest")"
http GET "$(jq -r '.output[0].url' <<< "$kept_manifest")"
expect_eq "and its files download" "$STATUS" 200
kickoff small
expect_eq "kick-offs work again at once" "$STATUS" 202
wait_job "$JOB_URL" 60
expect_eq "and their jobs run" "$STATUS" 200
http DELETE "$JOB_URL"
psql_q "UPDATE job SET finished_at = now() - interval '30 days' WHERE id = '$kept_id'" > /dev/null
deadline=$((SECONDS + 15))
until job_dir_gone "$kept_id" || [ $SECONDS -ge $deadline ]; do sleep 0.3; done
expect_true "the janitor purges an expired job's files whatever Redis knows" job_dir_gone "$kept_id"
expect_eq "and marks it expired" "$(psql_q "SELECT state FROM job WHERE id = '$kept_id'")" expired
poll "$kept_url"
expect_eq "after which it answers 404" "$STATUS" 404

# --- the supervisor killed: its workers go with it
kickoff big
sup_url=$JOB_URL
wait_progress "$sup_url" 10
sup=$(head -n 1 "$PA_ROOT/run/runner.pid")
workers=$(pgrep -P "$sup" | paste -sd' ')
expect_match "the runner has workers" "$workers" '^[0-9]+'
kill -KILL "$sup"
deadline=$((SECONDS + 30))
while [ -n "$(ps -o pid= -p "${workers// /,}" 2>/dev/null)" ] && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
expect_eq "every worker ends with its supervisor" "$(ps -o pid= -p "${workers// /,}" 2>/dev/null | wc -l)" 0
"$REPO/scripts/pa-stack" start > /dev/null 2>&1
expect_eq "a restarted runner has only its own workers" \
  "$(pgrep -f "$PA_ROOT/bin/pa-runner" | wc -l)" $((1 + $(pgrep -P "$(head -n 1 "$PA_ROOT/run/runner.pid")" | wc -l)))
ends_whole "an export whose supervisor was killed" "$sup_url"
http DELETE "$sup_url"

# --- Redis restarted and still reading its data: the API says "not now", the runner waits for it
kill -TERM "$(head -n 1 "$PA_ROOT/run/runner.pid")"
deadline=$((SECONDS + 30))
while [ -s "$PA_ROOT/run/runner.pid" ] && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
# the data in one base file, written once nothing else writes, so that its loading time is per key;
# keys of more than loading-process-events-interval-bytes each, so that Redis answers after each
redis_q EVAL "for i = 1, 2000 do redis.call('SET', 'pa-test-pad:' .. i, string.rep('x', 1100)) end" 0 > /dev/null
aof_field() { redis_q INFO persistence | sed -n "s/^$1:\\([0-9]*\\).*/\\1/p"; }
rewrites=$(aof_field aof_rewrites)
redis_q BGREWRITEAOF > /dev/null
deadline=$((SECONDS + 15))
until { [ "$(aof_field aof_rewrites)" -gt "$rewrites" ] && [ "$(aof_field aof_rewrite_in_progress)" = 0 ]; } ||
      [ $SECONDS -ge $deadline ]; do sleep 0.2; done
keys=$(redis_q DBSIZE)
redis_q SHUTDOWN > /dev/null 2>&1
deadline=$((SECONDS + 10))
while [ -s "$PA_ROOT/run/redis.pid" ] && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
# about 4 s of loading, answering LOADING meanwhile
svc=$(stat -c %U "$PA_ROOT/redis.conf")
as_svc=(); [ "$(id -u)" = 0 ] && as_svc=(runuser -u "$svc" --)
"${as_svc[@]}" redis-server "$PA_ROOT/redis.conf" --key-load-delay $((4000000 / keys)) \
  --loading-process-events-interval-bytes 1024
expect_match "Redis answers LOADING while it reads its data" "$(redis_q PING 2>&1)" "^LOADING"
http GET "$BASE/Group/small" -H 'Accept: application/fhir+json'
expect_outcome "meanwhile a request with a good token is told to come back, not that its token is bad" 503 \
  "cannot answer now"
expect_match "... and when (Retry-After)" "$(header Retry-After)" '^[0-9]+$'
out=$("${as_svc[@]}" "$PA_ROOT/bin/pa-runner" --config "$PA_ROOT/provider-access.conf" --daemon \
  --pidfile "$PA_ROOT/run/runner.pid" 2>&1); rc=$?
expect_eq "a runner started meanwhile waits for Redis and starts (exit 0)" "$rc" 0
expect_match "... saying what it waits for" "$out" "Redis is loading its data; waiting"
expect_eq "... once Redis has read its data" "$(redis_q PING)" PONG
redis_q EVAL "for i = 1, 2000 do redis.call('DEL', 'pa-test-pad:' .. i) end" 0 > /dev/null
kickoff small
wait_job "$JOB_URL" 60
expect_eq "and its jobs run" "$STATUS" 200
http DELETE "$JOB_URL"

# --- revocation takes effect at the next request
rv=$(admin client add --name "Revoked EHR" --npi 1234567893 --secret 2> /dev/null)
rv_id=$(sed -n 1p <<< "$rv")
rv_secret=$(sed -n 2p <<< "$rv")
as_rv() { local t=$1; shift; NOAUTH=1 http "$@" -H "Authorization: Bearer $t"; }
t1=$(token_for "$rv_id" "$rv_secret")
as_rv "$t1" GET "$BASE/Group/small" -H 'Accept: application/fhir+json'
expect_eq "a client's token reads its Group" "$STATUS" 200
as_rv "$t1" GET "$BASE/Group/small/\$export" -H 'Accept: application/fhir+json' -H 'Prefer: respond-async'
rv_job=$(header Content-Location)
wait_job_as "$t1" "$rv_job"
rv_file=$(jq_body -r '.output[0].url')
admin client disable "$rv_id"
expect_eq "client disable exits 0" "$?" 0
as_rv "$t1" GET "$BASE/Group/small" -H 'Accept: application/fhir+json'
expect_outcome "after client disable, its token is refused at once" 401 "unknown or has expired"
as_rv "$t1" GET "$rv_file"
expect_eq "and downloads no file" "$STATUS" 401
as_rv "$t1" GET "$BASE/Group/small/\$export" -H 'Accept: application/fhir+json' -H 'Prefer: respond-async'
expect_eq "and kicks off no export" "$STATUS" 401
admin client enable "$rv_id"
t2=$(token_for "$rv_id" "$rv_secret")
as_rv "$t2" GET "$BASE/Group/small" -H 'Accept: application/fhir+json'
expect_eq "enabled again, a new token works" "$STATUS" 200
new_secret=$(admin client rotate-secret "$rv_id")
as_rv "$t2" GET "$BASE/Group/small" -H 'Accept: application/fhir+json'
expect_eq "after rotate-secret, the old token is refused" "$STATUS" 401
t3=$(token_for "$rv_id" "$new_secret")
as_rv "$t3" GET "$BASE/Group/small" -H 'Accept: application/fhir+json'
expect_eq "the new secret's token works" "$STATUS" 200
admin provider network 1234567893 --out > /dev/null
as_rv "$t3" GET "$BASE/Group/small" -H 'Accept: application/fhir+json'
expect_eq "after provider network --out, the provider's tokens are refused" "$STATUS" 401
psql_q "UPDATE provider SET in_network = true, network_start = NULL, network_end = NULL WHERE npi = '1234567893'" > /dev/null
ensure_token --now
