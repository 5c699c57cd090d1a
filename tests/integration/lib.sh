# Helpers for the integration tests: HTTP calls with curl and assertions
# that count.  Sourced by run; every t_*.sh file runs in the same shell.

PASSED=${PASSED:-0}
FAILED=${FAILED:-0}
FAILED_NAMES=${FAILED_NAMES:-}
HTTP_TMP=$(mktemp -d)

ok() { PASSED=$((PASSED + 1)); printf 'ok     %s\n' "$1"; }
fail() {
  FAILED=$((FAILED + 1))
  FAILED_NAMES="$FAILED_NAMES
  - $1"
  printf 'FAILED %s\n' "$1"
  [ -n "${2:-}" ] && printf '       %s\n' "$2"
  return 0
}

# skip NAME REASON: a check that cannot run here, said so (not counted)
SKIPPED=${SKIPPED:-0}
skip() { SKIPPED=$((SKIPPED + 1)); printf 'SKIP   %s: %s\n' "$1" "$2"; }

# expect_eq NAME ACTUAL EXPECTED
expect_eq() {
  if [ "$2" = "$3" ]; then ok "$1"; else fail "$1" "expected '$3', got '$2'"; fi
}

# expect_match NAME ACTUAL REGEX
expect_match() {
  if [[ "$2" =~ $3 ]]; then ok "$1"; else fail "$1" "'${2:0:300}' does not match /$3/"; fi
}

# expect_true NAME CMD...: passes when CMD exits 0 (what it prints is not shown)
expect_true() {
  local name=$1; shift
  if "$@" > /dev/null; then ok "$name"; else fail "$name" "command failed: $*"; fi
}

# token_for ID SECRET: an access token for a client that has a secret
token_for() {
  curl -s -u "$1:$2" "$BASE/auth/token" -d grant_type=client_credentials --data-urlencode "scope=${3:-system/*.read}" \
    | jq -r '.access_token // empty'
}

# The suite's own client (made by run); its token is renewed before it
# expires.  Call ensure_token in this shell (not in $(...)) so that it sticks.
TOKEN_AT=0
ensure_token() {
  if [ "${1:-}" = --now ] || [ $((SECONDS - TOKEN_AT)) -gt 200 ] || [ -z "${TOKEN:-}" ]; then
    TOKEN=$(token_for "$CLIENT_ID" "$CLIENT_SECRET")
    TOKEN_AT=$SECONDS
  fi
}

# http METHOD URL [curl args...]: sets STATUS, BODY and HEADERS (a file); never
# fails.  Sends the suite client's token unless NOAUTH=1.
http() {
  local method=$1 url=$2; shift 2
  local auth=()
  if [ "${NOAUTH:-0}" != 1 ]; then
    ensure_token
    auth=(-H "Authorization: Bearer $TOKEN")
  fi
  : > "$HTTP_TMP/h"
  STATUS=$(curl -s -X "$method" -o "$HTTP_TMP/b" -D "$HTTP_TMP/h" -w '%{http_code}' "${auth[@]}" "$@" "$url" || true)
  BODY=$(cat "$HTTP_TMP/b" 2>/dev/null || true)
  HEADERS=$HTTP_TMP/h
}

# header NAME: the value of a response header of the last http call
header() {
  grep -i "^$1:" "$HEADERS" | head -n 1 | cut -d' ' -f2- | tr -d '\r'
}

# jq_body [jq options] FILTER: applies jq to the last body ("" if it is not JSON)
jq_body() {
  jq -r "$@" <<< "$BODY" 2>/dev/null || true
}

# expect_outcome NAME STATUS [TEXT]: the last answer is STATUS with an
# OperationOutcome as application/fhir+json, whose diagnostics hold TEXT
expect_outcome() {
  local name=$1 status=$2 text=${3:-}
  local rt ct diag
  rt=$(jq_body .resourceType)
  ct=$(header Content-Type)
  diag=$(jq_body '.issue[0].diagnostics')
  if [ "$STATUS" = "$status" ] && [ "$rt" = OperationOutcome ] && [[ "$ct" == application/fhir+json* ]] &&
     { [ -z "$text" ] || [[ "$diag" == *"$text"* ]]; }; then
    ok "$name"
  else
    fail "$name" "expected $status OperationOutcome mentioning '$text'; got $STATUS $ct: ${BODY:0:300}"
  fi
}

