# TLS: the stack with mod_ssl and a self-signed certificate (PA_HTTPS_PORT in
# run) serves a token, an export and a download over https; with loopback's
# exemption off, plain HTTP is refused with the https URL to use.

CA=$PA_ROOT/tls/cert.pem
TLS_BASE="https://127.0.0.1:$PA_HTTPS_PORT/fhir"
# reconfigure BASE_URL EXTRA: rewrites the configuration, restarts the runner
# and the responders, and waits until plain HTTP from here answers as expected
reconfigure() {
  PA_BASE_URL=$1 PA_EXTRA_CONFIG="$PA_EXTRA_CONFIG$2" "$REPO/scripts/pa-stack" restart-runner > /dev/null
  "$REPO/scripts/pa-stack" apachectl graceful
  local want=$3 deadline=$((SECONDS + 20))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/metadata")" = "$want" ] || [ $SECONDS -ge $deadline ]; do
    sleep 0.3
  done
}

code=$(curl -s --cacert "$CA" -o "$HTTP_TMP/tls-meta" -D "$HTTP_TMP/tls-h" -w '%{http_code}' "$TLS_BASE/metadata")
expect_eq "the CapabilityStatement is served over TLS" "$code" 200
expect_true "with HSTS" grep -qi '^Strict-Transport-Security: max-age=' "$HTTP_TMP/tls-h"
expect_true "TLS 1.1 and older are refused" eval "! curl -s --cacert '$CA' --tls-max 1.1 -o /dev/null '$TLS_BASE/metadata'"
expect_true "an untrusted certificate is refused by the client (curl checks it)" \
  eval "! curl -s -o /dev/null '$TLS_BASE/metadata'"

reconfigure "$TLS_BASE" "
plain_http_loopback = 0" 403
http GET "$BASE/metadata" -H 'Accept: application/fhir+json'
expect_outcome "plain HTTP is refused with a 403 OperationOutcome" 403 "answers over HTTPS only"
expect_eq "naming the https URL to use" "$(jq_body '.issue[0].diagnostics')" \
  "this server answers over HTTPS only: use $TLS_BASE/metadata"
NOAUTH=1 http POST "$BASE/auth/token" -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials
expect_eq "a token request over plain HTTP is refused" "$STATUS" 403

tok=$(curl -s --cacert "$CA" -u "$CLIENT_ID:$CLIENT_SECRET" "$TLS_BASE/auth/token" -d grant_type=client_credentials \
  -d 'scope=system/*.read' | jq -r '.access_token // empty')
expect_match "a token over TLS" "$tok" '^[0-9a-f]{64}$'
tls() { NOAUTH=1 http "$@" --cacert "$CA" -H "Authorization: Bearer $tok"; }
tls GET "$TLS_BASE/Group/small/\$export" -H 'Accept: application/fhir+json' -H 'Prefer: respond-async'
expect_eq "an export kicked off over TLS" "$STATUS" 202
tls_job=$(header Content-Location)
expect_match "its status URL is https" "$tls_job" "^$TLS_BASE/bulkstatus/"
deadline=$((SECONDS + 60))
while :; do
  tls GET "$tls_job" -H 'Accept: application/json'
  [ "$STATUS" != 202 ] && [ "$STATUS" != 429 ] && break
  [ $SECONDS -ge $deadline ] && break
  sleep 0.3
done
expect_eq "completes" "$STATUS" 200
tls_file=$(jq_body -r '.output[] | select(.type == "Patient") | .url')
expect_match "its manifest lists https files" "$tls_file" "^$TLS_BASE/bulkfiles/"
tls GET "$tls_file" -H 'Accept: application/fhir+ndjson'
expect_eq "a file downloads over TLS" "$STATUS" 200
expect_eq "whole" "$(grep -c '"resourceType":"Patient"' <<< "$BODY")" \
  "$(psql_q "SELECT count(*) FROM roster_member m JOIN resource r ON r.type = 'Patient' AND r.id = m.patient_id
             WHERE m.roster_id = 'small'")"
tls DELETE "$tls_job"

reconfigure "" "" 200
ensure_token --now
http GET "$BASE/metadata"
expect_eq "plain HTTP on loopback is open again (the quickstart's setting)" "$STATUS" 200
