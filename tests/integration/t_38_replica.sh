# Exports read their resources from a hot standby (export_database): a
# streaming replica of the stack's PostgreSQL. The output equals the
# primary's; a standby that has not replayed what was committed before the
# kick-off is waited for, and one that lags too far or is down is bypassed
# for the primary, so nothing committed before transactionTime is missed.

R=$PA_ROOT/replica
R_PORT=$(free_port)
R_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
r_user=$(id -un)
[ "$(id -u)" = 0 ] && r_user=postgres
as_pg() { if [ "$(id -un)" = "$r_user" ]; then "$@"; else runuser -u "$r_user" -- "$@"; fi; }
replica_q() {
  PGPASSWORD=$(cat "$PA_ROOT/secrets/pg") psql -h 127.0.0.1 -p "$R_PORT" -U provider_access -d provider_access \
    -v ON_ERROR_STOP=1 -Atq -c "$1"
}
log=$PA_ROOT/log/provider-access.log
# export_of GROUP DIR: an export of GROUP, its files in DIR; sets its URL in JOB_URL
export_of() {
  kickoff "$1"
  wait_job "$JOB_URL" 60
  [ "$STATUS" = 200 ] && download_all "$BODY" "$2"
}

mkdir -p "$R"
chown "$r_user" "$R"
chmod 700 "$R"
touch "$PA_ROOT/log/replica.log"
chown "$r_user" "$PA_ROOT/log/replica.log"
if as_pg env PGPASSWORD="$(cat "$PA_ROOT/secrets/pg")" "$R_BIN/pg_basebackup" -h 127.0.0.1 -p "$PA_PG_PORT" \
     -U provider_access -D "$R" -R -X stream > "$PA_ROOT/log/basebackup.log" 2>&1 &&
   as_pg "$R_BIN/pg_ctl" -D "$R" -l "$PA_ROOT/log/replica.log" -w -t 60 \
     -o "-p $R_PORT -k $R -c listen_addresses=127.0.0.1 -c max_connections=$(psql_q 'SHOW max_connections')" \
     start > /dev/null; then
  ok "a streaming replica of the stack's PostgreSQL starts"
else
  fail "a streaming replica of the stack's PostgreSQL starts" "$(tail -5 "$PA_ROOT/log/basebackup.log" "$PA_ROOT/log/replica.log" 2> /dev/null)"
fi
expect_eq "it is a hot standby" "$(replica_q "SELECT pg_is_in_recovery()")" t

# the reference, read from the primary
export_of big "$HTTP_TMP/primary"
expect_eq "an export read from the primary completes" "$STATUS" 200
http DELETE "$JOB_URL"

replica_config="$PA_EXTRA_CONFIG
export_database = host=127.0.0.1 port=$R_PORT dbname=provider_access user=provider_access password=$(cat "$PA_ROOT/secrets/pg") connect_timeout=5"
PA_EXTRA_CONFIG=$replica_config "$REPO/scripts/pa-stack" restart-runner > /dev/null 2>&1
export_of big "$HTTP_TMP/replica"
expect_eq "an export read from the standby completes" "$STATUS" 200
expect_true "... having read its resources there" grep -q "job ${JOB_URL##*/}: its resources are read from the export database" "$log"
same_files "... with the files the primary gave" "$HTTP_TMP/primary" "$HTTP_TMP/replica"
http DELETE "$JOB_URL"

# committed just before the kick-off, replayed a moment after: waited for
psql_q "CREATE TABLE t38_p1 AS SELECT json, last_updated FROM resource WHERE type = 'Patient' AND id = 'p1'" > /dev/null
replica_q "SELECT pg_wal_replay_pause()" > /dev/null
psql_q "UPDATE resource SET json = '{\"resourceType\":\"Patient\",\"id\":\"p1\",\"note\":\"late\"}', last_updated = now() WHERE type = 'Patient' AND id = 'p1'" > /dev/null
kickoff small
late_url=$JOB_URL
# the runner has taken it, and waits for the standby to catch up
wait_for 10 eval "[ \"\$(psql_q \"SELECT state FROM job WHERE id = '${late_url##*/}'\")\" = running ]"
replica_q "SELECT pg_wal_replay_resume()" > /dev/null
wait_job "$late_url" 60
expect_eq "an export kicked off while the standby is behind completes" "$STATUS" 200
download_all "$BODY" "$HTTP_TMP/late"
expect_true "... with what was committed before its kick-off" grep -q '"note":"late"' "$HTTP_TMP"/late/*Patient*
expect_true "... read from the standby once it caught up" grep -q "job ${late_url##*/}: its resources are read from the export database" "$log"
http DELETE "$late_url"

# a standby that stays behind is bypassed
replica_q "SELECT pg_wal_replay_pause()" > /dev/null
psql_q "UPDATE resource SET json = '{\"resourceType\":\"Patient\",\"id\":\"p1\",\"note\":\"later\"}', last_updated = now() WHERE type = 'Patient' AND id = 'p1'" > /dev/null
export_of small "$HTTP_TMP/behind"
expect_eq "an export while the standby stays behind completes" "$STATUS" 200
expect_true "... with what was committed before its kick-off" grep -q '"note":"later"' "$HTTP_TMP"/behind/*Patient*
expect_true "... read from the primary, with a warning" grep -q "job ${JOB_URL##*/}: the export database has not replayed the primary's last commits in time; this export reads the primary" "$log"
http DELETE "$JOB_URL"
replica_q "SELECT pg_wal_replay_resume()" > /dev/null
# (the worker that bypassed it reads the primary for a while: a runner afresh)
PA_EXTRA_CONFIG=$replica_config "$REPO/scripts/pa-stack" restart-runner > /dev/null 2>&1

# a standby that is down is bypassed too
as_pg "$R_BIN/pg_ctl" -D "$R" -m fast -w stop > /dev/null 2>&1
export_of small "$HTTP_TMP/down"
expect_eq "an export while the standby is down completes" "$STATUS" 200
expect_true "... read from the primary, with a warning" grep -q "job ${JOB_URL##*/}: the export database \(cannot be reached\|cannot be queried\)" "$log"
http DELETE "$JOB_URL"

psql_q "UPDATE resource r SET json = b.json, last_updated = b.last_updated FROM t38_p1 b WHERE r.type = 'Patient' AND r.id = 'p1';
  DROP TABLE t38_p1" > /dev/null
"$REPO/scripts/pa-stack" restart-runner > /dev/null 2>&1
rm -rf "$R"
