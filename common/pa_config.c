#include "pa_config.h"
#include "pa_util.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_MAX_BYTES (1024 * 1024)

enum key_type { KEY_STRING, KEY_INT, KEY_URL, KEY_PATH, KEY_LEVEL, KEY_DATE, KEY_TRL_POLICY, KEY_TZ, KEY_DATES };

struct key_def {
    const char *name;
    enum key_type type;
    size_t offset;
    const char *def; /* NULL: required */
    long min;
    long max;
};

#define KS(n, t, d)                            \
    {                                          \
#n, t, offsetof(pa_config, n), d, 0, 0 \
    }
#define KI(n, d, lo, hi)                               \
    {                                                  \
#n, KEY_INT, offsetof(pa_config, n), d, lo, hi \
    }

static const struct key_def keys[] = {
    KS(base_url, KEY_URL, NULL),
    KS(data_dir, KEY_PATH, NULL),
    KS(pg_conninfo, KEY_STRING, NULL),
    KS(export_database, KEY_STRING, ""),
    KS(redis_host, KEY_STRING, "127.0.0.1"),
    KI(redis_port, "6379", 1, 65535),
    KS(redis_password, KEY_STRING, ""),
    KS(redis_prefix, KEY_STRING, "pa:"),
    KI(redis_timeout_ms, "5000", 100, 600000),
    KS(log_file, KEY_STRING, ""),
    KS(log_level, KEY_LEVEL, "info"),
    KI(max_request_body, "33554432", 1024, 1073741824),
    KI(max_jobs_per_client, "3", 1, 10000),
    KI(retention_seconds, "86400", 60, 31536000),
    KI(retry_after_seconds, "2", 1, 3600),
    KI(claim_idle_seconds, "60", 2, 86400),
    KI(export_chunk_members, "500", 1, 100000),
    KI(export_part_members, "2000", 0, 100000000),
    KI(export_refs_batch_bytes, "4194304", 1024, 268435456),
    KI(export_file_max_bytes, "104857600", 4096, 68719476736L),
    KS(service_date_floor, KEY_DATE, "2016-01-01"),
    KI(poll_min_interval_ms, "1000", 0, 3600000),
    KI(responder_db_idle_seconds, "60", 1, 86400),
    KI(member_match_sync_max, "10", 0, 1000),
    KI(member_match_max, "10000", 1, 1000000),
    KI(suppress_consent_constrained, "1", 0, 1),
    KI(matched_group_days, "30", 1, 3650),
    KI(trl_claims_months, "12", 0, 600),
    KS(payer_identifier, KEY_STRING, ""),
    KI(pdex_member_extensions, "0", 0, 1),
    KI(export_chunk_pause_ms, "0", 0, 60000),
    KI(runner_workers, "2", 1, 256),
    KI(xsendfile, "1", 0, 1),
    KI(require_https, "1", 0, 1),
    KI(plain_http_loopback, "1", 0, 1),
    KS(treatment_relationship_policy, KEY_TRL_POLICY, "list"),
    KI(match_nonmatch_budget, "5000", 1, 100000000),
    KI(match_budget_window_seconds, "3600", 60, 604800),
    KI(match_repeat_weight, "100", 1, 1000000),
    KS(business_timezone, KEY_TZ, "UTC"),
    KS(business_holidays, KEY_DATES, ""),
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static char **str_field(pa_config *cfg, const struct key_def *k)
{
    return (char **)(void *)((char *)cfg + k->offset);
}

static long *int_field(pa_config *cfg, const struct key_def *k)
{
    return (long *)(void *)((char *)cfg + k->offset);
}

static const struct key_def *find_key(const char *name)
{
    size_t i;

    for(i = 0; i < NKEYS; i++)
        if(!strcmp(keys[i].name, name))
            return &keys[i];
    return NULL;
}

/* Validates value for key k and stores it; err names the key on failure. */
static int set_value(pa_config *cfg, const struct key_def *k, const char *value, const char *where, pa_err *err)
{
    char **sp;
    char *end;
    long v;
    size_t n;

    if(k->type == KEY_INT) {
        errno = 0;
        v = strtol(value, &end, 10);
        if(errno || end == value || *end || v < k->min || v > k->max)
            return pa_err_set(err, PA_ECONFIG, "%s: %s must be a whole number from %ld to %ld, not '%s'", where,
                              k->name, k->min, k->max, value);
        *int_field(cfg, k) = v;
        return PA_OK;
    }
    if(k->type == KEY_URL && strncmp(value, "http://", 7) && strncmp(value, "https://", 8))
        return pa_err_set(err, PA_ECONFIG, "%s: %s must be an http:// or https:// URL, not '%s'", where, k->name,
                          value);
    if(k->type == KEY_PATH && value[0] != '/')
        return pa_err_set(err, PA_ECONFIG, "%s: %s must be an absolute path, not '%s'", where, k->name, value);
    if(k->type == KEY_TRL_POLICY && strcmp(value, "list") && strcmp(value, "attestation"))
        return pa_err_set(err, PA_ECONFIG, "%s: %s must be list or attestation, not '%s'", where, k->name, value);
    if(k->type == KEY_LEVEL && strcmp(value, "debug") && strcmp(value, "info") && strcmp(value, "warn") &&
       strcmp(value, "error"))
        return pa_err_set(err, PA_ECONFIG, "%s: %s must be debug, info, warn or error, not '%s'", where, k->name,
                          value);
    if(k->type == KEY_DATE && value[0]) {
        char ts[32];
        int64_t ms;

        snprintf(ts, sizeof(ts), "%.10sT00:00:00Z", value);
        if(strlen(value) != 10 || pa_parse_instant(ts, &ms))
            return pa_err_set(err, PA_ECONFIG, "%s: %s must be a date (YYYY-MM-DD) or empty, not '%s'", where, k->name,
                              value);
    }
    if(k->type == KEY_TZ && !pa_timezone_known(value))
        return pa_err_set(err, PA_ECONFIG,
                          "%s: %s must be UTC or a time zone of the system's zoneinfo "
                          "(America/New_York), not '%s'",
                          where, k->name, value);
    if(k->type == KEY_DATES && pa_parse_day_list(value, NULL, 0) < 0)
        return pa_err_set(err, PA_ECONFIG, "%s: %s must be dates (YYYY-MM-DD) separated by spaces or commas, not '%s'",
                          where, k->name, value);
    if(k->type != KEY_STRING && k->type != KEY_DATE && k->type != KEY_DATES && !value[0])
        return pa_err_set(err, PA_ECONFIG, "%s: %s is empty", where, k->name);
    sp = str_field(cfg, k);
    free(*sp);
    *sp = strdup(value);
    if(!*sp)
        return pa_err_set(err, PA_ENOMEM, "out of memory");
    /* URLs and directories are joined with '/' later: keep them without one */
    n = strlen(*sp);
    while((k->type == KEY_URL || k->type == KEY_PATH) && n > 1 && (*sp)[n - 1] == '/')
        (*sp)[--n] = '\0';
    return PA_OK;
}

/* source.NAME.FIELD: the fields, each with its default (NULL: none). */
struct source_field {
    const char *name;
    size_t offset;
    const char *def;
};

#define SF(n, d)                             \
    {                                        \
#n, offsetof(pa_config_source, n), d \
    }

static const struct source_field source_fields[] = {
    SF(url, NULL),     SF(level, "system"),        SF(types, ""),
    SF(auth, "none"),  SF(client_id, ""),          SF(key_file, ""),
    SF(kid, ""),       SF(secret_file, ""),        SF(token_file, ""),
    SF(token_url, ""), SF(scope, "system/*.read"), SF(ca_file, ""),
};

#define NSOURCE_FIELDS (sizeof(source_fields) / sizeof(source_fields[0]))

static char **source_str(pa_config_source *s, const struct source_field *f)
{
    return (char **)(void *)((char *)s + f->offset);
}

const pa_config_source *pa_config_source_find(const pa_config *cfg, const char *name)
{
    int i;

    for(i = 0; i < cfg->nsources; i++)
        if(!strcmp(cfg->sources[i].name, name))
            return &cfg->sources[i];
    return NULL;
}

/* One source.NAME.FIELD = value line. */
static int set_source(pa_config *cfg, const char *key, const char *value, const char *where, pa_err *err)
{
    const char *name = key + 7, *dot = strchr(name, '.');
    pa_config_source *src = NULL;
    char sname[64];
    size_t n, i;
    int k;

    n = dot ? (size_t)(dot - name) : 0;
    if(!dot || n == 0 || n >= sizeof(sname) ||
       strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                    "0123456789_-") != n)
        return pa_err_set(err, PA_ECONFIG, "%s: a source key is source.NAME.FIELD (NAME of letters, digits, - and _)",
                          where);
    memcpy(sname, name, n);
    sname[n] = '\0';
    for(k = 0; k < cfg->nsources && strcmp(cfg->sources[k].name, sname); k++)
        ;
    if(k == cfg->nsources) {
        if(k == PA_CONFIG_SOURCES_MAX)
            return pa_err_set(err, PA_ECONFIG, "%s: more than %d sources", where, PA_CONFIG_SOURCES_MAX);
        memcpy(cfg->sources[k].name, sname, n + 1);
        cfg->sources[k].parallel = -1;
        cfg->nsources++;
    }
    src = &cfg->sources[k];
    if(!strcmp(dot + 1, "parallel")) {
        char *end;
        long v;

        errno = 0;
        v = strtol(value, &end, 10);
        if(src->parallel >= 0)
            return pa_err_set(err, PA_ECONFIG, "%s: %s is set twice", where, key);
        if(errno || !*value || *end || v < 1 || v > 16)
            return pa_err_set(err, PA_ECONFIG, "%s: %s must be a number from 1 to 16", where, key);
        src->parallel = v;
        return PA_OK;
    }
    for(i = 0; i < NSOURCE_FIELDS && strcmp(source_fields[i].name, dot + 1); i++)
        ;
    if(i == NSOURCE_FIELDS)
        return pa_err_set(err, PA_ECONFIG, "%s: unknown key '%.60s'", where, key);
    if(*source_str(src, &source_fields[i]))
        return pa_err_set(err, PA_ECONFIG, "%s: %s is set twice", where, key);
    *source_str(src, &source_fields[i]) = strdup(value);
    return *source_str(src, &source_fields[i]) ? PA_OK : pa_err_set(err, PA_ENOMEM, "out of memory");
}

