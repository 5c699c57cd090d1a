/*
 * pa-admin: the payer's administration tool.  Reads the same configuration
 * as the responder and the runner.  Output meant for scripts goes to stdout
 * (lists are tab-separated with a header line); errors go to stderr with a
 * non-zero exit status.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "pa_config.h"
#include "pa_db.h"
#include "pa_job.h"
#include "pa_auth.h"
#include "pa_redis.h"
#include "pa_util.h"

static const char *config_path;

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: pa-admin [--config FILE] COMMAND [ARGS]\n"
        "\n"
        "commands:\n"
        "  migrate [--sql-dir DIR]   apply the SQL migrations the database lacks\n"
        "  setup --base-url URL [--cert FILE --key FILE] [--payer-identifier NAIC] ...\n"
        "                            after installing the package, as root: database, configuration,\n"
        "                            migrations, Apache's TLS site, the runner; then says what is left\n"
        "  check [--config-only]     check the configuration, PostgreSQL, the schema and Redis\n"
        "  load [--errors FILE] FILE|DIR...  load FHIR NDJSON and Bundles (.ndjson, .json, .gz), PDex Groups, CSV feeds\n"
        "  sync SOURCE [--full] [--restart] [--wait S]  pull a Bulk Data export of source.SOURCE.url and load it\n"
        "  delete Type/id...         delete resources, leaving tombstones for _since exports\n"
        "  member list [--limit N]   members: patient id, names, birth date, gender, subscriber id, coverage\n"
        "  provider list [--in-network]   the provider directory: NPI, name, kind, in network\n"
        "  provider network NPI --in|--out [--from DATE] [--to DATE]   set a provider's network status\n"
        "  synth --members N [--seed S] --out DIR   write a synthetic payer as NDJSON and CSV\n"
        "  optout add PATIENT (--global | --npi NPI) [--from D] [--to D] [--reason R] | revoke ... | list\n"
        "  trl add PATIENT NPI [--from D] [--to D] [--source S] | remove PATIENT NPI | list [--npi NPI] | import FILE\n"
        "  roster list [--npi NPI] | create ID ... | add ID PATIENT... | remove ID PATIENT... | status ID [S]\n"
        "  client add --name NAME (--npi NPI [--org-npi NPI] | --admin) (--jwks FILE | --secret) [--financial]\n"
        "  client list | show ID | disable ID | enable ID | rotate-secret ID | set-jwks ID FILE | unflag ID\n"
        "  downloads [--client ID] [--patient ID]   what provider-download exports gave, member by member\n"
        "  disclosures (--patient ID | --client ID) [--since TIME]   who received what about whom\n"
        "  report [--from D] [--to D] [--format text|csv|json|html] [--out FILE]   the compliance report:\n"
        "                            per provider, and every request against the one-business-day rule\n"
        "  audit [--client ID] [--since TIME] [--limit N] [--export]   requests made, the newest N (1000), oldest first; --export: FHIR AuditEvent NDJSON\n"
        "                            (with every disclosure, the member as entity)\n"
        "  jobs [--limit N]          list recent jobs (id, kind, owner, state, created, finished)\n"
        "  version                   print the version\n"
        "\n"
        "Lists print tab-separated lines with a header line; --no-header drops it.\n"
        "\n"
        "The configuration is FILE, else $PA_CONFIG, else " PA_CONFIG_DEFAULT_PATH ".\n"
        "The SQL folder is DIR, else $PA_SQL_DIR, else " PA_SQL_DIR ".\n");
}

const char *admin_config_path(void)
{
    return pa_config_path(config_path);
}

int admin_config(pa_config **cfg)
{
    pa_err err;

    pa_err_clear(&err);
    if(pa_config_load(pa_config_path(config_path), cfg, &err)) {
        fprintf(stderr, "pa-admin: %s\n", err.msg);
        return -1;
    }
    return 0;
}

int admin_connect(pa_config **cfg, PGconn **db)
{
    pa_err err;

    *db = NULL;
    if(admin_config(cfg))
        return -1;
    pa_err_clear(&err);
    if(pa_db_connect(*cfg, db, &err) || pa_db_check_schema(*db, &err)) {
        fprintf(stderr, "pa-admin: %s\n", err.msg);
        if(*db)
            PQfinish(*db);
        *db = NULL;
        pa_config_free(*cfg);
        *cfg = NULL;
        return -1;
    }
    return 0;
}

int admin_exec(const char *sql, int n, const char *const *values, long *rows)
{
    pa_config *cfg = NULL;
    PGconn *db = NULL;
    PGresult *res;
    pa_err err;

    if(admin_connect(&cfg, &db))
        return 1;
    pa_err_clear(&err);
    res = pa_db_query(db, &err, sql, n, values);
    if(res && rows)
        *rows = strtol(PQcmdTuples(res), NULL, 10);
    if(!res)
        fprintf(stderr, "pa-admin: %s\n", err.msg);
    PQclear(res);
    PQfinish(db);
    pa_config_free(cfg);
    return res ? 0 : 1;
}

int admin_revoke_tokens(const char *sql, int n, const char *const *values)
{
    pa_config *cfg = NULL;
    PGconn *db = NULL;
    pa_redis *redis = NULL;
    PGresult *res = NULL;
    pa_err err;
    int i, ret = 1;

    if(admin_connect(&cfg, &db))
        return 1;
    pa_err_clear(&err);
    res = pa_db_query(db, &err, sql, n, values);
    if(res && PQntuples(res) && pa_redis_open(cfg, &redis, &err) == PA_OK) {
        for(i = 0; i < PQntuples(res) && !pa_token_revoke_client(redis, PQgetvalue(res, i, 0), NULL, &err); i++)
            ;
        if(i == PQntuples(res))
            ret = 0;
    }
    else if(res && !PQntuples(res))
        ret = 0;
    if(ret)
        fprintf(stderr,
                "pa-admin: the change is saved, but the access tokens already issued could not be revoked "
                "(%s): they stay valid until they expire; run the command again\n",
                err.msg);
    PQclear(res);
    pa_redis_free(redis);
    PQfinish(db);
    pa_config_free(cfg);
    return ret;
}

int admin_list(const char *sql, int n, const char *const *values, int no_header)
{
    pa_config *cfg = NULL;
    PGconn *db = NULL;
    PGresult *res;
    pa_err err;

    if(admin_connect(&cfg, &db))
        return 1;
    pa_err_clear(&err);
    res = pa_db_query(db, &err, sql, n, values);
    if(res)
        admin_print_rows(res, no_header);
    else
        fprintf(stderr, "pa-admin: %s\n", err.msg);
    PQclear(res);
    PQfinish(db);
    pa_config_free(cfg);
    return res ? 0 : 1;
}

void admin_print_rows(PGresult *res, int no_header)
{
    int i;
    int k;

    for(k = 0; !no_header && k < PQnfields(res); k++)
        printf("%s%s", k ? "\t" : "", PQfname(res, k));
    if(!no_header)
        printf("\n");
    for(i = 0; i < PQntuples(res); i++) {
        for(k = 0; k < PQnfields(res); k++)
            printf("%s%s", k ? "\t" : "", PQgetvalue(res, i, k));
        printf("\n");
    }
}

/* Redis keeps the audit events on their way to PostgreSQL, the job queue and
 * the tokens: without its append-only file a restart loses the first. */
