# The Apache configurations: the stack's, and the production conf as installed.

expect_match "the stack's rendered Apache config passes apachectl configtest" \
  "$("$REPO/scripts/pa-stack" apachectl configtest 2>&1)" 'Syntax OK'
apache_graceful
http GET "$BASE/metadata"
expect_eq "apachectl graceful keeps the stack serving" "$STATUS" 200

stage=$(mktemp -d)
make -C "$PA_BUILD" install DESTDIR="$stage" > "$stage.log" 2>&1
expect_eq "make install DESTDIR works" "$?" 0
prefix=$(sed -n 's/^prefix = //p' "$PA_BUILD/Makefile")
sysconf=$(sed -n 's/^sysconfdir = //p' "$PA_BUILD/Makefile" | sed "s|\${prefix}|$prefix|")
for f in "$prefix/bin/pa-admin" "$prefix/sbin/pa-runner" "$prefix/libexec/provider-access/pa-api.fcgi" \
         "$prefix/share/provider-access/sql/001_base.sql" "$sysconf/apache2/conf-available/provider-access.conf" \
         "$sysconf/provider-access/provider-access.conf" "$sysconf/logrotate.d/provider-access"; do
  expect_true "installed: $f" test -e "$stage$f"
done
expect_match "the logrotate file rotates the application log and has every process reopen it" \
  "$(cat "$stage$sysconf/logrotate.d/provider-access")" "/log/provider-access/\*\.log \{.*systemctl reload pa-runner.*apache2ctl graceful"
if command -v logrotate > /dev/null; then
  expect_true "logrotate reads it" logrotate -d "$stage$sysconf/logrotate.d/provider-access"
fi
# configtest of the installed conf, as a2enconf would include it (its paths
# moved into the staging folder, since Apache checks that the responder exists)
conf=$stage/provider-access.conf
sed "s|$prefix/|$stage$prefix/|g" "$stage$sysconf/apache2/conf-available/provider-access.conf" > "$conf"
cat > "$stage/httpd.conf" <<CONF
ServerRoot "$stage"
ServerName 127.0.0.1
Listen 127.0.0.1:1
PidFile "$stage/httpd.pid"
ErrorLog "$stage/error.log"
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule alias_module /usr/lib/apache2/modules/mod_alias.so
LoadModule fcgid_module /usr/lib/apache2/modules/mod_fcgid.so
LoadModule xsendfile_module /usr/lib/apache2/modules/mod_xsendfile.so
Include "$conf"
CONF
expect_match "the production conf passes configtest" "$(apache2 -d "$stage" -f "$stage/httpd.conf" -t 2>&1)" 'Syntax OK'
sed -i '/xsendfile_module/d' "$stage/httpd.conf"
expect_match "the production conf names a missing module" "$(apache2 -d "$stage" -f "$stage/httpd.conf" -t 2>&1)" 'a2enmod xsendfile'
rm -rf "$stage" "$stage.log"

# Errors Apache raises itself, before or instead of the responder, are
# OperationOutcomes too (apache/errors/), and TRACE is off.
# raw REQUEST: sends bytes as they are (curl would fix them); sets STATUS, BODY
raw() {
  local out
  out=$(exec 3<>"/dev/tcp/127.0.0.1/$PA_HTTP_PORT"; printf '%b' "$1" >&3; timeout 5 cat <&3)
  STATUS=$(head -n 1 <<< "$out" | cut -d' ' -f2)
  RAW_CT=$(grep -i '^Content-Type:' <<< "$out" | head -n 1 | tr -d '\r' | cut -d' ' -f2-)
  BODY=$(sed '1,/^\r$/d' <<< "$out")
}
expect_apache_outcome() {  # NAME STATUS
  if [ "$STATUS" = "$2" ] && [[ "$RAW_CT" == application/fhir+json* ]] && [ "$(jq_body .resourceType)" = OperationOutcome ]; then
    ok "$1"
  else
    fail "$1" "expected $2 OperationOutcome, got $STATUS $RAW_CT: ${BODY:0:160}"
  fi
}
raw "GET /fhir/Group/%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
expect_apache_outcome "a malformed %-escape in the path is a 400 OperationOutcome" 400
raw "GET /fhir/metadata HTTP/1.1\r\nHost: x\r\nno-colon-here\r\nConnection: close\r\n\r\n"
expect_apache_outcome "a malformed header line is a 400 OperationOutcome" 400
raw "GET /fhir/metadata HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\nConnection: close\r\n\r\n"
expect_apache_outcome "a NUL byte in a header is a 400 OperationOutcome" 400
raw "GET /fhir/Group/a%2Fb HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
expect_apache_outcome "an encoded slash in the path is a 404 OperationOutcome" 404
raw "GET /fhir/Group/a%00b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
expect_apache_outcome "an encoded NUL in the path is a 404 OperationOutcome" 404
raw "GET /fhir/Group/$(head -c 300 /dev/zero | tr '\0' a) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
if [ "$STATUS" -ge 400 ] && [[ "$RAW_CT" == application/fhir+json* ]] && [ "$(jq_body .resourceType)" = OperationOutcome ]; then
  ok "a path segment over 255 bytes gets an OperationOutcome ($STATUS)"
