# Discovery endpoints and the generic error answers.

http GET "$BASE/metadata"
expect_eq "metadata answers 200" "$STATUS" 200
expect_match "metadata is application/fhir+json" "$(header Content-Type)" '^application/fhir\+json'
expect_eq "metadata is a CapabilityStatement" "$(jq_body .resourceType)" CapabilityStatement
expect_eq "metadata declares FHIR 4.0.1" "$(jq_body .fhirVersion)" 4.0.1
expect_eq "metadata names this server's base" "$(jq_body .implementation.url)" "$BASE"
expect_eq "metadata declares the Group export" \
  "$(jq_body '[.rest[0].resource[] | select(.type=="Group") | .operation[].name] | sort | join(",")')" \
  "davinci-data-export,export,group-export,member-add,member-remove,provider-member-match"
expect_match "every response has a request id" "$(header X-Request-Id)" '^[0-9a-f]{16}$'
rid=$(header X-Request-Id)
expect_true "the request id is in the log" grep -q "id=$rid GET /metadata -> 200" "$PA_ROOT/log/provider-access.log"

http GET "$BASE/metadata" -H 'Accept: application/fhir+json, */*; q=0.1'
expect_eq "an Accept list with q-values is understood" "$STATUS" 200
http GET "$BASE/metadata" -H 'Accept: application/fhir+xml'
expect_outcome "an unsupported Accept answers 406" 406 "application/fhir+json"
http GET "$BASE/metadata?_format=xml"
expect_outcome "an unsupported _format answers 406" 406 "_format"

http GET "$BASE/.well-known/smart-configuration" -H 'Accept: text/html'
expect_eq "smart-configuration answers 200 whatever Accept says" "$STATUS" 200
expect_match "smart-configuration is application/json" "$(header Content-Type)" '^application/json'
expect_eq "smart-configuration names the token endpoint" "$(jq_body .token_endpoint)" "$BASE/auth/token"
expect_eq "smart-configuration offers client_credentials" "$(jq_body '.grant_types_supported[0]')" client_credentials

http GET "$BASE/Patient/123/nothing"
expect_outcome "an unknown path answers 404" 404 "no such endpoint"
http DELETE "$BASE/metadata"
expect_outcome "a wrong method answers 405" 405 "DELETE"
expect_eq "405 lists the allowed methods" "$(header Allow)" "GET, HEAD"
http GET "$BASE/metadata?x=%zz"
expect_outcome "a malformed query string answers 400" 400 "escape"

# the PDex provider-access server CapabilityStatement's names, as the IG has them
pdex=$HERE/ig/CapabilityStatement-pdex-provider-access-server.json
http GET "$BASE/metadata"
names() {  # names JSON: the Group entry's profiles, searchParams (name definition type) and operations, sorted
  jq -r '.rest[0].resource[] | select(.type == "Group") |
    ((.supportedProfile // [])[] | "profile " + .),
    ((.searchParam // [])[] | "searchParam " + .name + " " + .definition + " " + .type),
    ((.operation // [])[] | "operation " + .name + " " + .definition),
    ((.interaction // [])[] | select((.extension // []) | map(.valueCode) | index("SHALL") or length == 0) | "interaction " + .code)' "$@" | sort
}
missing=$(comm -23 <(names "$pdex") <(names <<< "$BODY"))
expect_eq "the Group entry declares everything the PDex provider-access CapabilityStatement marks for it" "$missing" ""