static void check_redis_durability(pa_redis *redis)
{
    redisReply *reply;
    pa_err err;

    pa_err_clear(&err);
    reply = pa_redis_cmd(redis, &err, "CONFIG GET appendonly");
    if(!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
       reply->element[1]->type != REDIS_REPLY_STRING)
        printf(
            "redis\twarning\tits persistence could not be read (CONFIG GET appendonly): make sure appendonly is yes\n");
    else if(strcmp(reply->element[1]->str, "yes"))
        printf("redis\twarning\tappendonly is %s: audit events not yet stored in PostgreSQL are lost when Redis "
               "restarts (set appendonly yes in redis.conf)\n",
               reply->element[1]->str);
    if(reply)
        freeReplyObject(reply);
}

int cmd_check(int argc, char **argv)
{
    pa_config *cfg = NULL;
    PGconn *db = NULL;
    pa_redis *redis = NULL;
    redisReply *reply;
    pa_err err;
    int ret = 1, config_only = argc == 2 && !strcmp(argv[1], "--config-only");

    if(argc > 1 && !config_only) {
        usage(stderr);
        return 2;
    }
    if(admin_config(&cfg))
        return 1;
    printf("config\tok\t%s\n", pa_config_path(config_path));
    if(config_only) {
        pa_config_free(cfg);
        return 0;
    }
    /* a warning, not a failure: a test stack on loopback is plain HTTP */
    if(strncmp(cfg->base_url, "https://", 8))
        printf("tls\twarning\tbase_url %s is not https: clients would send tokens and receive PHI in the clear "
               "(Bulk Data and SMART require TLS)\n",
               cfg->base_url);
    else
        printf("tls\tok\t%s\n", cfg->base_url);
    if(!cfg->require_https)
        printf("tls\twarning\trequire_https = 0: plain HTTP requests are served\n");
    if(!*cfg->payer_identifier)
        printf("match\twarning\tpayer_identifier is not set: a member match takes a coverage of any plan for this "
               "one's (set it to the plan's NAIC code)\n");
    pa_err_clear(&err);
    if(pa_db_connect(cfg, &db, &err)) {
        printf("postgresql\tdown\t%s\n", err.msg);
        goto out;
    }
    printf("postgresql\tok\n");
    if(pa_db_check_schema(db, &err)) {
        printf("schema\told\t%s\n", err.msg);
        goto out;
    }
    /* the history the database applied is the one the SQL folder holds */
    if(admin_migrations_verify(db, NULL)) {
        printf("schema\tchanged\tits migrations differ from %s (above): see docs/OPERATIONS.md\n", admin_sql_dir(NULL));
        goto out;
    }
    printf("schema\tok\tversion %d\n", PA_SCHEMA_VERSION);
    if(pa_redis_open(cfg, &redis, &err)) {
        printf("redis\tdown\t%s\n", err.msg);
        goto out;
    }
    reply = pa_redis_cmd(redis, &err, "PING");
    if(!reply) {
        printf("redis\tdown\t%s\n", err.msg);
        goto out;
    }
    freeReplyObject(reply);
    printf("redis\tok\n");
    check_redis_durability(redis);
    ret = 0;
out:
    if(db)
        PQfinish(db);
    pa_redis_free(redis);
    pa_config_free(cfg);
    return ret;
}

