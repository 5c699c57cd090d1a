# The synthetic payer's data as exported validates structurally against each
# resource's meta.profile: every element the profile requires is present.

REQ=$HERE/profiles/required.json
org_npi=$(psql_q "SELECT org_npi FROM roster WHERE id = 'roster-org-0'")
p13=$("$PA_ROOT/bin/pa-admin" --config "$PA_ROOT/provider-access.conf" client add --name "Profiles" --npi "$org_npi" --secret 2> /dev/null)
p13_token=$(token_for "$(sed -n 1p <<< "$p13")" "$(sed -n 2p <<< "$p13")")
check_export() {  # check_export TOKEN LABEL: exports roster-org-0 as TOKEN and checks every line
  NOAUTH=1 kickoff roster-org-0 -H "Authorization: Bearer $1"
  local url=$JOB_URL
  wait_job_as "$1" "$url"
  local manifest=$BODY all=$HTTP_TMP/profiles-$2.ndjson u
  : > "$all"
  for u in $(jq -r '.output[].url' <<< "$manifest"); do curl -s -H "Authorization: Bearer $1" "$u" >> "$all"; done
  expect_true "the $2 export has data of every kind" test "$(jq -r .resourceType "$all" | sort -u | wc -l)" -ge 12
  # lines whose profile is unknown, or that lack a required element
  local bad rc
  bad=$(jq -c --slurpfile req "$REQ" '
    def has_path($obj; $p):
      reduce ($p | split("."))[] as $k ($obj; if type == "object" then .[$k] else null end) != null;
    . as $res | (.meta.profile // [])[0] as $p | $req[0][$p // ""] as $r
    | if $r == null then {id, problem: ("no required-elements entry for " + ($p // "(no profile)"))}
      else [$r[] | select((split("|") | map(has_path($res; .)) | any) | not)] as $missing
      | if ($missing | length) > 0 then {id, profile: $p, missing: $missing} else empty end
      end' "$all" 2>&1)
  rc=$?
  expect_eq "the $2 lines could all be checked" "$rc" 0
  expect_eq "every $2 line has what its meta.profile requires" "$(head -c 600 <<< "$bad")" ""
  NOAUTH=1 http DELETE "$url" -H "Authorization: Bearer $1"
}
check_export "$p13_token" "provider"
fin13=$("$PA_ROOT/bin/pa-admin" --config "$PA_ROOT/provider-access.conf" client add --name "Profiles VBC" --npi "$org_npi" --secret --financial 2> /dev/null)
check_export "$(token_for "$(sed -n 1p <<< "$fin13")" "$(sed -n 2p <<< "$fin13")")" "financial"
