# Named limits: request body size and the per-client job cap.

head -c 1200000 /dev/zero | tr '\0' ' ' > "$HTTP_TMP/big-body"
http POST "$BASE/Group/small/\$export" -H 'Accept: application/fhir+json' -H 'Prefer: respond-async' \
  -H 'Content-Type: application/fhir+json' --data-binary "@$HTTP_TMP/big-body"
expect_outcome "a body over max_request_body answers 413" 413 "max_request_body"

# the cap counts queued and running jobs of one client
caps=()
for i in 1 2 3; do
  kickoff big
  caps+=("$JOB_URL")
done
kickoff big
expect_outcome "one job over max_jobs_per_client answers 429" 429 "already has 3"
expect_match "429 advises Retry-After" "$(header Retry-After)" '^[0-9]+$'
for u in "${caps[@]}"; do http DELETE "$u"; done
kickoff small
expect_eq "after cancelling, a new job is accepted" "$STATUS" 202
wait_job "$JOB_URL" 30
http DELETE "$JOB_URL"

# over Apache's own limit (FcgidMaxRequestLen): refused before it is read
head -c 34000000 /dev/zero | tr '\0' ' ' > "$HTTP_TMP/huge-body"
http POST "$BASE/Group/small/\$export" -H 'Accept: application/fhir+json' -H 'Prefer: respond-async' \
  -H 'Content-Type: application/fhir+json' --data-binary "@$HTTP_TMP/huge-body"
expect_outcome "a declared body over Apache's limit answers 413" 413 "larger than this server accepts"
http POST "$BASE/Group/small/\$export" -H 'Accept: application/fhir+json' -H 'Prefer: respond-async' \
  -H 'Content-Type: application/fhir+json' -H 'Transfer-Encoding: chunked' --data-binary "@$HTTP_TMP/huge-body"
expect_eq "a chunked body over Apache's limit is refused" "$STATUS" 500
expect_eq "and the refusal is an OperationOutcome" "$(jq_body .resourceType)" OperationOutcome
expect_true "no job was started by either" eval "! grep -q 'POST /Group/small/\$export -> 202' <(tail -n 3 '$PA_ROOT/log/provider-access.log')"
rm -f "$HTTP_TMP/huge-body" "$HTTP_TMP/big-body"

# the responder's own 500 (a failed job) goes through Apache untouched
kickoff small
wait_job "$JOB_URL" 30
redis-cli -p "$PA_REDIS_PORT" -a "$(cat "$PA_ROOT/secrets/redis")" --no-auth-warning \
  HSET "pa:job:${JOB_URL##*/}" state failed error "the Group vanished" > /dev/null
poll "$JOB_URL"
expect_outcome "a failed job answers 500 with the reason" 500 "the Group vanished"
http DELETE "$JOB_URL"
