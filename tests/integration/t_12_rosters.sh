# pa-admin roster: the payer's rosters by hand.

admin() { "$PA_ROOT/bin/pa-admin" --config "$PA_ROOT/provider-access.conf" "$@"; }
out=$(admin roster create hand-made --name "Made by hand" --npi 1234567893)
expect_eq "roster create succeeds" "$?" 0
admin roster create hand-made --name again --npi 1234567893 > /dev/null 2>&1
expect_eq "creating it twice is refused" "$?" 1
admin roster create bad-npi --name x --npi 1234567890 > /dev/null 2>&1
expect_eq "a roster for an invalid NPI is refused" "$?" 1
expect_eq "roster add adds members (ids or references)" "$(admin roster add hand-made p1 Patient/p2 --from 2025-01-01)" "added 2 members"
expect_match "roster list shows it with its member count" "$(admin roster list --npi 1234567893 --no-header)" \
  $'hand-made\t1234567893\t\t2\topen\tMade by hand'
expect_eq "roster remove makes a member inactive" "$(admin roster remove hand-made p1)" "removed 1 members"
http GET "$BASE/Group/hand-made"
expect_eq "the provider sees the change" "$(jq_body '[.member[] | .entity.reference + ":" + (.inactive | tostring)] | join(",")')" \
  "Patient/p1:true,Patient/p2:false"
expect_eq "the removed member's period ends today" "$(jq_body '.member[0].period.end')" "$(date -u +%Y-%m-%d)"
admin roster status hand-made final
expect_eq "roster status sets the attribution list status" "$(admin roster status hand-made | cut -f2)" final
http GET "$BASE/Group/hand-made"
expect_eq "the Group carries it" "$(jq_body '.extension[0].valueCode')" final
admin roster status hand-made closed > /dev/null 2>&1
expect_eq "an unknown status is refused" "$?" 2
out=$(admin roster add nosuch p1 2>&1); rc=$?
expect_eq "adding to an unknown roster fails" "$rc" 1
expect_eq "... and says why" "$out" "pa-admin: no roster nosuch"
