/*
 * pa-admin migrate, and the migrations' checksums that pa-admin check also
 * verifies.  A migration is a file NNN_name.sql of the SQL folder, applied
 * once, in its own transaction, and recorded in schema_version with the
 * SHA-256 of its text.  An applied migration never changes: a database whose
 * recorded checksum differs from the file is refused, naming the file (a
 * change made by editing a released migration would otherwise never reach
 * the databases that had applied it, while every check said all was well).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "pa_db.h"
#include "pa_util.h"

#define MAX_MIGRATIONS 1000
#define MAX_SQL_FILE (16 * 1024 * 1024)

/* The migration files of a folder, sorted. */
struct migrations {
    const char *dir;
    char *names[MAX_MIGRATIONS];
    size_t n;
};

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

const char *admin_sql_dir(const char *given)
{
    const char *dir = given ? given : getenv("PA_SQL_DIR");

    return dir && *dir ? dir : PA_SQL_DIR;
}

static int list_migrations(struct migrations *m, const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    m->dir = dir;
    m->n = 0;
    if(!d) {
        fprintf(stderr, "pa-admin: cannot open the SQL folder %s: %s\n", dir, strerror(errno));
        return -1;
    }
    for(e = readdir(d); e && m->n < MAX_MIGRATIONS; e = readdir(d)) {
        size_t len = strlen(e->d_name);

        if(len > 8 && strspn(e->d_name, "0123456789") == 3 && e->d_name[3] == '_' &&
           !strcmp(e->d_name + len - 4, ".sql")) {
            m->names[m->n] = strdup(e->d_name);
            if(!m->names[m->n]) {
                /* a migration left out would be one never applied */
                fprintf(stderr, "pa-admin: out of memory reading %s\n", dir);
                closedir(d);
                return -1;
            }
            m->n++;
        }
    }
    closedir(d);
    qsort(m->names, m->n, sizeof(*m->names), name_cmp);
    return 0;
}

static void free_migrations(struct migrations *m)
{
    size_t i;

    for(i = 0; i < m->n; i++)
        free(m->names[i]);
    m->n = 0;
}

/* Reads a whole SQL file (caller frees). */
static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char *text = NULL;
    size_t n;

    if(!f)
        return NULL;
    text = malloc(MAX_SQL_FILE + 1);
    if(text) {
        n = fread(text, 1, MAX_SQL_FILE + 1, f);
        if(ferror(f) || n > MAX_SQL_FILE) {
            free(text);
            text = NULL;
        }
        else {
            text[n] = '\0';
        }
    }
    fclose(f);
    return text;
}

/* Migration file name's text (caller frees) and its checksum; NULL (said
 * why) if it cannot be read. */
static char *read_migration(const struct migrations *m, const char *name, char sum[65])
{
    char path[2048];
    char *text;

    snprintf(path, sizeof(path), "%s/%s", m->dir, name);
    text = read_file(path);
    if(!text) {
        fprintf(stderr, "pa-admin: cannot read %s\n", path);
        return NULL;
    }
    pa_sha256_hex(text, sum);
    return text;
}

/* The checksum of migration file name: 0, or -1 (said why). */
static int file_checksum(const struct migrations *m, const char *name, char out[65])
{
    char *text = read_migration(m, name, out);

    free(text);
    return text ? 0 : -1;
}

/* 1 if schema_version keeps checksums (migration 009 on), 0 if not, -1 on error. */
static int has_checksums(PGconn *db)
{
    pa_err err;
    PGresult *res;
    int yes;

    pa_err_clear(&err);
    res = pa_db_query(db, &err,
                      "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
                      " AND table_name = 'schema_version' AND column_name = 'checksum'",
                      0, NULL);
    if(!res) {
        fprintf(stderr, "pa-admin: %s\n", err.msg);
        return -1;
    }
    yes = PQntuples(res) == 1;
    PQclear(res);
    return yes;
}

/*
 * Checks every applied migration against the folder: its file must be there
 * and, when a checksum was recorded, have that checksum.  Returns how many
 * migrations are missing or differ (each named on stderr), or -1 on error.
 */