# psql_q SQL [DATABASE]: runs SQL against the stack's database (or another of its
# server's), unaligned output
psql_q() {
  PGPASSWORD=$(cat "$PA_ROOT/secrets/pg") psql -h 127.0.0.1 -p "$PA_PG_PORT" -U provider_access \
    -d "${2:-provider_access}" -v ON_ERROR_STOP=1 -Atq -c "$1"
}

# redis_q ARGS...: a command to the stack's Redis
redis_q() {
  redis-cli -p "$PA_REDIS_PORT" -a "$(cat "$PA_ROOT/secrets/redis")" --no-auth-warning "$@"
}

# audit_settle: waits (10 s at most) until the runner has stored every audit
# event the responders queued; they queue each one just after their answer
audit_settle() {
  local deadline=$((SECONDS + 10))
  sleep 0.1
  until [ "$(redis_q XLEN pa:audit)" = 0 ]; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.1
  done
}

# kickoff GROUP [curl args]: starts an export; sets JOB_URL
kickoff() {
  local group=$1; shift
  http GET "$BASE/Group/$group/\$export" -H 'Accept: application/fhir+json' -H 'Prefer: respond-async' "$@"
  JOB_URL=$(header Content-Location)
}

# wait_job URL [SECONDS]: polls a job with the suite's token until it is no
# longer running (not 202, nor 429); sets STATUS/BODY; 1 after SECONDS (60)
wait_job() {
  wait_job_as "" "$@"
}

# wait_job_as TOKEN URL [SECONDS]: wait_job with another client's token
wait_job_as() {
  local token=$1 url=$2 deadline=$((SECONDS + ${3:-60}))
  while :; do
    if [ -n "$token" ]; then
      NOAUTH=1 http GET "$url" -H 'Accept: application/json' -H "Authorization: Bearer $token"
    else
      http GET "$url" -H 'Accept: application/json'
    fi
    [ "$STATUS" != 202 ] && [ "$STATUS" != 429 ] && return 0
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.2
  done
}

# apache_graceful: apachectl graceful on the stack's Apache, returning once
# Apache says it has resumed on the configuration read anew
apache_graceful() {
  local log=$PA_ROOT/log/httpd-error.log before
  before=$(grep -c 'resuming normal operations' "$log")
  "$REPO/scripts/pa-stack" apachectl graceful > /dev/null 2>&1
  wait_for 20 eval "[ \"\$(grep -c 'resuming normal operations' '$log')\" -gt $before ]"
}

# wait_for SECONDS CMD...: runs CMD until it succeeds; 1 if it has not after SECONDS
wait_for() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" > /dev/null 2>&1; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.1
  done
}

# poll URL [curl args]: GET a job's status, waiting out a 429 (polled too often)
poll() {
  http GET "$@"
  while [ "$STATUS" = 429 ]; do sleep 0.1; http GET "$@"; done
}

# progress_of URL: the percentage in X-Progress, or 0
progress_of() {
  poll "$1"
  local p; p=$(header X-Progress)
  [[ "$p" =~ ^([0-9]+)% ]] && echo "${BASH_REMATCH[1]}" || echo 0
}

# download_all MANIFEST_JSON DIR: fetches every output file into DIR, in manifest order
download_all() {
  local dir=$2 url i=0
  ensure_token
  mkdir -p "$dir"
  for url in $(jq -r '.output[].url' <<< "$1"); do
    i=$((i + 1))
    curl -sf -H "Authorization: Bearer $TOKEN" "$url" -o "$dir/$(printf '%03d' $i)-$(basename "$url")" || return 1
  done
}

# same_files NAME DIR1 DIR2: the check NAME, that both folders hold the same
# NDJSON files (names and bytes), one at least
same_files() {
  if compgen -G "$2/*.ndjson" > /dev/null && diff -q <(cd "$2" && for f in *.ndjson; do echo "$f"; cat "$f"; done) \
             <(cd "$3" && for f in *.ndjson; do echo "$f"; cat "$f"; done) > /dev/null; then
    ok "$1"
  else
    fail "$1" "$(diff -rq "$2" "$3" | head -3)"
  fi
}
