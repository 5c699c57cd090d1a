# Sourced by v1-flow and v2-flow: the base URL, and curl that says why a step failed.
#
# BASE: the FHIR base URL; default $PA_BASE_URL (what `./quickstart env` exports),
# else the quickstart stack's http://127.0.0.1:8080/fhir.
BASE=${BASE:-${PA_BASE_URL:-http://127.0.0.1:8080/fhir}}

say() { printf '\n== %s\n' "$*" >&2; }

# api CURL_ARGS... URL: the response body on stdout.  A failed request (no
# answer, or an HTTP status of 400 or more) prints the status and the
# server's answer (its OperationOutcome, or OAuth error) and exits 1.
api() {
  local body code
  body=$(mktemp)
  if ! code=$(curl -sS -o "$body" -w '%{http_code}' "$@"); then
    rm -f "$body"
    echo "no answer from ${*: -1}" >&2
    exit 1
  fi
  if [ "$code" -ge 400 ]; then
    echo "HTTP $code from ${*: -1}:" >&2
    cat "$body" >&2
    echo >&2
    rm -f "$body"
    exit 1
  fi
  cat "$body"
  rm -f "$body"
}

# token_secret CLIENT_ID SECRET: an access token for a client with a secret
token_secret() {
  api -u "$1:$2" -d grant_type=client_credentials -d 'scope=system/*.read' "$BASE/auth/token" | jq -r .access_token
}
