/*
 * pa_filter, data-driven: tests/unit/filter/cases holds _typeFilter queries
 * and what each must give, valid and invalid alike.  A case is a block of
 * lines ended by an empty line:
 *
 *   query Observation?code=http://loinc.org|1234-5   (one or more: one type's, OR'ed)
 *   sql  AND ((...))                                  what pa_filter_sql appends
 *   value http://loinc.org|1234-5                     each placeholder's value, in order
 *
 * or, for a query that is refused:
 *
 *   query Observation?code:not=x
 *   error ENOTSUP modifier ':not'                     the code and words of the refusal
 *
 * Placeholders are numbered from $5, as an export's query numbers them.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cu_main.h"
#include "pa_filter.h"

#ifndef FILTER_CASES
#define FILTER_CASES "tests/unit/filter/cases"
#endif
#define FIRST_PLACEHOLDER 5
#define MAX_QUERIES 8

struct filter_case {
    int line; /* where it starts in the file */
    char *queries[MAX_QUERIES];
    int nqueries;
    char *sql; /* expected, or NULL */
    char *values[PA_FILTER_SQL_VALUES];
    int nvalues;
    char *error; /* "ENOTSUP words", or NULL */
};

static const char *code_name(int rc)
{
    switch(rc) {
    case PA_OK: return "OK";
    case PA_EINVAL: return "EINVAL";
    case PA_ENOTSUP: return "ENOTSUP";
    case PA_ETOOBIG: return "ETOOBIG";
    default: return "other";
    }
}

static void case_free(struct filter_case *c)
{
    int i;

    for(i = 0; i < c->nqueries; i++)
        free(c->queries[i]);
    for(i = 0; i < c->nvalues; i++)
        free(c->values[i]);
    free(c->sql);
    free(c->error);
    memset(c, 0, sizeof(*c));
}

/* Runs one case; 0 when it gives what it says, else prints why. */
static int run_case(const struct filter_case *c)
{
    json_object *filters = json_object_new_object(), *queries = NULL;
    const char *values[PA_FILTER_SQL_VALUES];
    char type[64];
    pa_buf sql;
    pa_err err;
    int rc = PA_OK, n = 0, i, bad = 0;

    pa_buf_init(&sql, PA_FILTER_SQL_BYTES * 2);
    pa_err_clear(&err);
    for(i = 0; i < c->nqueries && !rc; i++)
        rc = pa_filter_add(filters, c->queries[i], &err);
    if(!rc)
        rc = pa_filter_check(filters, &err);
    if(!rc) {
        snprintf(type, sizeof(type), "%.*s", (int)strcspn(c->queries[0], "?"), c->queries[0]);
        json_object_object_get_ex(filters, type, &queries);
        rc = pa_filter_sql(queries, &sql, FIRST_PLACEHOLDER, values, &n, PA_FILTER_SQL_VALUES);
    }
    if(c->error) {
        char got[600];

        snprintf(got, sizeof(got), "%s %s", code_name(rc), err.msg);
        if(rc == PA_OK || strncmp(c->error, got, strlen(c->error))) {
            fprintf(stderr, "filter case at line %d: want error '%s', got '%s'\n", c->line, c->error,
                    rc ? got : pa_buf_str(&sql));
            bad = 1;
        }
    }
    else if(rc) {
        fprintf(stderr, "filter case at line %d: refused: %s %s\n", c->line, code_name(rc), err.msg);
        bad = 1;
    }
    else {
        if(strcmp(pa_buf_str(&sql), c->sql ? c->sql : "")) {
            fprintf(stderr, "filter case at line %d:\n  want sql %s\n  got  sql %s\n", c->line, c->sql,
                    pa_buf_str(&sql));
            bad = 1;
        }
        for(i = 0; i < n || i < c->nvalues; i++)
            if(i >= n || i >= c->nvalues || strcmp(values[i], c->values[i])) {
                fprintf(stderr, "filter case at line %d: value %d: want '%s', got '%s'\n", c->line, i + 1,
                        i < c->nvalues ? c->values[i] : "(none)", i < n ? values[i] : "(none)");
                bad = 1;
            }
    }
    pa_buf_free(&sql);
    json_object_put(filters);
    return bad;
}

/* Each case in the file gives what it says: one assertion a case. */
static void test_filter_cases(void)
{
    FILE *f = fopen(FILTER_CASES, "r");
    struct filter_case c;
    char line[PA_FILTER_SQL_BYTES];
    int lineno = 0, ncases = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    memset(&c, 0, sizeof(c));
    while(fgets(line, sizeof(line), f)) {
        size_t len = strcspn(line, "\n");
        char *v = strchr(line, ' ');

        line[len] = '\0';
        lineno++;
        if(line[0] == '#')
            continue;
        if(!line[0]) {
            if(c.nqueries) {
                CU_ASSERT_EQUAL(run_case(&c), 0);
                ncases++;
            }
            case_free(&c);
            continue;
        }
        if(!c.line)
            c.line = lineno;
        v = v ? v + 1 : line + len;
        if(!strncmp(line, "query ", 6) && c.nqueries < MAX_QUERIES)
            c.queries[c.nqueries++] = strdup(v);
        else if(!strncmp(line, "sql ", 4))
            c.sql = strdup(v - 1); /* the SQL starts with its space */
        else if(!strncmp(line, "value ", 6) && c.nvalues < PA_FILTER_SQL_VALUES)
            c.values[c.nvalues++] = strdup(v);
        else if(!strncmp(line, "error ", 6))
            c.error = strdup(v);
        else
            CU_FAIL("a line of the cases file is neither query, sql, value nor error");
    }
    if(c.nqueries) {
        CU_ASSERT_EQUAL(run_case(&c), 0);
        ncases++;
    }
    case_free(&c);
    fclose(f);
    CU_ASSERT(ncases >= 30);
}

int main(void)
{
    static const struct cu_test tests[] = {
        { "_typeFilter queries and the SQL they give, or why they are refused", test_filter_cases },
        { NULL, NULL },
    };

    return cu_run("filter", tests);
}