else fail "a path segment over 255 bytes gets an OperationOutcome" "$STATUS $RAW_CT: ${BODY:0:160}"; fi
raw "GET /fhir/Group?name=$(head -c 10000 /dev/zero | tr '\0' a) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
expect_apache_outcome "a URL too long is a 414 OperationOutcome" 414
raw "TRACE /fhir/metadata HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
expect_apache_outcome "TRACE is refused with an OperationOutcome" 405
raw "GET /nothing-here HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
expect_apache_outcome "a path outside /fhir is a 404 OperationOutcome" 404
kickoff small
wait_job "$JOB_URL" 60
f=$(jq_body -r '.output[0].url')
http GET "$f" -H 'Range: bytes=99999999-'
expect_outcome "a byte range past a file's end is a 416 OperationOutcome" 416
http DELETE "$JOB_URL"

# no access log keeps a /fhir query string (they carry patient references); /fhir
# requests have a log of their own, with the request id
http GET "$BASE/Group?name=secret-query-value&_count=2"
rid=$(header X-Request-Id)
expect_true "the /fhir log has the request, by method and path, with its request id" \
  wait_for 5 grep -q "\"GET /fhir/Group HTTP/1.1\" 200 .* \"$rid\"" "$PA_ROOT/log/provider-access-access.log"
expect_true "Debian's combined format, redefined, logs the path alone" \
  grep -q "\"GET /fhir/Group HTTP/1.1\" 200" "$PA_ROOT/log/httpd-combined.log"
expect_eq "no access log holds the query string" \
  "$(cat "$PA_ROOT"/log/*access*.log "$PA_ROOT/log/httpd-combined.log" | grep -c secret-query-value || true)" 0
expect_eq "a path outside /fhir is not in the /fhir log" "$(grep -c 'nothing-here' "$PA_ROOT/log/provider-access-access.log" || true)" 0

# a pool grown for a peak keeps no PostgreSQL backend per process (responder_db_idle_seconds = 2 here)
backends() { psql_q "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"; }
http GET "$BASE/Group/small" -H 'Accept: application/fhir+json'
expect_eq "a Group read (on PostgreSQL)" "$STATUS" 200
busy=$(backends)
deadline=$((SECONDS + 10))
until [ "$(backends)" -lt "$busy" ] || [ $SECONDS -ge $deadline ]; do sleep 0.5; done
expect_true "a responder closes its PostgreSQL connection once unused for responder_db_idle_seconds" \
  [ "$(backends)" -lt "$busy" ]
expect_true "... saying so at debug level" grep -q "pa-api.*PostgreSQL connection unused for [0-9]* s: closed" \
  "$PA_ROOT/log/provider-access.log"
http GET "$BASE/Group/small" -H 'Accept: application/fhir+json'
expect_eq "and connects again for the next request that needs it" "$STATUS" 200

# xsendfile = 0: the responder streams an export file itself, and what the
# client gets is what Apache's X-Sendfile sends
kickoff small
wait_job "$JOB_URL" 30
xs_url=$(jq_body '.output[0].url')
ensure_token
curl -s -H "Authorization: Bearer $TOKEN" "$xs_url" -o "$HTTP_TMP/xs-apache.ndjson"
conf=$PA_ROOT/provider-access.conf
cp -p "$conf" "$HTTP_TMP/xs.keep"
echo "xsendfile = 0" >> "$conf"
apache_graceful
http GET "$xs_url" -H 'Accept: application/fhir+ndjson'
expect_eq "with xsendfile = 0 the responder serves a file itself" "$STATUS $(header Content-Type)" \
  "200 application/fhir+ndjson"
expect_eq "... with no X-Sendfile header for Apache to act on" "$(header X-Sendfile)" ""
curl -s -H "Authorization: Bearer $TOKEN" "$xs_url" -o "$HTTP_TMP/xs-self.ndjson"
expect_true "... byte for byte what Apache sends" cmp -s "$HTTP_TMP/xs-apache.ndjson" "$HTTP_TMP/xs-self.ndjson"
expect_true "... which is the job's file, not nothing" test -s "$HTTP_TMP/xs-self.ndjson"
expect_eq "... and gzip when asked, the same lines" \
  "$(curl -s --compressed -H "Authorization: Bearer $TOKEN" "$xs_url" | sha256sum)" \
  "$(sha256sum < "$HTTP_TMP/xs-apache.ndjson")"
cp -p "$HTTP_TMP/xs.keep" "$conf"
apache_graceful
http DELETE "$JOB_URL"
