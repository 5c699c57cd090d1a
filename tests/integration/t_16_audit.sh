# The audit trail: responders queue each request's event on Redis, the
# runner stores it in audit_event; nothing is lost while the runner is away,
# nothing is stored twice, and without Redis the responder stores it itself.

runner_pid() { head -n 1 "$PA_ROOT/run/runner.pid" 2>/dev/null; }
alive() { local s; s=$(ps -o stat= -p "$1" 2>/dev/null) && [[ "$s" != Z* ]]; }
events_of() { psql_q "SELECT count(*) FROM audit_event WHERE request_id IN ($1)"; }

http GET "$BASE/metadata"
rid=$(header X-Request-Id)
audit_settle
expect_eq "a request's event reaches audit_event under its X-Request-Id" \
  "$(psql_q "SELECT method || ' ' || endpoint || ' ' || status || ' ' || outcome FROM audit_event WHERE request_id = '$rid'")" \
  "GET /metadata 200 success"
expect_eq "the event's time is when the request arrived" \
  "$(psql_q "SELECT abs(extract(epoch FROM (now() - at))) < 30 FROM audit_event WHERE request_id = '$rid'")" t
expect_eq "the stream is emptied once the events are stored" "$(redis_q XLEN pa:audit)" 0

# a refused kick-off's event says why, in the words the client got, without
# the values it quoted (a value may name a patient)
detail_of() { audit_settle; psql_q "SELECT status || ' ' || detail FROM audit_event WHERE request_id = '$1'"; }
kickoff small --get --data-urlencode '_since=last tuesday'
expect_eq "a kick-off refused for a parameter records which and why" "$(detail_of "$(header X-Request-Id)")" \
  "400 refused: the parameters: _since '...' is not a FHIR instant (e.g. 2024-01-01T00:00:00Z)"
http GET "$BASE/Group/small/\$export" -H 'Accept: application/fhir+json'
expect_eq "one refused for its headers too" "$(detail_of "$(header X-Request-Id)")" \
  "400 refused: the headers: an export is asynchronous: send the header Prefer: respond-async"
http DELETE "$BASE/bulkstatus/00000000000000000000000000000000"
expect_match "and any other refusal, as its handler answered it" "$(detail_of "$(header X-Request-Id)")" "^404 refused: ."

# the runner away: events wait in Redis, then every one is stored once
pid=$(runner_pid)
kill -TERM "$pid"
deadline=$((SECONDS + 30))
while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
ids=""
for i in 1 2 3 4 5; do
  http GET "$BASE/Group/small"
  ids+="${ids:+,}'$(header X-Request-Id)'"
done
wait_for 5 eval '[ "$(redis_q XLEN pa:audit)" = 5 ]'
expect_eq "with the runner stopped, the events wait in Redis" "$(redis_q XLEN pa:audit)" 5
expect_eq "and none is in audit_event yet" "$(events_of "$ids")" 0
"$REPO/scripts/pa-stack" start > /dev/null 2>&1
audit_settle
expect_eq "a restarted runner stores every waiting event, once" "$(events_of "$ids")" 5

# an event delivered twice (its drainer died between storing and acknowledging)
at=$(date -u +%Y-%m-%dT%H:%M:%S.123Z)
for i in 1 2; do
  redis_q XADD pa:audit '*' at "$at" request_id feedfacefeedface method GET endpoint /metadata \
    outcome success status 200 duration_ms 1 > /dev/null
done
audit_settle
expect_eq "an event delivered twice is stored once" \
  "$(psql_q "SELECT count(*) FROM audit_event WHERE request_id = 'feedfacefeedface'")" 1
# one the table refuses does not hold up the others
redis_q XADD pa:audit '*' at "$at" request_id badbadbadbad0001 status not-a-number > /dev/null
redis_q XADD pa:audit '*' at "$at" request_id goodgoodgood0002 method GET endpoint /metadata status 200 > /dev/null
audit_settle
expect_eq "an event the table refuses does not hold up the next" \
  "$(psql_q "SELECT count(*) FROM audit_event WHERE request_id = 'goodgoodgood0002'")" 1
expect_true "the refused event is in the log" grep -q "audit event not storable.*badbadbadbad0001" "$PA_ROOT/log/provider-access.log"

# Redis down: the responder stores the event itself
redis_q SHUTDOWN NOSAVE > /dev/null 2>&1 || true
deadline=$((SECONDS + 10))
while redis_q PING > /dev/null 2>&1 && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
http GET "$BASE/metadata"
rid=$(header X-Request-Id)
expect_eq "without Redis, discovery still answers" "$STATUS" 200
wait_for 5 eval "[ \"\$(events_of \"'$rid'\")\" = 1 ]"
expect_eq "and its event is stored directly" "$(events_of "'$rid'")" 1
"$REPO/scripts/pa-stack" start > /dev/null 2>&1
deadline=$((SECONDS + 10))
until redis_q PING > /dev/null 2>&1 || [ $SECONDS -ge $deadline ]; do sleep 0.1; done
http GET "$BASE/metadata"
rid=$(header X-Request-Id)
audit_settle
expect_eq "with Redis back, events go through the stream again" "$(events_of "'$rid'")" 1
