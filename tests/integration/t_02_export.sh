# The asynchronous job path end to end: kick-off, status, manifest, files, cancel.

kickoff small
expect_eq "kick-off answers 202" "$STATUS" 202
expect_match "Content-Location is an absolute status URL" "$JOB_URL" "^$BASE/bulkstatus/[0-9a-f]{32}$"
small_url=$JOB_URL
if wait_job "$JOB_URL" 60; then ok "the export finishes"; else fail "the export finishes" "still 202"; fi
expect_eq "a finished job answers 200" "$STATUS" 200
expect_match "the manifest is application/json" "$(header Content-Type)" '^application/json'
expect_match "the manifest has an Expires header" "$(header Expires)" 'GMT$'
manifest=$BODY
expect_eq "manifest.request is the kick-off URL" "$(jq_body .request)" "$BASE/Group/small/\$export"
expect_match "manifest.transactionTime is an instant" "$(jq_body .transactionTime)" '^20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$'
expect_eq "manifest.requiresAccessToken" "$(jq_body .requiresAccessToken)" true
expect_eq "manifest lists one Patient file" "$(jq_body '[.output[].type] | join(",")')" Patient
expect_eq "manifest counts the members found" "$(jq_body '.output[0].count')" 3
expect_eq "manifest has empty error and deleted lists" "$(jq_body '(.error|length),(.deleted|length)' | tr '\n' ,)" "0,0,"
file_url=$(jq_body '.output[0].url')
expect_match "file URLs are absolute" "$file_url" "^$BASE/bulkfiles/[0-9a-f]{32}/Patient-1\.ndjson$"

http GET "$file_url"
expect_eq "the file downloads" "$STATUS" 200
expect_match "the file is application/fhir+ndjson" "$(header Content-Type)" '^application/fhir\+ndjson'
expect_eq "the file holds exactly the members' Patients" "$(jq -r .id <<< "$BODY" | tr '\n' ,)" "p1,p2,p300,"
expect_eq "every line is one valid JSON resource" "$(jq -c . <<< "$BODY" | wc -l)" 3
expect_eq "stored lines are served byte for byte" \
  "$(head -n 1 <<< "$BODY")" "$(psql_q "SELECT json FROM resource WHERE type='Patient' AND id='p1'")"
http GET "$file_url" -H 'Accept: text/html'
expect_outcome "a file with an incompatible Accept answers 406" 406 "ndjson"
http GET "${file_url%/*}/Patient-2.ndjson"
expect_outcome "a file the manifest does not list answers 404" 404
http GET "${file_url%/*}/..%2F..%2Fprovider-access.conf"
expect_eq "a path outside the job answers 404" "$STATUS" 404
http GET "$BASE/bulkstatus/0123456789abcdef0123456789abcdef"
expect_outcome "an unknown job answers 404" 404 "no export job"
http GET "$BASE/bulkstatus/not-a-job"
expect_outcome "a malformed job id answers 404" 404

