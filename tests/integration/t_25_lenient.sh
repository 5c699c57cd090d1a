# Prefer: handling=lenient (Bulk Data): parameters this server does not
# support are ignored and named, one OperationOutcome each, in the manifest's
# error file; without it they stay 400.  includeAssociatedData is refused
# either way: its absence would read as "none exists".

lenient() { kickoff small -H 'Prefer: respond-async, handling=lenient' --get "$@"; }
kickoff small --get --data-urlencode 'organizeOutputBy=Patient' --data-urlencode '_type=Patient'
expect_outcome "without handling=lenient an unsupported parameter is 400" 400 "with Prefer: handling=lenient it is ignored"
lenient --data-urlencode 'organizeOutputBy=Patient' --data-urlencode '_type=Patient' --data-urlencode 'unknownThing=1' \
  --data-urlencode '_typeFilter=Patient?name:exact=x'
expect_eq "with it the kick-off is accepted" "$STATUS" 202
wait_job "$JOB_URL" 60
expect_eq "... and completes" "$STATUS" 200
expect_eq "... exporting what was asked, unfiltered where a filter was not applied" \
  "$(jq_body -c '[.output[] | [.type, .count]]')" '[["Patient",3]]'
ensure_token
errors=$(for u in $(jq_body '.error[].url'); do curl -s -H "Authorization: Bearer $TOKEN" "$u"; done)
expect_eq "the error file names each ignored parameter, one OperationOutcome a line" \
  "$(jq -r '.resourceType + " " + .issue[0].severity + " " + .issue[0].code' <<< "$errors" | sort | uniq -c | sed 's/^ *//')" \
  "3 OperationOutcome warning not-supported"
expect_match "... organizeOutputBy" "$errors" "parameter 'organizeOutputBy' is not supported; it was ignored"
expect_match "... an unknown one" "$errors" "parameter 'unknownThing' is not supported"
expect_match "... and the filter, saying its type is exported unfiltered" "$errors" \
  "_typeFilter 'Patient\\?name:exact=x' was not applied .*exported unfiltered"
http DELETE "$JOB_URL"

lenient --data-urlencode '_typeFilter=NotAType?x=1'
expect_outcome "a malformed parameter is 400 even when lenient" 400 "NotAType"
lenient --data-urlencode '_since=yesterday'
expect_outcome "... as is a bad value" 400 "_since"
lenient --data-urlencode 'includeAssociatedData=LatestProvenanceResources'
expect_outcome "includeAssociatedData is refused even when lenient" 400 "includeAssociatedData is not supported"
kickoff small -H 'Prefer: respond-async' -H 'Prefer: handling=lenient' --get --data-urlencode 'organizeOutputBy=Patient'
expect_eq "handling=lenient in a Prefer header of its own counts too" "$STATUS" 202
http DELETE "$JOB_URL"