static int cmd_jobs(int argc, char **argv)
{
    const char *limit = "20";
    int no_header = 0;
    long v;
    int i;

    for(i = 1; i < argc; i++) {
        if(!strcmp(argv[i], "--no-header"))
            no_header = 1;
        else if(!strcmp(argv[i], "--limit") && i + 1 < argc && !pa_parse_long(argv[i + 1], &v) && v > 0)
            limit = argv[++i];
        else {
            usage(stderr);
            return 2;
        }
    }
    return admin_list(
        "SELECT id, kind, owner, state, "
        "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS created, "
        "coalesce(to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '') AS finished "
        "FROM job ORDER BY created_at DESC LIMIT $1::int",
        1, &limit, no_header);
}

int main(int argc, char **argv)
{
    int i = 1;

    if(argc > 2 && !strcmp(argv[1], "--config")) {
        config_path = argv[2];
        i = 3;
    }
    if(i >= argc || !strcmp(argv[i], "--help") || !strcmp(argv[i], "help")) {
        usage(i >= argc ? stderr : stdout);
        return i >= argc ? 2 : 0;
    }
    if(!strcmp(argv[i], "migrate"))
        return cmd_migrate(argc - i, argv + i);
    if(!strcmp(argv[i], "setup"))
        return cmd_setup(argc - i, argv + i);
    if(!strcmp(argv[i], "check"))
        return cmd_check(argc - i, argv + i);
    if(!strcmp(argv[i], "jobs"))
        return cmd_jobs(argc - i, argv + i);
    if(!strcmp(argv[i], "load"))
        return cmd_load(argc - i, argv + i);
    if(!strcmp(argv[i], "sync"))
        return cmd_sync(argc - i, argv + i);
    if(!strcmp(argv[i], "delete"))
        return cmd_delete(argc - i, argv + i);
    if(!strcmp(argv[i], "member"))
        return cmd_member(argc - i, argv + i);
    if(!strcmp(argv[i], "provider"))
        return cmd_provider(argc - i, argv + i);
    if(!strcmp(argv[i], "synth"))
        return cmd_synth(argc - i, argv + i);
    if(!strcmp(argv[i], "optout"))
        return cmd_optout(argc - i, argv + i);
    if(!strcmp(argv[i], "trl"))
        return cmd_trl(argc - i, argv + i);
    if(!strcmp(argv[i], "roster"))
        return cmd_roster(argc - i, argv + i);
    if(!strcmp(argv[i], "client"))
        return cmd_client(argc - i, argv + i);
    if(!strcmp(argv[i], "downloads"))
        return cmd_downloads(argc - i, argv + i);
    if(!strcmp(argv[i], "audit"))
        return cmd_audit(argc - i, argv + i);
    if(!strcmp(argv[i], "disclosures"))
        return cmd_disclosures(argc - i, argv + i);
    if(!strcmp(argv[i], "report"))
        return cmd_report(argc - i, argv + i);
    if(!strcmp(argv[i], "version")) {
        printf("%s %s\n", PACKAGE_NAME, PACKAGE_VERSION);
        return 0;
    }
    fprintf(stderr, "pa-admin: unknown command '%s'\n", argv[i]);
    usage(stderr);
    return 2;
}
