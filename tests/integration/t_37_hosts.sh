# Two hosts on one machine: a second runner and a second Apache (their own
# configuration, logs and pid files, `pa-stack start-host`) on the first
# stack's PostgreSQL, Redis and export folder. One export's parts run on
# both; when one runner host is killed, the other finishes the export with
# the same files; either front end serves them.

H2=$(mktemp -d /tmp/pa-host2.XXXXXX)
chmod 755 "$H2"
H2_PORT=$(free_port)
H2_BASE=http://127.0.0.1:$H2_PORT/fhir
hosts_config="$PA_EXTRA_CONFIG
export_part_members = 50
runner_workers = 1"
log1=$PA_ROOT/log/provider-access.log
log2=$H2/log/provider-access.log
host2() {  # host2 pa-stack-command
  env -u PA_HTTPS_PORT PA_ROOT="$H2" PA_SHARED_ROOT="$PA_ROOT" PA_HTTP_PORT="$H2_PORT" \
    PA_BASE_URL="http://127.0.0.1:$PA_HTTP_PORT/fhir" PA_EXTRA_CONFIG="$hosts_config" "$REPO/scripts/pa-stack" "$@"
}
# hosts_of JOB: how many runner hosts logged a part of JOB
hosts_of() {
  local n=0
  grep -q "job $1 (export) part [0-9]* started" "$log1" && n=$((n + 1))
  grep -q "job $1 (export) part [0-9]* started" "$log2" 2> /dev/null && n=$((n + 1))
  echo $n
}

PA_EXTRA_CONFIG="$hosts_config" "$REPO/scripts/pa-stack" restart-runner > /dev/null 2>&1
if host2 start-host > "$H2/start.log" 2>&1; then ok "a second host starts on the first one's services"; else fail "a second host starts on the first one's services" "$(tail -5 "$H2/start.log")"; fi
expect_eq "its front end answers" "$(curl -s -o /dev/null -w '%{http_code}' "$H2_BASE/metadata")" 200
expect_true "its runner has a configuration of its own, on the shared export folder" \
  grep -qx "data_dir = $PA_ROOT/data" "$H2/provider-access.conf"

# both hosts alive: the reference
BASE=$H2_BASE kickoff big
ref_url=$JOB_URL
wait_job "$ref_url" 120
expect_eq "an export kicked off through the second front end completes" "$STATUS" 200
expect_eq "its parts ran on both runner hosts" "$(hosts_of "${ref_url##*/}")" 2
download_all "$BODY" "$HTTP_TMP/hosts-ref"
http DELETE "$ref_url"

# the first runner host killed mid-export: the second finishes it
kickoff big
kill_url=$JOB_URL
deadline=$((SECONDS + 30))
until [ "$(hosts_of "${kill_url##*/}")" = 2 ] || [ $SECONDS -ge $deadline ]; do sleep 0.05; done
pid=$(head -n 1 "$PA_ROOT/run/runner.pid")
pkill -KILL -P "$pid"; kill -KILL "$pid"
poll "$kill_url"
expect_eq "with the first runner host killed mid-export, the job is still in progress" "$STATUS" 202
if BASE=$H2_BASE wait_job "$kill_url" 120; then ok "the second runner host finishes it"; else fail "the second runner host finishes it" "still running"; fi
expect_eq "... and it completes" "$STATUS" 200
expect_true "... having taken over a part the first one had begun" \
  grep -q "job ${kill_url##*/} (export) part [0-9]* started, attempt 2" "$log2"
download_all "$BODY" "$HTTP_TMP/hosts-1"
same_files "its files, through the first front end, equal the uninterrupted export's" "$HTTP_TMP/hosts-ref" "$HTTP_TMP/hosts-1"
download_all "${BODY//127.0.0.1:$PA_HTTP_PORT/127.0.0.1:$H2_PORT}" "$HTTP_TMP/hosts-2"
same_files "... and through the second" "$HTTP_TMP/hosts-ref" "$HTTP_TMP/hosts-2"
expect_eq "each member is disclosed once" \
  "$(psql_q "SELECT count(*) || ' ' || count(DISTINCT patient_id) FROM disclosure WHERE job_id = '${kill_url##*/}' AND outcome = 'exported'")" "400 400"
http DELETE "$kill_url"

host2 stop > /dev/null 2>&1
expect_true "the second host stops" eval "! curl -s -o /dev/null '$H2_BASE/metadata'"
"$REPO/scripts/pa-stack" start > /dev/null 2>&1
rm -rf "$H2"
