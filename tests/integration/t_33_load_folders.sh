# pa-admin load FOLDER takes its subfolders too, in name order (hidden ones
# skipped), and says so when a folder cannot be read.

admin() { "$PA_ROOT/bin/pa-admin" --config "$PA_ROOT/provider-access.conf" "$@"; }
pat() { printf '{"resourceType":"Patient","id":"%s"}\n' "$1"; }
d=$HTTP_TMP/extract
mkdir -p "$d/2024/01" "$d/2024/02/late" "$d/.cache"
pat lf-top > "$d/top.ndjson"
pat lf-jan > "$d/2024/01/patients.ndjson"
pat lf-feb > "$d/2024/02/patients.ndjson"
pat lf-late | gzip > "$d/2024/02/late/patients.ndjson.gz"
pat lf-hidden > "$d/.cache/patients.ndjson"
echo "not data" > "$d/2024/README.txt"
out=$(admin load "$d" 2>&1); rc=$?
expect_eq "a folder loads with its subfolders" "$rc" 0
expect_eq "... every loadable file in them, hidden folders and other files left alone" \
  "$(psql_q "SELECT string_agg(id, ' ' ORDER BY id) FROM resource WHERE type = 'Patient' AND id LIKE 'lf-%'")" \
  "lf-feb lf-jan lf-late lf-top"
expect_match "... and says how many it loaded" "$out" "^loaded 4 resources"
mkdir -p "$d/2024/locked"
chmod 000 "$d/2024/locked"
if [ "$(id -u)" = 0 ]; then
  # root reads any folder: make one unreadable for it by a name that is no folder any more
  rmdir "$d/2024/locked"; ln -s /nonexistent "$d/2024/locked"
fi
out=$(admin load "$d" 2>&1); rc=$?
expect_eq "a folder entry that cannot be read fails the load" "$rc" 2
expect_match "... naming it" "$out" "cannot read $d/2024/locked"
rm -rf "$d"
psql_q "DELETE FROM resource WHERE type = 'Patient' AND id LIKE 'lf-%'" > /dev/null