jobid=${small_url##*/}
expect_eq "the job has its durable record" "$(psql_q "SELECT state FROM job WHERE id='$jobid'")" completed
expect_true "pa-admin jobs lists it" sh -c "'$PA_ROOT/bin/pa-admin' --config '$PA_ROOT/provider-access.conf' jobs | grep -q '^$jobid	export	$CLIENT_ID	completed'"

# the POST form with a Parameters body, and _since / _type
http POST "$BASE/Group/big/\$export" -H 'Accept: application/fhir+json' -H 'Prefer: respond-async' \
  -H 'Content-Type: application/fhir+json' \
  --data '{"resourceType":"Parameters","parameter":[{"name":"_since","valueInstant":"2025-01-30T00:00:00Z"},{"name":"_type","valueString":"Patient"},{"name":"_outputFormat","valueString":"application/fhir+ndjson"}]}'
expect_eq "a POST kick-off with Parameters answers 202" "$STATUS" 202
wait_job "$(header Content-Location)" 60
expect_eq "_since keeps only resources changed after it" "$(jq_body '[.output[].count] | add')" \
  "$(psql_q "SELECT count(*) FROM resource r JOIN roster_member m ON m.patient_id = r.id AND m.roster_id = 'big' WHERE r.last_updated > '2025-01-30T00:00:00Z'")"

kickoff empty
wait_job "$JOB_URL" 30
expect_eq "an empty Group completes" "$STATUS" 200
expect_eq "an empty Group's manifest has no output" "$(jq_body '.output|length')" 0

# rejections at kick-off
kickoff nosuchgroup
expect_outcome "an unknown Group answers 404" 404 "nosuchgroup"
http GET "$BASE/Group/small/\$export" -H 'Accept: application/fhir+json'
expect_outcome "a kick-off without Prefer answers 400" 400 "respond-async"
http GET "$BASE/Group/small/\$export" -H 'Accept:' -H 'Prefer: respond-async'
expect_outcome "a kick-off without Accept answers 400" 400 "Accept"
kickoff small --get --data-urlencode '_type=Patient,Claim'
expect_outcome "an unsupported _type answers 400" 400 "Claim"
kickoff small --get --data-urlencode '_typeFilter=Patient?telecom=x'
expect_outcome "an unsupported parameter answers 400, never ignored" 400 "_typeFilter"
kickoff small --get --data-urlencode '_since=2999-01-01T00:00:00Z'
expect_outcome "a future _since answers 400" 400 "future"
kickoff small --get --data-urlencode '_outputFormat=application/xml'
expect_outcome "an unsupported _outputFormat answers 400" 400 "_outputFormat"
http POST "$BASE/Group/small/\$export" -H 'Accept: application/fhir+json' -H 'Prefer: respond-async' \
  -H 'Content-Type: application/fhir+json' --data '{"resourceType":"Parameters",'
expect_outcome "a malformed JSON body answers 400" 400 "not valid JSON"
http POST "$BASE/Group/small/\$export" -H 'Accept: application/fhir+json' -H 'Prefer: respond-async' \
  -H 'Content-Type: application/xml' --data '<Parameters/>'
expect_outcome "a body of the wrong type answers 415" 415 "application/fhir+json"

# DELETE: a finished job's files go; a running job stops
http DELETE "$small_url"
expect_eq "DELETE of a finished job answers 202" "$STATUS" 202
http GET "$small_url"
expect_outcome "after DELETE the status answers 404" 404
http GET "$file_url"
expect_eq "after DELETE the files answer 404" "$STATUS" 404
http DELETE "$small_url"
expect_outcome "a second DELETE answers 404" 404
smalldir=$PA_ROOT/data/jobs/${small_url##*/}
deadline=$((SECONDS + 20))
while [ -d "$smalldir" ] && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
expect_true "the janitor removes a deleted job's files" test ! -d "$smalldir"

kickoff big
running=$JOB_URL
deadline=$((SECONDS + 20))
while [ "$(progress_of "$running")" -lt 5 ] && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
poll "$running"
expect_match "a running job reports X-Progress" "$(header X-Progress)" '^[0-9]+% \([0-9]+ of 201 chunks\)$'
expect_eq "a running job advises Retry-After" "$(header Retry-After)" 1
http DELETE "$running"
expect_eq "DELETE of a running job answers 202" "$STATUS" 202
http GET "$running"
expect_outcome "a cancelled job answers 404" 404
rjob=${running##*/}
expect_eq "the cancelled job's record says cancelled" "$(psql_q "SELECT state FROM job WHERE id='$rjob'")" cancelled
expect_true "the runner stopped the cancelled job" wait_for 10 grep -q "job $rjob cancelled" "$PA_ROOT/log/provider-access.log"

# gzip on request
kickoff small
wait_job "$JOB_URL" 30
gz_url=$(jq_body '.output[0].url')
http GET "$gz_url" -H 'Accept-Encoding: gzip' --compressed
expect_eq "Accept-Encoding: gzip gets Content-Encoding: gzip" "$(header Content-Encoding)" gzip
expect_eq "the gzip body is the file, compressed" "$(curl -s -H "Authorization: Bearer $TOKEN" "$gz_url" | sha256sum)" \
  "$(curl -s --compressed -H "Authorization: Bearer $TOKEN" "$gz_url" | sha256sum)"
http GET "$gz_url" -H 'Accept-Encoding: gzip;q=0, identity'
expect_eq "gzip;q=0 gets the plain file" "$(header Content-Encoding)" ""
expect_eq "... which is NDJSON" "$(jq -r .resourceType <<< "$BODY" | sort -u)" Patient
expect_true "responses vary on Accept-Encoding" grep -qi '^Vary:.*Accept-Encoding' "$HEADERS"
http DELETE "$JOB_URL"

# expiry: files are kept retention_seconds after completion, then the janitor purges them
kickoff small
wait_job "$JOB_URL" 30
exp_job=${JOB_URL##*/}
expires=$(date -d "$(header Expires)" +%s)
expect_true "Expires is completion + retention_seconds (24 h)" \
  test $((expires - $(date +%s))) -gt $((86400 - 60)) -a $((expires - $(date +%s))) -le 86400
exp_file=$(jq_body '.output[0].url')
redis-cli -p "$PA_REDIS_PORT" -a "$(cat "$PA_ROOT/secrets/redis")" --no-auth-warning \
  ZADD pa:due "$(($(date +%s) * 1000))" "$exp_job" > /dev/null
deadline=$((SECONDS + 20))
until [ "$(psql_q "SELECT state FROM job WHERE id = '$exp_job'")" = expired ] || [ $SECONDS -ge $deadline ]; do sleep 0.5; done
expect_eq "an expired job's record says expired" "$(psql_q "SELECT state FROM job WHERE id = '$exp_job'")" expired
poll "$JOB_URL"
expect_outcome "an expired job answers 404" 404
http GET "$exp_file"
expect_eq "its files answer 404" "$STATUS" 404
expect_true "its files are gone from disk" test ! -d "$PA_ROOT/data/jobs/$exp_job"
