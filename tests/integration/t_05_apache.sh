# The Apache configurations: the stack's, and the production conf as installed.

expect_match "the stack's rendered Apache config passes apachectl configtest" \
  "$("$REPO/scripts/pa-stack" apachectl configtest 2>&1)" 'Syntax OK'
"$REPO/scripts/pa-stack" apachectl graceful > /dev/null 2>&1
sleep 1
http GET "$BASE/metadata"
expect_eq "apachectl graceful keeps the stack serving" "$STATUS" 200

stage=$(mktemp -d)
make -C "$PA_BUILD" install DESTDIR="$stage" > "$stage.log" 2>&1
expect_eq "make install DESTDIR works" "$?" 0
prefix=$(sed -n 's/^prefix = //p' "$PA_BUILD/Makefile")
sysconf=$(sed -n 's/^sysconfdir = //p' "$PA_BUILD/Makefile" | sed "s|\${prefix}|$prefix|")
for f in "$prefix/bin/pa-admin" "$prefix/sbin/pa-runner" "$prefix/libexec/provider-access/pa-api.fcgi" \
         "$prefix/share/provider-access/sql/001_base.sql" "$sysconf/apache2/conf-available/provider-access.conf" \
         "$sysconf/provider-access/provider-access.conf"; do
  expect_true "installed: $f" test -e "$stage$f"
done
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
