/*
 * The shared main() of the CUnit test programs: runs every registered suite
 * and turns failures into the exit status automake reads (CU_basic_run_tests
 * returns 0 even when tests fail, and the cleanup resets the count).
 */
#ifndef PA_CU_MAIN_H
#define PA_CU_MAIN_H

#include <CUnit/Basic.h>
#include <stdio.h>

struct cu_test {
    const char *name;
    void (*fn)(void);
};

static int cu_run(const char *suite_name, const struct cu_test *tests)
{
    CU_pSuite suite;
    unsigned failures;

    if(CU_initialize_registry() != CUE_SUCCESS)
        return 99;
    suite = CU_add_suite(suite_name, NULL, NULL);
    if(!suite)
        return 99;
    for(; tests->name; tests++)
        if(!CU_add_test(suite, tests->name, tests->fn))
            return 99;
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failures = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failures ? 1 : 0;
}

#endif
