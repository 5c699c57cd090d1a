# SMART Backend Services: every way to be refused, and every way in.

G=$REPO/examples/get-token
URL=$BASE/auth/token
admin() { "$PA_ROOT/bin/pa-admin" --config "$PA_ROOT/provider-access.conf" "$@"; }
K=$HTTP_TMP/keys
mkdir -p "$K"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$K/rsa.pem" 2> /dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$K/other.pem" 2> /dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$K/ec.pem" 2> /dev/null
"$G" jwks "$K/rsa.pem" r1 > "$K/rsa.jwks"
"$G" jwks "$K/ec.pem" e1 > "$K/ec.jwks"
RSA=$(admin client add --name "RSA EHR" --npi 1234567893 --jwks "$K/rsa.jwks")
EC=$(admin client add --name "EC EHR" --npi 1234567893 --jwks "$K/ec.jwks")
OUT=$(admin client add --name "Out of network" --npi 1245319599 --jwks "$K/rsa.jwks" 2> /dev/null)

# token_req [curl args]: a token request; sets STATUS and BODY
token_req() { NOAUTH=1 http POST "$URL" "$@"; }
# assert_req ARGS: a token request with a JWT assertion made by get-token
assert_req() {
  local a; a=$("$G" assertion --token-url "$URL" "$@")
  token_req --data-urlencode grant_type=client_credentials --data-urlencode 'scope=system/*.read' \
    --data-urlencode client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \
    --data-urlencode "client_assertion=$a"
}
expect_oauth() {  # expect_oauth NAME STATUS ERROR
  if [ "$STATUS" = "$2" ] && [ "$(jq_body .error)" = "$3" ]; then ok "$1"; else fail "$1" "got $STATUS ${BODY:0:200}"; fi
}

assert_req --client-id "$RSA" --key "$K/rsa.pem" --kid r1
expect_eq "an RS384 assertion gets a token" "$STATUS" 200
expect_eq "token_type is bearer" "$(jq_body .token_type)" bearer
expect_eq "expires_in is 300 seconds" "$(jq_body .expires_in)" 300
expect_eq "the granted scope is returned" "$(jq_body .scope)" "system/*.read"
expect_match "the token is 256 random bits" "$(jq_body .access_token)" '^[0-9a-f]{64}$'
expect_eq "token responses are not cached" "$(header Cache-Control)" no-store
rsa_token=$(jq_body .access_token)
assert_req --client-id "$EC" --key "$K/ec.pem" --kid e1
expect_eq "an ES384 assertion gets a token" "$STATUS" 200
ec_token=$(jq_body .access_token)
NOAUTH=1 kickoff small -H "Authorization: Bearer $ec_token"
expect_eq "the token opens the API" "$STATUS" 202
ec_job=$JOB_URL

assert_req --client-id nobody --key "$K/rsa.pem" --kid r1
expect_oauth "an unknown client is refused" 401 invalid_client
admin client disable "$RSA"
assert_req --client-id "$RSA" --key "$K/rsa.pem" --kid r1
expect_oauth "a disabled client is refused" 401 invalid_client
NOAUTH=1 http GET "$BASE/Group/small" -H "Authorization: Bearer $rsa_token" -H 'Accept: application/fhir+json'
expect_eq "and the token it had is revoked with it" "$STATUS" 401
admin client enable "$RSA"
assert_req --client-id "$RSA" --key "$K/rsa.pem" --kid r1
rsa_token=$(jq_body .access_token)
assert_req --client-id "$OUT" --key "$K/rsa.pem" --kid r1
expect_oauth "a client whose NPI is out of network is refused" 401 invalid_client
expect_true "the reason is not in the answer" eval "! grep -q network <<< \"\$BODY\""
audit_settle
expect_eq "the reason is in the audit" \
  "$(psql_q "SELECT detail FROM audit_event WHERE client_id = '$OUT' ORDER BY id DESC LIMIT 1")" \
  "the client's NPI is not in network today"
assert_req --client-id "$RSA" --key "$K/other.pem" --kid r1
expect_oauth "a bad signature is refused" 401 invalid_client
assert_req --client-id "$RSA" --key "$K/rsa.pem" --kid r2
expect_oauth "an unknown kid is refused" 401 invalid_client
assert_req --client-id "$RSA" --key "$K/rsa.pem" --kid r1 --alg RS256
expect_oauth "RS256 is refused when the key does not say so" 401 invalid_client
assert_req --client-id "$RSA" --key "$K/ec.pem" --kid r1 --alg ES384
expect_oauth "an EC signature for an RSA key is refused" 401 invalid_client
# alg none: an unsigned token
hdr=$(printf '{"alg":"none","kid":"r1"}' | basenc --base64url -w0 | tr -d =)
clm=$(printf '{"iss":"%s","sub":"%s","aud":"%s","exp":%d,"jti":"n1"}' "$RSA" "$RSA" "$URL" $(($(date +%s) + 60)) | basenc --base64url -w0 | tr -d =)
token_req --data-urlencode grant_type=client_credentials --data-urlencode 'scope=system/*.read' \
  --data-urlencode client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \
  --data-urlencode "client_assertion=$hdr.$clm."
