# A missing or bad configuration is named, never a crash.

conf=$PA_ROOT/provider-access.conf
bad=$HTTP_TMP/bad.conf
grep -v '^base_url' "$conf" > "$bad"
out=$("$PA_ROOT/bin/pa-runner" --config "$bad" 2>&1); rc=$?
expect_eq "the runner refuses a config without base_url (exit 2)" "$rc" 2
expect_match "the runner names the missing key" "$out" 'required key base_url is missing'
out=$("$PA_ROOT/bin/pa-admin" --config "$HTTP_TMP/none.conf" check 2>&1); rc=$?
expect_eq "pa-admin refuses a missing config file" "$rc" 1
expect_match "pa-admin names the missing file" "$out" "cannot read config file $HTTP_TMP/none.conf"
{ cat "$conf"; echo "runner_workers = lots"; } > "$bad"
out=$("$PA_ROOT/bin/pa-admin" --config "$bad" check 2>&1)
expect_match "pa-admin names the bad value's key and line" "$out" 'bad.conf:[0-9]+: runner_workers must be a whole number'
out=$("$PA_ROOT/bin/pa-admin" --config "$conf" check 2>&1); rc=$?
expect_eq "pa-admin check passes on the stack" "$rc" 0
expect_match "pa-admin check reports each component" "$out" 'postgresql	ok.*schema	ok.*redis	ok'
expect_match "pa-admin check warns that base_url is not https" "$out" 'tls	warning	base_url http://127.0.0.1:[0-9]+/fhir is not https'
sed "s|^base_url = http://|base_url = https://|" "$conf" > "$HTTP_TMP/tls.conf"
out=$("$PA_ROOT/bin/pa-admin" --config "$HTTP_TMP/tls.conf" check 2>&1)
expect_true "and not when it is" eval "! grep -q 'tls	warning' <<< \"\$out\""
expect_true "pa-admin check is quiet about payer_identifier when it is set" eval "! grep -q 'match	warning' <<< \"\$out\""
sed "/^payer_identifier/d" "$conf" > "$HTTP_TMP/nopayer.conf"
expect_match "and warns when it is not" "$("$PA_ROOT/bin/pa-admin" --config "$HTTP_TMP/nopayer.conf" check 2>&1)" \
  'match	warning	payer_identifier is not set'
expect_true "pa-admin check is quiet about Redis persistence when appendonly is yes" eval "! grep -q 'redis	warning' <<< \"\$out\""
redis_q CONFIG SET appendonly no > /dev/null
expect_match "and warns when Redis runs without its append-only file" "$("$PA_ROOT/bin/pa-admin" --config "$conf" check 2>&1)" \
  'redis	warning	appendonly is no: audit events not yet stored in PostgreSQL are lost'
redis_q CONFIG SET appendonly yes > /dev/null
out=$("$PA_ROOT/bin/pa-admin" --config "$bad" check --config-only 2>&1); rc=$?
expect_eq "pa-admin check --config-only refuses a bad configuration (exit 1)" "$rc" 1
expect_match "... naming the key" "$out" 'runner_workers must be a whole number'
out=$("$PA_ROOT/bin/pa-admin" --config "$HTTP_TMP/nopayer.conf" check --config-only 2>&1); rc=$?
expect_eq "... and checks only the file: a good one passes, nothing else is reached" "$rc $out" "0 config	ok	$HTTP_TMP/nopayer.conf"

# the responder answers 503 with an OperationOutcome, and Apache's log names the key
cp -p "$conf" "$HTTP_TMP/good.conf"
grep -v '^data_dir' "$HTTP_TMP/good.conf" > "$conf"
apache_graceful
http GET "$BASE/metadata"
expect_outcome "a broken configuration answers 503" 503 "configuration error"
expect_eq "503 says the problem is transient" "$(jq_body '.issue[0].code')" transient
expect_true "the operator's log names the missing key" grep -q 'required key data_dir is missing' "$PA_ROOT/log/httpd-error.log"
cp -p "$HTTP_TMP/good.conf" "$conf"
apache_graceful
http GET "$BASE/metadata"
expect_eq "with the configuration mended it answers 200 again" "$STATUS" 200

# PostgreSQL down: 503, never a crash, and back once it is up
pgctl() { runuser -u postgres -- "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/pg_ctl" -D "$PA_ROOT/pg" "$@"; }
if [ "$(id -u)" = 0 ]; then
  ensure_token --now   # tokens live in Redis: they outlast a PostgreSQL outage
  pgctl -m fast -w stop > /dev/null
  kickoff small
  expect_outcome "with PostgreSQL down a kick-off answers 503" 503 "database error"
  expect_true "the 503 does not leak server details" eval "! grep -q 127.0.0.1 <<< \"\$BODY\""
  "$REPO/scripts/pa-stack" start > /dev/null 2>&1
  kickoff small
  expect_eq "with PostgreSQL back a kick-off answers 202" "$STATUS" 202
  wait_job "$JOB_URL" 30
  expect_eq "and the job completes" "$STATUS" 200
  http DELETE "$JOB_URL"