static int verify(PGconn *db, const struct migrations *m)
{
    PGresult *res;
    pa_err err;
    int i, bad = 0;
    int have = has_checksums(db);

    int version = 0;

    if(have < 0)
        return -1;
    pa_err_clear(&err);
    /* a new database has no schema_version yet: nothing applied */
    if(pa_db_schema_version(db, &version, &err)) {
        fprintf(stderr, "pa-admin: %s\n", err.msg);
        return -1;
    }
    if(!version)
        return 0;
    res = pa_db_query(db, &err,
                      have ? "SELECT version, name, checksum, applied_at FROM schema_version ORDER BY version"
                           : "SELECT version, name, NULL, applied_at FROM schema_version ORDER BY version",
                      0, NULL);
    if(!res) {
        fprintf(stderr, "pa-admin: %s\n", err.msg);
        return -1;
    }
    for(i = 0; i < PQntuples(res); i++) {
        const char *name = PQgetvalue(res, i, 1);
        char sum[65];
        size_t k;

        for(k = 0; k < m->n && strcmp(m->names[k], name); k++)
            ;
        if(k == m->n) {
            fprintf(stderr,
                    "pa-admin: migration %s was applied (%s) but %s has no such file: is it the SQL "
                    "folder of this build?\n",
                    name, PQgetvalue(res, i, 3), m->dir);
            bad++;
        }
        else if(!PQgetisnull(res, i, 2) && (file_checksum(m, name, sum) || strcmp(sum, PQgetvalue(res, i, 2)))) {
            fprintf(stderr,
                    "pa-admin: %s/%s is not the migration this database applied on %s (its checksum "
                    "differs): an applied migration must never change. Restore the file as released and put "
                    "the change in a new migration.\n",
                    m->dir, name, PQgetvalue(res, i, 3));
            bad++;
        }
    }
    PQclear(res);
    return bad;
}

/* Applies one migration file in its own transaction, recording its version
 * and (once schema_version keeps them) its checksum. */
