# The job model's state machine in C, against this stack's Redis and PostgreSQL.

"$PA_BUILD/tests/integration/pa-test-jobs" "$PA_ROOT/provider-access.conf" > "$HTTP_TMP/jobs.log" 2>&1
rc=$?
grep -E '^  Test:|asserts' "$HTTP_TMP/jobs.log" | sed 's/^/       /'
expect_eq "the job model's tests pass (pa-test-jobs)" "$rc" 0
[ $rc = 0 ] || grep -B2 -A3 'FAILED\|Assert' "$HTTP_TMP/jobs.log" | head -40