/* Each source's defaults, and what its auth needs. */
static int finish_sources(pa_config *cfg, const char *name, pa_err *err)
{
    int k;
    size_t i;

    for(k = 0; k < cfg->nsources; k++) {
        pa_config_source *s = &cfg->sources[k];
        const char *need = NULL;

        if(s->parallel < 0)
            s->parallel = 4;
        for(i = 0; i < NSOURCE_FIELDS; i++) {
            char **v = source_str(s, &source_fields[i]);

            if(!*v && !source_fields[i].def)
                return pa_err_set(err, PA_ECONFIG, "%s: source.%s.%s is missing", name, s->name, source_fields[i].name);
            if(!*v)
                *v = strdup(source_fields[i].def);
            if(!*v)
                return pa_err_set(err, PA_ENOMEM, "out of memory");
        }
        if(strncmp(s->url, "http://", 7) && strncmp(s->url, "https://", 8))
            return pa_err_set(err, PA_ECONFIG, "%s: source.%s.url must be an http or https URL", name, s->name);
        if(strcmp(s->level, "system") && strcmp(s->level, "patient") &&
           (strncmp(s->level, "group/", 6) || !s->level[6]))
            return pa_err_set(err, PA_ECONFIG, "%s: source.%s.level must be system, patient or group/ID", name,
                              s->name);
        if(!strcmp(s->auth, "smart"))
            need = !*s->client_id ? "client_id" : !*s->key_file ? "key_file" : !*s->kid ? "kid" : NULL;
        else if(!strcmp(s->auth, "secret"))
            need = !*s->client_id ? "client_id" : !*s->secret_file ? "secret_file" : NULL;
        else if(!strcmp(s->auth, "bearer"))
            need = !*s->token_file ? "token_file" : NULL;
        else if(strcmp(s->auth, "none"))
            return pa_err_set(err, PA_ECONFIG, "%s: source.%s.auth must be none, bearer, secret or smart", name,
                              s->name);
        if(need)
            return pa_err_set(err, PA_ECONFIG, "%s: source.%s.auth = %s needs source.%s.%s", name, s->name, s->auth,
                              s->name, need);
    }
    return PA_OK;
}