else
  skip "PostgreSQL down: a kick-off answers 503, and 202 once it is back" \
    "stopping this stack's PostgreSQL needs root (runuser -u postgres)"
fi

# run by hand as root, the runner would write job folders Apache cannot read
if [ "$(id -u)" = 0 ]; then
  out=$("$PA_ROOT/bin/pa-runner" --config "$conf" 2>&1); rc=$?
  expect_eq "the runner refuses to run as root (exit 2)" "$rc" 2
  expect_match "... saying why and how to run it" "$out" "refusing to run as root: Apache's user could not read .* runuser -u www-data"
else
  skip "the runner refuses to run as root" "these tests do not run as root"
fi

# one runner per pid file: a second is refused, and leaves the first's file alone
as_svc=(); [ "$(id -u)" = 0 ] && as_svc=(runuser -u www-data --)
first=$(cat "$PA_ROOT/run/runner.pid")
out=$("${as_svc[@]}" "$PA_ROOT/bin/pa-runner" --config "$conf" --daemon --pidfile "$PA_ROOT/run/runner.pid" 2>&1); rc=$?
expect_eq "a second runner with the running one's pid file refuses to start (exit 1)" "$rc" 1
expect_match "... naming the runner that has it" "$out" "another runner \\(pid $first\\) runs with the pid file"
expect_eq "... whose pid file is untouched" "$(cat "$PA_ROOT/run/runner.pid")" "$first"

# --daemon returns once the daemon's pid file is written, or non-zero when it cannot start
out=$("${as_svc[@]}" "$PA_ROOT/bin/pa-runner" --config "$conf" --daemon --pidfile "$PA_ROOT/run/no-such-dir/runner.pid" 2>&1); rc=$?
expect_eq "a daemon that cannot write its pid file exits 1" "$rc" 1
expect_match "... saying where to look" "$out" "the daemon did not start; see "
second="$PA_ROOT/run/second-runner.pid"
(cd "$PA_ROOT/run" && "${as_svc[@]}" "$PA_ROOT/bin/pa-runner" --config "$conf" --daemon --pidfile second-runner.pid); rc=$?
pid=$(cat "$second" 2>/dev/null)
expect_eq "a daemon's pid file (a relative path) names the running runner as soon as it returns" \
  "$rc $(ps -o comm= -p "${pid:-0}" 2>/dev/null)" "0 pa-runner"
[ -n "$pid" ] && kill "$pid"

# a runner whose base_url is not the responders' (a proxy in front, a move
# between the two configs): a file is found by job and name, never by its URL's base
pid=$(head -n 1 "$PA_ROOT/run/runner.pid")
kill -TERM "$pid"
deadline=$((SECONDS + 30))
while kill -0 "$pid" 2> /dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
moved=$PA_ROOT/moved-base.conf
cp -p "$conf" "$moved"
sed -i 's|^base_url *=.*|base_url = https://moved.example/fhir|' "$moved"
"${as_svc[@]}" "$PA_ROOT/bin/pa-runner" --config "$moved" --daemon --pidfile "$PA_ROOT/run/runner.pid" > /dev/null 2>&1
kickoff small
wait_job "$JOB_URL" 30
expect_eq "an export by a runner with another base_url completes" "$STATUS" 200
moved_url=$(jq_body '.output[0].url')
expect_match "... its manifest lists the runner's base" "$moved_url" '^https://moved\.example/fhir/bulkfiles/[0-9a-f]{32}/Patient-1\.ndjson$'
http GET "$BASE/bulkfiles/${moved_url#*/bulkfiles/}" -H 'Accept: application/fhir+ndjson'
expect_eq "... and the responders serve its files by job and name" "$STATUS $(jq -r .resourceType <<< "$BODY" | sort -u)" \
  "200 Patient"
cp "$PA_ROOT/data/jobs/${JOB_URL##*/}/Patient-1.ndjson" "$PA_ROOT/data/jobs/${JOB_URL##*/}/Patient-9.ndjson"
http GET "$BASE/bulkfiles/${JOB_URL##*/}/Patient-9.ndjson" -H 'Accept: application/fhir+ndjson'
expect_eq "... never a file in its folder the manifest does not list" "$STATUS" 404
http DELETE "$JOB_URL"
kill -TERM "$(head -n 1 "$PA_ROOT/run/runner.pid")"
deadline=$((SECONDS + 30))
while [ -e "$PA_ROOT/run/runner.pid" ] && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
rm -f "$moved"
"$REPO/scripts/pa-stack" start > /dev/null 2>&1