expect_oauth "alg none is refused" 401 invalid_client
# HS256 keyed with the public key: the classic confusion attack
openssl pkey -in "$K/rsa.pem" -pubout -out "$K/rsa.pub" 2> /dev/null
hdr=$(printf '{"alg":"HS256","kid":"r1"}' | basenc --base64url -w0 | tr -d =)
sig=$(printf %s "$hdr.$clm" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$(xxd -p "$K/rsa.pub" | tr -d '\n')" -binary | basenc --base64url -w0 | tr -d =)
token_req --data-urlencode grant_type=client_credentials --data-urlencode 'scope=system/*.read' \
  --data-urlencode client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \
  --data-urlencode "client_assertion=$hdr.$clm.$sig"
expect_oauth "HS256 signed with the public key as secret is refused" 401 invalid_client
assert_req --client-id "$RSA" --key "$K/rsa.pem" --kid r1 --exp-in -120
expect_oauth "an expired assertion is refused" 401 invalid_client
assert_req --client-id "$RSA" --key "$K/rsa.pem" --kid r1 --exp-in 3600
expect_oauth "an exp more than 5 minutes ahead is refused" 401 invalid_client
assert_req --client-id "$RSA" --key "$K/rsa.pem" --kid r1 --iat-in 600
expect_oauth "an assertion issued in the future is refused" 401 invalid_client
assert_req --client-id "$RSA" --key "$K/rsa.pem" --kid r1 --aud https://elsewhere.example/token
expect_oauth "a wrong aud is refused" 401 invalid_client
assert_req --client-id "$RSA" --key "$K/rsa.pem" --kid r1 \
  --header '{"alg":"RS384","kid":"r1","typ":"JWT","jku":"https://attacker.example/jwks.json"}'
expect_oauth "a jku that is not the registered JWKS URL is refused" 401 invalid_client
a=$("$G" assertion --token-url "$URL" --client-id "$RSA" --key "$K/rsa.pem" --kid r1)
for n in 1 2; do
  token_req --data-urlencode grant_type=client_credentials --data-urlencode 'scope=system/*.read' \
    --data-urlencode client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \
    --data-urlencode "client_assertion=$a"
done
expect_oauth "a replayed jti is refused" 401 invalid_client

token_req -u "$CLIENT_ID:wrong" -d grant_type=client_credentials -d 'scope=system/*.read'
expect_oauth "a wrong secret is refused" 401 invalid_client
expect_match "with WWW-Authenticate" "$(header WWW-Authenticate)" '^Basic'
token_req -d grant_type=client_credentials -d "client_id=$CLIENT_ID" -d "client_secret=$CLIENT_SECRET" -d 'scope=system/*.rs'
expect_eq "client_secret_post works" "$(jq_body .scope)" "system/*.rs"
token_req -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials -d 'scope=system/Patient.write'
expect_oauth "asking for a write scope is refused" 400 invalid_scope
token_req -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials -d 'scope=system/*.*'
expect_eq "system/*.* is granted as read" "$(jq_body .scope)" "system/*.read"
token_req -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials -d 'scope=launch fhirUser'
expect_oauth "a non-system scope is refused" 400 invalid_scope
token_req -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=authorization_code -d 'scope=system/*.read'
expect_oauth "another grant type is refused" 400 unsupported_grant_type
token_req -u "$CLIENT_ID:$CLIENT_SECRET" -H 'Content-Type: application/json' --data '{"grant_type":"client_credentials"}'
expect_oauth "a JSON token request is refused" 400 invalid_request
token_req --data-urlencode grant_type=client_credentials --data-urlencode 'scope=system/*.read' \
  --data-urlencode client_assertion_type=urn:example:nothing --data-urlencode client_assertion=x
expect_oauth "another client_assertion_type is refused" 401 invalid_client

# the resource server
NOAUTH=1 kickoff small
expect_outcome "no token answers 401" 401 "access token"
expect_eq "with WWW-Authenticate: Bearer" "$(header WWW-Authenticate)" 'Bearer realm="provider-access"'
NOAUTH=1 kickoff small -H "Authorization: Bearer 0000000000000000000000000000000000000000000000000000000000000000"
expect_outcome "an unknown token answers 401" 401 "unknown or has expired"
narrow=$(token_for "$CLIENT_ID" "$CLIENT_SECRET" system/Observation.rs)
NOAUTH=1 kickoff small -H "Authorization: Bearer $narrow"
expect_outcome "a scope without Group answers 403" 403 "does not allow reading Group"
NOAUTH=1 http GET "$BASE/metadata"
expect_eq "metadata needs no token" "$STATUS" 200
expect_eq "metadata names the token endpoint" \
  "$(jq_body '.rest[0].security.extension[0].extension[0].valueUri')" "$URL"

# a roster attributed to another provider does not exist for this one
kickoff elsewhere
expect_outcome "another provider's roster answers 404" 404 "no Group 'elsewhere'"
audit_settle
expect_eq "the audit says why" \
  "$(psql_q "SELECT detail FROM audit_event WHERE group_id = 'elsewhere' ORDER BY id DESC LIMIT 1")" \
  "no such Group, or not attributed to the client"
kickoff small
audit_settle
expect_eq "a kick-off's audit event counts the Group's members" \
  "$(psql_q "SELECT members FROM audit_event WHERE group_id = 'small' AND status = 202 ORDER BY id DESC LIMIT 1")" 4
http DELETE "$JOB_URL"
admin_id=$(admin client add --name "Payer admin" --admin --secret)
admin_token=$(token_for "$(sed -n 1p <<< "$admin_id")" "$(sed -n 2p <<< "$admin_id")")
NOAUTH=1 kickoff elsewhere -H "Authorization: Bearer $admin_token"
expect_eq "the payer's admin client sees every roster" "$STATUS" 202
NOAUTH=1 http DELETE "$JOB_URL" -H "Authorization: Bearer $admin_token"

# another client's job does not exist for it
wait_job_as "$ec_token" "$ec_job" 30
expect_eq "the owner reads its manifest" "$STATUS" 200
ec_file=$(jq_body '.output[0].url')
NOAUTH=1 http GET "$ec_job" -H "Authorization: Bearer $rsa_token"
expect_outcome "another client gets 404 for the status" 404
NOAUTH=1 http GET "$ec_file" -H "Authorization: Bearer $rsa_token"
expect_eq "another client gets 404 for a file" "$STATUS" 404
NOAUTH=1 http DELETE "$ec_job" -H "Authorization: Bearer $rsa_token"
expect_eq "another client cannot delete the job" "$STATUS" 404
NOAUTH=1 http GET "$ec_file" -H "Authorization: Bearer $ec_token"
expect_eq "the owner still downloads its file" "$STATUS" 200
obs=$(token_for "$CLIENT_ID" "$CLIENT_SECRET" system/Observation.rs)
NOAUTH=1 http GET "$ec_file" -H "Authorization: Bearer $obs"
expect_eq "another client's token, whatever its scope, gets 404 for a file" "$STATUS" 404
token_req --data-urlencode grant_type=client_credentials --data-urlencode 'scope=system/Observation.rs' \
  --data-urlencode client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \
  --data-urlencode "client_assertion=$("$G" assertion --token-url "$URL" --client-id "$EC" --key "$K/ec.pem" --kid e1)"
NOAUTH=1 http GET "$ec_file" -H "Authorization: Bearer $(jq_body .access_token)"
expect_outcome "the owner's token without read scope on the file's type gets 403" 403

# the registry and the audit
out=$(admin client list)
expect_match "client list shows each client" "$out" $'RSA EHR\t1234567893\t\tjwks\tno\tno\tyes'
new=$(admin client rotate-secret "$CLIENT_ID")
token_req -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials -d 'scope=system/*.read'
expect_eq "after rotate-secret the old secret fails" "$STATUS" 401
CLIENT_SECRET=$new
TOKEN=""
token_req -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials -d 'scope=system/*.read'
expect_eq "and the new one works" "$STATUS" 200
audit_settle
expect_eq "every refused token request is audited with its reason" \
  "$(psql_q "SELECT count(*) FROM audit_event WHERE endpoint = '/auth/token' AND outcome = 'refused' AND detail IS NULL")" 0
expect_true "tokens appear in no log" eval "! grep -rqF '$rsa_token' '$PA_ROOT/log'"
expect_eq "tokens appear in no audit event" "$(psql_q "SELECT count(*) FROM audit_event WHERE audit_event::text LIKE '%$rsa_token%'")" 0
expect_eq "pa-admin audit --export writes AuditEvents" \
  "$(admin audit --export --client "$RSA" | jq -r .resourceType | sort -u)" AuditEvent
expect_match "pa-admin audit lists a client's requests" "$(admin audit --client "$EC" --no-header | cut -f7 | sort -u | tr '\n' ' ')" 'export .*token'
all_rows=$(admin audit --client "$EC" --no-header)
expect_true "... more than two of them" [ "$(wc -l <<< "$all_rows")" -gt 2 ]
expect_eq "pa-admin audit --limit 2 shows the newest two, oldest first" \
  "$(admin audit --client "$EC" --no-header --limit 2)" "$(tail -n 2 <<< "$all_rows")"
expect_eq "... and so does --export" "$(admin audit --export --client "$EC" --limit 2)" \
  "$(admin audit --export --client "$EC" | tail -n 2)"