static int apply_one(PGconn *db, const struct migrations *m, const char *name, long version)
{
    char vs[24], sum[65];
    const char *values[3];
    char *sql = read_migration(m, name, sum);
    pa_err err;
    PGresult *res;
    int rc;

    if(!sql)
        return -1;
    pa_err_clear(&err);
    rc = pa_db_exec(db, &err, "BEGIN");
    if(!rc) {
        res = PQexec(db, sql);
        if(PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
            rc = pa_err_set(&err, PA_EDB, "%s", PQresultErrorMessage(res));
        PQclear(res);
    }
    if(!rc) {
        int have = has_checksums(db);

        snprintf(vs, sizeof(vs), "%ld", version);
        values[0] = vs;
        values[1] = name;
        values[2] = sum;
        res = have < 0
                  ? NULL
                  : pa_db_query(db, &err,
                                have ? "INSERT INTO schema_version (version, name, checksum) VALUES ($1::int, $2, $3)"
                                     : "INSERT INTO schema_version (version, name) VALUES ($1::int, $2)",
                                have ? 3 : 2, values);
        rc = res ? PA_OK : PA_EDB;
        PQclear(res);
    }
    if(!rc)
        rc = pa_db_exec(db, &err, "COMMIT");
    free(sql);
    if(rc) {
        pa_db_exec(db, NULL, "ROLLBACK");
        fprintf(stderr, "pa-admin: migration %s failed: %s\n", name, err.msg);
        return -1;
    }
    printf("applied %s\n", name);
    return 0;
}

/* Records the checksums of migrations applied before they were kept (as the
 * files say now: migration 009 repairs what editing 002 left behind).  An
 * applied migration whose file is gone, or a record that cannot be written,
 * fails it: -1, said why. */
/* Records the checksums missing from schema_version: of the migrations this
 * run applied before 009 added the column (silently), and of those an earlier
 * release applied, up to version before (said). */
static int backfill(PGconn *db, const struct migrations *m, int before)
{
    PGresult *res;
    pa_err err;
    int i, filled = 0, rc = 0;

    if(has_checksums(db) != 1)
        return 0;
    pa_err_clear(&err);
    res = pa_db_query(db, &err, "SELECT name, version FROM schema_version WHERE checksum IS NULL ORDER BY version", 0,
                      NULL);
    if(!res) {
        fprintf(stderr, "pa-admin: %s\n", err.msg);
        return -1;
    }
    for(i = 0; !rc && i < PQntuples(res); i++) {
        const char *values[2] = { PQgetvalue(res, i, 0), NULL };
        char sum[65];
        PGresult *u;

        if(file_checksum(m, values[0], sum)) {
            fprintf(stderr,
                    "pa-admin: migration %s was applied but %s has no readable file of it: is it the SQL "
                    "folder of this build?\n",
                    values[0], m->dir);
            rc = -1;
            break;
        }
        values[1] = sum;
        u = pa_db_query(db, &err, "UPDATE schema_version SET checksum = $2 WHERE name = $1 AND checksum IS NULL", 2,
                        values);
        if(!u) {
            fprintf(stderr, "pa-admin: the checksum of %s is not recorded: %s\n", values[0], err.msg);
            rc = -1;
        }
        filled += u != NULL && strtol(PQgetvalue(res, i, 1), NULL, 10) <= before;
        PQclear(u);
    }
    PQclear(res);
    if(filled)
        printf("recorded the checksums of %d migrations applied before checksums were kept\n", filled);
    return rc;
}

int cmd_migrate(int argc, char **argv)
{
    const char *given = NULL;
    struct migrations m;
    pa_config *cfg = NULL;
    PGconn *db = NULL;
    size_t i;
    int current = 0, before, applied = 0, ret = 1, bad;
    pa_err err;

    memset(&m, 0, sizeof(m));
    if(argc == 3 && !strcmp(argv[1], "--sql-dir"))
        given = argv[2];
    else if(argc != 1) {
        fprintf(stderr, "usage: pa-admin migrate [--sql-dir DIR]\n");
        return 2;
    }
    if(admin_config(&cfg) || list_migrations(&m, admin_sql_dir(given)))
        goto out;
    pa_err_clear(&err);
    if(pa_db_connect(cfg, &db, &err) || pa_db_exec(db, &err, "SET client_min_messages = warning") ||
       pa_db_exec(db, &err, "SELECT pg_advisory_lock(872341)") || pa_db_schema_version(db, &current, &err)) {
        fprintf(stderr, "pa-admin: %s\n", err.msg);
        goto out;
    }
    /* nothing is applied to a database whose history differs from the files */
    bad = verify(db, &m);
    if(bad) {
        if(bad > 0)
            fprintf(stderr, "pa-admin: nothing applied: %d migration%s of this database differ%s from %s\n", bad,
                    bad > 1 ? "s" : "", bad > 1 ? "" : "s", m.dir);
        goto out;
    }
    before = current;
    for(i = 0; i < m.n; i++) {
        long v = strtol(m.names[i], NULL, 10); /* three digits, checked when listed */

        if(v <= current)
            continue;
        if(apply_one(db, &m, m.names[i], v))
            goto out;
        applied++;
    }
    if(backfill(db, &m, before))
        goto out;
    if(pa_db_schema_version(db, &current, &err)) {
        fprintf(stderr, "pa-admin: %s\n", err.msg);
        goto out;
    }
    if(current < PA_SCHEMA_VERSION) {
        fprintf(stderr,
                "pa-admin: the schema is at version %d but this build needs %d: is %s the "
                "SQL folder of this build?\n",
                current, PA_SCHEMA_VERSION, m.dir);
        goto out;
    }
    printf("schema at version %d (%d applied)\n", current, applied);
    ret = 0;
out:
    free_migrations(&m);
    if(db)
        PQfinish(db);
    pa_config_free(cfg);
    return ret;
}

int admin_migrations_verify(PGconn *db, const char *dir)
{
    struct migrations m;
    DIR *d;
    int bad;

    memset(&m, 0, sizeof(m));
    dir = admin_sql_dir(dir);
    /* a host without the SQL folder (a front end) cannot compare: said, not failed */
    d = opendir(dir);
    if(!d) {
        printf("schema\twarning\tthe migrations' checksums are not verified: no SQL folder at %s (set PA_SQL_DIR)\n",
               dir);
        return 0;
    }
    closedir(d);
    if(list_migrations(&m, dir)) {
        free_migrations(&m);
        return -1;
    }
    bad = verify(db, &m);
    if(bad == 0 && has_checksums(db) == 0) {
        fprintf(stderr, "pa-admin: this database keeps no checksums of its migrations yet: run pa-admin migrate\n");
        bad = 1;
    }
    free_migrations(&m);
    return bad;
}