static char *trim(char *s)
{
    char *e;

    while(isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while(e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

int pa_config_parse(const char *text, const char *name, pa_config **out, pa_err *err)
{
    pa_config *cfg = NULL;
    char *copy = NULL;
    char *line;
    char *next;
    unsigned char seen[NKEYS];
    char where[300];
    int lineno = 0;
    int rc = PA_OK;
    size_t i;

    *out = NULL;
    memset(seen, 0, sizeof(seen));
    cfg = calloc(1, sizeof(*cfg));
    copy = strdup(text);
    if(!cfg || !copy) {
        rc = pa_err_set(err, PA_ENOMEM, "out of memory");
        goto out;
    }
    for(line = copy; line; line = next) {
        char *eq;
        char *key;
        const struct key_def *k;

        next = strchr(line, '\n');
        if(next)
            *next++ = '\0';
        lineno++;
        snprintf(where, sizeof(where), "%s:%d", name, lineno);
        line = trim(line);
        if(!*line || *line == '#')
            continue;
        eq = strchr(line, '=');
        if(!eq) {
            rc = pa_err_set(err, PA_ECONFIG, "%s: expected 'key = value', got '%.60s'", where, line);
            goto out;
        }
        *eq = '\0';
        key = trim(line);
        if(!strncmp(key, "source.", 7)) {
            rc = set_source(cfg, key, trim(eq + 1), where, err);
            if(rc)
                goto out;
            continue;
        }
        k = find_key(key);
        if(!k) {
            rc = pa_err_set(err, PA_ECONFIG, "%s: unknown key '%.60s'", where, key);
            goto out;
        }
        if(seen[k - keys]) {
            rc = pa_err_set(err, PA_ECONFIG, "%s: %s is set twice", where, k->name);
            goto out;
        }
        seen[k - keys] = 1;
        rc = set_value(cfg, k, trim(eq + 1), where, err);
        if(rc)
            goto out;
    }
    for(i = 0; i < NKEYS; i++) {
        if(seen[i])
            continue;
        if(!keys[i].def) {
            rc = pa_err_set(err, PA_ECONFIG, "%s: required key %s is missing", name, keys[i].name);
            goto out;
        }
        snprintf(where, sizeof(where), "%s (default)", name);
        rc = set_value(cfg, &keys[i], keys[i].def, where, err);
        if(rc)
            goto out;
    }
    rc = finish_sources(cfg, name, err);
    if(rc)
        goto out;
    *out = cfg;
    cfg = NULL;
out:
    pa_config_free(cfg);
    free(copy);
    return rc;
}

int pa_config_load(const char *path, pa_config **out, pa_err *err)
{
    FILE *f = NULL;
    char *text = NULL;
    size_t n;
    int rc;

    *out = NULL;
    f = fopen(path, "r");
    if(!f) {
        rc = pa_err_set(err, PA_ECONFIG, "cannot read config file %s: %s", path, strerror(errno));
        goto out;
    }
    text = malloc(CONFIG_MAX_BYTES + 1);
    if(!text) {
        rc = pa_err_set(err, PA_ENOMEM, "out of memory");
        goto out;
    }
    n = fread(text, 1, CONFIG_MAX_BYTES + 1, f);
    if(ferror(f) || n > CONFIG_MAX_BYTES) {
        rc =
            pa_err_set(err, PA_ECONFIG, "config file %s is unreadable or larger than %d bytes", path, CONFIG_MAX_BYTES);
        goto out;
    }
    text[n] = '\0';
    rc = pa_config_parse(text, path, out, err);
out:
    if(f)
        fclose(f);
    free(text);
    return rc;
}

const char *pa_config_path(const char *explicit_path)
{
    const char *env;

    if(explicit_path && *explicit_path)
        return explicit_path;
    env = getenv("PA_CONFIG");
    if(env && *env)
        return env;
    return PA_CONFIG_DEFAULT_PATH;
}

void pa_config_free(pa_config *cfg)
{
    size_t i;
    int k;

    if(!cfg)
        return;
    for(i = 0; i < NKEYS; i++)
        if(keys[i].type != KEY_INT)
            free(*str_field(cfg, &keys[i]));
    for(k = 0; k < cfg->nsources; k++)
        for(i = 0; i < NSOURCE_FIELDS; i++)
            free(*source_str(&cfg->sources[k], &source_fields[i]));
    free(cfg);
}
