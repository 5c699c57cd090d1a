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
