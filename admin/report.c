/*
 * pa-admin report: what a compliance officer files for a period.  Per
 * provider (client and NPI): requests, exports, matches, distinct members
 * disclosed, match outcomes by reason, opt-outs honoured and throttling;
 * then the request-to-completion time of every export and match against the
 * one-business-day rule (business_timezone, business_holidays), with every
 * request that missed it listed.  Text, CSV, JSON or one self-contained HTML
 * page with the turnaround distribution drawn in SVG.
 *
 * PostgreSQL aggregates (one query, a JSON document); the rule, the
 * percentiles and the rendering are done here.
 */
#include "admin.h"

#include <json-c/json.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pa_db.h"
#include "pa_match.h"
#include "pa_util.h"

#define MAX_HOLIDAYS 1024
#define NBINS 8

/* The turnaround distribution's bins: upper bounds in seconds (the last open). */
static const double bin_upper[NBINS] = { 1, 10, 60, 600, 3600, 8 * 3600, 86400, INFINITY };
static const char *const bin_label[NBINS] = { "< 1 s",      "1-10 s", "10 s-1 min", "1-10 min",
                                              "10 min-1 h", "1-8 h",  "8-24 h",     "> 1 day" };

/* One export or match request and how it ended. */
struct request {
    const char *id, *kind, *client, *npi, *state; /* borrowed from the query's document */
    time_t created, deadline;
    double seconds; /* request to its end (completion or failure); so far, for one still open */
    int done;       /* completed */
    int over;       /* completed after the deadline, failed, or open past it */
};

struct stats {
    long count, done, over;
    double median, p95, max;
};

struct report {
    time_t from, to, now;
    const char *tz;
    json_object *doc; /* {"providers": [...], "requests": [...]} */
    struct request *req;
    size_t nreq;
    struct stats st[3];  /* export, match, all */
    long hist[NBINS][2]; /* completed requests per bin: on time, late */
};

static const char *const kinds[3] = { "export", "match", "all" };

/*
 * Per client: its requests (the API's, not the runner's own events), the
 * exports and matches it started, the members disclosed to it (exported or
 * matched), the members an opt-out kept from it, the match outcomes by
 * reason, its 429s on member-match and its flag.  Then every export and match
 * started in the period: jobs and synchronous matches.  A job its client
 * cancelled is counted nowhere: nothing was owed.
 */
static const char report_sql[] =
    "WITH p AS (SELECT to_timestamp($1::double precision) AS lo, to_timestamp($2::double precision) AS hi),"
    " req AS (SELECT client_id, count(*) AS n,"
    "  count(*) FILTER (WHERE status = 429 AND operation = 'member-match') AS throttled,"
    "  count(*) FILTER (WHERE operation = 'member-match' AND method = 'POST' AND status = 200) AS sync_matches"
    "  FROM audit_event, p WHERE at >= p.lo AND at < p.hi AND method <> 'JOB' AND client_id IS NOT NULL GROUP BY client_id),"
    " jobs AS (SELECT owner, count(*) FILTER (WHERE kind = 'export') AS exports,"
    "  count(*) FILTER (WHERE kind = 'match') AS matches FROM job, p"
    "  WHERE created_at >= p.lo AND created_at < p.hi AND state <> 'cancelled' GROUP BY owner),"
    " disc AS (SELECT client_id,"
    "  count(DISTINCT patient_id) FILTER (WHERE outcome IN ('exported', 'matched')) AS disclosed,"
    "  count(DISTINCT patient_id) FILTER (WHERE reason = 'opted-out') AS withheld_members,"
    "  count(*) FILTER (WHERE reason = 'opted-out') AS withheld_records"
    "  FROM disclosure, p WHERE at >= p.lo AND at < p.hi GROUP BY client_id),"
    " outc AS (SELECT client_id, json_object_agg(outcome || ':' || coalesce(reason, ''), n ORDER BY outcome, reason) AS o"
    "  FROM (SELECT client_id, outcome, reason, count(*) AS n FROM disclosure, p"
    "   WHERE operation = 'member-match' AND at >= p.lo AND at < p.hi GROUP BY 1, 2, 3) x GROUP BY client_id) "
    "SELECT json_build_object('providers', coalesce((SELECT json_agg(json_build_object("
    "  'client_id', c.id, 'name', c.name, 'npi', coalesce(c.npi, ''), 'org_npi', coalesce(c.org_npi, ''),"
    "  'admin', c.admin, 'requests', coalesce(req.n, 0), 'exports', coalesce(jobs.exports, 0),"
    "  'matches', coalesce(jobs.matches, 0) + coalesce(req.sync_matches, 0),"
    "  'members_disclosed', coalesce(disc.disclosed, 0), 'withheld_members', coalesce(disc.withheld_members, 0),"
    "  'withheld_records', coalesce(disc.withheld_records, 0), 'throttled', coalesce(req.throttled, 0),"
    "  'flagged', coalesce(to_char(c.flagged_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') || ' '"
    "   || c.flag_reason, ''), 'outcomes', coalesce(outc.o, '{}'::json)) ORDER BY coalesce(c.npi, ''), c.name, c.id)"
    "  FROM client c LEFT JOIN req ON req.client_id = c.id LEFT JOIN jobs ON jobs.owner = c.id"
    "  LEFT JOIN disc ON disc.client_id = c.id LEFT JOIN outc ON outc.client_id = c.id"
    "  WHERE req.n > 0 OR jobs.owner IS NOT NULL OR disc.client_id IS NOT NULL OR c.flagged_at IS NOT NULL), '[]'::json),"
    " 'requests', coalesce((SELECT json_agg(r ORDER BY r.created, r.id) FROM ("
    "  SELECT j.id, j.kind, j.owner AS client, coalesce(j.params->>'npi', '') AS npi,"
    "   extract(epoch FROM j.created_at)::float8 AS created, extract(epoch FROM j.finished_at)::float8 AS finished,"
    "   CASE WHEN j.error IS NOT NULL THEN 'failed' WHEN j.state IN ('completed', 'expired') THEN 'completed'"
    "    ELSE j.state END AS state"
    "  FROM job j, p WHERE j.created_at >= p.lo AND j.created_at < p.hi AND j.state <> 'cancelled'"
    "  UNION ALL SELECT a.request_id, 'match', a.client_id, coalesce(a.npi, ''), extract(epoch FROM a.at)::float8,"
    "   extract(epoch FROM a.at)::float8 + a.duration_ms / 1000.0, 'completed'"
    "  FROM audit_event a, p WHERE a.at >= p.lo AND a.at < p.hi AND a.operation = 'member-match'"
    "   AND a.method = 'POST' AND a.status = 200) r), '[]'::json))::text";

static const char *jstr(json_object *o, const char *k)
{
    json_object *v;

    return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string) ? json_object_get_string(v)
                                                                                           : "";
}

static long jlong(json_object *o, const char *k)
{
    json_object *v;

    return json_object_object_get_ex(o, k, &v) ? (long)json_object_get_int64(v) : 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* Median, 95th percentile (nearest rank) and maximum of the completed requests of a kind. */
static void compute_stats(struct report *r, int k)
{
    struct stats *s = &r->st[k];
    double *v = malloc((r->nreq ? r->nreq : 1) * sizeof(*v));
    size_t i, n = 0;

    memset(s, 0, sizeof(*s));
    if(!v)
        return;
    for(i = 0; i < r->nreq; i++) {
        const struct request *q = &r->req[i];

        if(k < 2 && strcmp(q->kind, kinds[k]))
            continue;
        s->count++;
        s->over += q->over;
        if(q->done) {
            v[n++] = q->seconds;
            s->done++;
        }
    }
    if(n) {
        qsort(v, n, sizeof(*v), cmp_double);
        s->median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
        s->p95 = v[(95 * n + 99) / 100 - 1];
        s->max = v[n - 1];
    }
    free(v);
}

/* Runs the query and applies the rule to every request. */
static int build(struct report *r, PGconn *db, const long *holidays, size_t nholidays)
{
    char lo[32], hi[32];
    const char *values[2] = { lo, hi };
    json_object *list;
    PGresult *res;
    pa_err err;
    size_t i;
    int k;

    snprintf(lo, sizeof(lo), "%lld", (long long)r->from);
    snprintf(hi, sizeof(hi), "%lld", (long long)r->to);
    pa_err_clear(&err);
    res = pa_db_query(db, &err, report_sql, 2, values);
    if(!res) {
        fprintf(stderr, "pa-admin: %s\n", err.msg);
        return -1;
    }
    r->doc = json_tokener_parse(PQgetvalue(res, 0, 0));
    PQclear(res);
    if(!r->doc || !json_object_object_get_ex(r->doc, "requests", &list)) {
        fprintf(stderr, "pa-admin: the report's query answered what it cannot read\n");
        return -1;
    }
    r->nreq = json_object_array_length(list);
    r->req = calloc(r->nreq ? r->nreq : 1, sizeof(*r->req));
    if(!r->req) {
        fprintf(stderr, "pa-admin: out of memory\n");
        return -1;
    }
    for(i = 0; i < r->nreq; i++) {
        json_object *o = json_object_array_get_idx(list, i), *f = NULL;
        struct request *q = &r->req[i];
        double created = json_object_get_double(json_object_object_get(o, "created"));

        q->id = jstr(o, "id");
        q->kind = jstr(o, "kind");
        q->client = jstr(o, "client");
        q->npi = jstr(o, "npi");
        q->state = jstr(o, "state");
        q->created = (time_t)created;
        q->deadline = pa_business_deadline(q->created, holidays, nholidays);
        /* to its end (completed or failed), or so far (still open) */
        json_object_object_get_ex(o, "finished", &f);
        q->done = !strcmp(q->state, "completed") && f;
        q->seconds = (f ? json_object_get_double(f) : (double)r->now) - created;
        if(q->seconds < 0)
            q->seconds = 0;
        /* a failed request never got its answer: it is listed whatever its time */
        q->over = !strcmp(q->state, "failed") || created + q->seconds > (double)q->deadline;
        if(q->done) {
            for(k = 0; k < NBINS - 1 && q->seconds >= bin_upper[k]; k++)
                ;
            r->hist[k][q->over]++;
        }
    }
    for(k = 0; k < 3; k++)
        compute_stats(r, k);
    return 0;
}

/* ---- rendering ---- */

/* Seconds as a person reads them: 28 ms, 4.2 s, 12 s, 3.5 min, 2.1 h, 1.5 d. */
static const char *human(double s, char *buf, size_t size)
{
    if(s < 1)
        snprintf(buf, size, "%.0f ms", s * 1000);
    else if(s < 10)
        snprintf(buf, size, "%.1f s", s);
    else if(s < 120)
        snprintf(buf, size, "%.0f s", s);
    else if(s < 7200)
        snprintf(buf, size, "%.1f min", s / 60);
    else if(s < 172800)
        snprintf(buf, size, "%.1f h", s / 3600);
    else
        snprintf(buf, size, "%.1f d", s / 86400);
    return buf;
}

/* A local time in the report's zone: 2026-11-28 14:05 EST. */
static const char *local(time_t t, char *buf, size_t size)
{
    struct tm tm;

    localtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%d %H:%M %Z", &tm);
    return buf;
}

/* How a request over the rule ended, before its duration: "completed after 3.0 d". */
static const char *ended(const struct request *q)
{
    if(q->done)
        return "completed after";
    if(!strcmp(q->state, "failed"))
        return "failed after";
    return "still open after";
}

static long provider_late(const struct report *r, const char *client)
{
    size_t i;
    long n = 0;

    for(i = 0; i < r->nreq; i++)
        n += r->req[i].over && !strcmp(r->req[i].client, client);
    return n;
}

/* The reason codes' meanings, for the outcome legend. */
static const char *reason_words(const char *key)
{
    const char *colon = strchr(key, ':');
    const char *text = colon ? pa_match_reason_text(colon + 1) : NULL;

    return text ? text : "";
}

static void text_out(const struct report *r, FILE *f)
{
    json_object *providers = json_object_object_get(r->doc, "providers");
    char a[64], b[64], c[32], d[32], e[32];
    size_t i;
    int k;

    fprintf(f, "Provider Access compliance report\n");
    fprintf(f, "period     %s to %s (%s)\n", local(r->from, a, sizeof(a)), local(r->to, b, sizeof(b)), r->tz);
    fprintf(f, "generated  %s\n\n", local(r->now, a, sizeof(a)));
    fprintf(f, "Providers\n");
    fprintf(f, "%-10s  %-16s  %-24s  %8s  %7s  %7s  %9s  %8s  %9s  %4s  %s\n", "NPI", "client", "name", "requests",
            "exports", "matches", "disclosed", "withheld", "throttled", "late", "flagged");
    for(i = 0; i < json_object_array_length(providers); i++) {
        json_object *p = json_object_array_get_idx(providers, i);

        fprintf(f, "%-10s  %-16s  %-24.24s  %8ld  %7ld  %7ld  %9ld  %8ld  %9ld  %4ld  %s\n", jstr(p, "npi"),
                jstr(p, "client_id"), jstr(p, "name"), jlong(p, "requests"), jlong(p, "exports"), jlong(p, "matches"),
                jlong(p, "members_disclosed"), jlong(p, "withheld_members"), jlong(p, "throttled"),
                provider_late(r, jstr(p, "client_id")), jstr(p, "flagged"));
    }
    if(!json_object_array_length(providers))
        fprintf(f, "(no provider activity in the period)\n");
    fprintf(f, "\nMatch outcomes by reason (members)\n");
    for(i = 0; i < json_object_array_length(providers); i++) {
        json_object *p = json_object_array_get_idx(providers, i);

        json_object_object_foreach(json_object_object_get(p, "outcomes"), key, val)
            fprintf(f, "%-10s  %-16s  %-48s  %6ld  %s\n", jstr(p, "npi"), jstr(p, "client_id"), key,
                    (long)json_object_get_int64(val), reason_words(key));
    }
    fprintf(f, "\nTurnaround, request to completion (one business day: the same time on the next business day)\n");
    fprintf(f, "%-7s  %8s  %9s  %10s  %10s  %10s  %s\n", "kind", "requests", "completed", "median", "95th", "max",
            "over one business day");
    for(k = 0; k < 3; k++)
        fprintf(f, "%-7s  %8ld  %9ld  %10s  %10s  %10s  %ld\n", kinds[k], r->st[k].count, r->st[k].done,
                human(r->st[k].median, c, sizeof(c)), human(r->st[k].p95, d, sizeof(d)),
                human(r->st[k].max, e, sizeof(e)), r->st[k].over);
    fprintf(f, "\nRequests not completed within one business day\n");
    for(i = 0; i < r->nreq; i++) {
        const struct request *q = &r->req[i];

        if(q->over)
            fprintf(f, "%-6s  %-32s  %-16s  %-10s  asked %s, due %s, %s %s\n", q->kind, q->id, q->client, q->npi,
                    local(q->created, a, sizeof(a)), local(q->deadline, b, sizeof(b)), ended(q),
                    human(q->seconds, c, sizeof(c)));
    }
    if(!r->st[2].over)
        fprintf(f, "(none)\n");
}

/* A CSV field, quoted when it must be. */
static void csv_field(FILE *f, const char *s, int last)
{
    if(strpbrk(s, ",\"\r\n")) {
        fputc('"', f);
        for(; *s; s++) {
            if(*s == '"')
                fputc('"', f);
            fputc(*s, f);
        }
        fputc('"', f);
    }
    else
        fputs(s, f);
    fputc(last ? '\n' : ',', f);
}

static void csv_row(FILE *f, const char *section, const char *npi, const char *client, const char *name,
                    const char *metric, const char *value)
{
    csv_field(f, section, 0);
    csv_field(f, npi, 0);
    csv_field(f, client, 0);
    csv_field(f, name, 0);
    csv_field(f, metric, 0);
    csv_field(f, value, 1);
}

/* One table, long form (section, npi, client, name, metric, value): every
 * figure of the text report, ready for a spreadsheet's pivot. */
static void csv_out(const struct report *r, FILE *f)
{
    static const char *const metrics[] = { "requests",         "exports",          "matches",  "members_disclosed",
                                           "withheld_members", "withheld_records", "throttled" };
    json_object *providers = json_object_object_get(r->doc, "providers");
    char v[64], a[64];
    size_t i, m;
    int k;

    csv_row(f, "section", "npi", "client", "name", "metric", "value");
    pa_instant_format((int64_t)r->from * 1000, a);
    csv_row(f, "period", "", "", "", "from", a);
    pa_instant_format((int64_t)r->to * 1000, a);
    csv_row(f, "period", "", "", "", "to", a);
    csv_row(f, "period", "", "", "", "business_timezone", r->tz);
    for(i = 0; i < json_object_array_length(providers); i++) {
        json_object *p = json_object_array_get_idx(providers, i);
        const char *npi = jstr(p, "npi"), *id = jstr(p, "client_id"), *name = jstr(p, "name");

        for(m = 0; m < sizeof(metrics) / sizeof(metrics[0]); m++) {
            snprintf(v, sizeof(v), "%ld", jlong(p, metrics[m]));
            csv_row(f, "provider", npi, id, name, metrics[m], v);
        }
        snprintf(v, sizeof(v), "%ld", provider_late(r, id));
        csv_row(f, "provider", npi, id, name, "late", v);
        if(*jstr(p, "flagged"))
            csv_row(f, "provider", npi, id, name, "flagged", jstr(p, "flagged"));
        json_object_object_foreach(json_object_object_get(p, "outcomes"), key, val)
        {
            snprintf(v, sizeof(v), "%ld", (long)json_object_get_int64(val));
            csv_row(f, "match-outcome", npi, id, name, key, v);
        }
    }
    for(k = 0; k < 3; k++) {
        const struct stats *s = &r->st[k];
        const char *names[6] = { "requests", "completed", "median_seconds", "p95_seconds", "max_seconds", "over" };
        double vals[6] = { (double)s->count, (double)s->done, s->median, s->p95, s->max, (double)s->over };

        for(m = 0; m < 6; m++) {
            snprintf(v, sizeof(v), m >= 2 && m <= 4 ? "%.3f" : "%.0f", vals[m]);
            csv_row(f, "turnaround", "", "", kinds[k], names[m], v);
        }
    }
    for(i = 0; i < r->nreq; i++) {
        const struct request *q = &r->req[i];

        if(!q->over)
            continue;
        snprintf(v, sizeof(v), "%.3f", q->seconds);
        snprintf(a, sizeof(a), "%s %s", q->kind, q->done ? "completed" : q->state);
        csv_row(f, "over-one-business-day", q->npi, q->client, q->id, a, v);
    }
}

static json_object *stats_json(const struct stats *s)
{
    json_object *o = json_object_new_object();

    json_object_object_add(o, "requests", json_object_new_int64(s->count));
    json_object_object_add(o, "completed", json_object_new_int64(s->done));
    json_object_object_add(o, "median_seconds", json_object_new_double(s->median));
    json_object_object_add(o, "p95_seconds", json_object_new_double(s->p95));
    json_object_object_add(o, "max_seconds", json_object_new_double(s->max));
    json_object_object_add(o, "over_one_business_day", json_object_new_int64(s->over));
    return o;
}

static void json_out(const struct report *r, FILE *f)
{
    json_object *o = json_object_new_object(), *t = json_object_new_object(), *over = json_object_new_array();
    json_object *hist = json_object_new_array(), *providers = json_object_object_get(r->doc, "providers");
    char a[32];
    size_t i;
    int k;

    pa_instant_format((int64_t)r->from * 1000, a);
    json_object_object_add(o, "from", json_object_new_string(a));
    pa_instant_format((int64_t)r->to * 1000, a);
    json_object_object_add(o, "to", json_object_new_string(a));
    pa_instant_format((int64_t)r->now * 1000, a);
    json_object_object_add(o, "generated", json_object_new_string(a));
    json_object_object_add(o, "business_timezone", json_object_new_string(r->tz));
    for(i = 0; i < json_object_array_length(providers); i++) {
        json_object *p = json_object_array_get_idx(providers, i);

        json_object_object_add(p, "late", json_object_new_int64(provider_late(r, jstr(p, "client_id"))));
    }
    json_object_object_add(o, "providers", json_object_get(providers));
    for(k = 0; k < 3; k++)
        json_object_object_add(t, kinds[k], stats_json(&r->st[k]));
    json_object_object_add(o, "turnaround", t);
    for(k = 0; k < NBINS; k++) {
        json_object *b = json_object_new_object();

        json_object_object_add(b, "bin", json_object_new_string(bin_label[k]));
        json_object_object_add(b, "on_time", json_object_new_int64(r->hist[k][0]));
        json_object_object_add(b, "late", json_object_new_int64(r->hist[k][1]));
        json_object_array_add(hist, b);
    }
    json_object_object_add(o, "distribution", hist);
    for(i = 0; i < r->nreq; i++) {
        const struct request *q = &r->req[i];
        json_object *x;

        if(!q->over)
            continue;
        x = json_object_new_object();
        json_object_object_add(x, "id", json_object_new_string(q->id));
        json_object_object_add(x, "kind", json_object_new_string(q->kind));
        json_object_object_add(x, "client_id", json_object_new_string(q->client));
        json_object_object_add(x, "npi", json_object_new_string(q->npi));
        json_object_object_add(x, "state", json_object_new_string(q->done ? "completed" : q->state));
        pa_instant_format((int64_t)q->created * 1000, a);
        json_object_object_add(x, "requested", json_object_new_string(a));
        pa_instant_format((int64_t)q->deadline * 1000, a);
        json_object_object_add(x, "due", json_object_new_string(a));
        json_object_object_add(x, "seconds", json_object_new_double(q->seconds));
        json_object_array_add(over, x);
    }
    json_object_object_add(o, "over_one_business_day", over);
    fprintf(f, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
}

/* Text for HTML: &, <, >, " and ' escaped. */
static void h(FILE *f, const char *s)
{
    for(; *s; s++)
        switch(*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
}

static const char html_style[] =
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#1d2530;"
    "margin:32px auto;max-width:1080px;padding:0 24px}"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #d5dbe3;"
    "padding-bottom:4px}.meta{color:#55606e;margin:0}"
    ".cards{display:flex;flex-wrap:wrap;gap:12px;margin:20px 0}.card{border:1px solid #d5dbe3;border-radius:6px;"
    "padding:10px 14px;flex:1 1 110px}.card b{display:block;font-size:20px}.card span{color:#55606e;font-size:12px}"
    ".card.bad b{color:#b3261e}.card.good b{color:#1f7a55}"
    "table{border-collapse:collapse;width:100%;margin:4px 0}th,td{text-align:left;padding:5px 8px;"
    "border-bottom:1px solid #e6eaef;vertical-align:top}th{background:#f3f5f8;font-weight:600;font-size:12px}"
    "td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}svg{display:block;margin:16px 0}.none{color:#55606e;font-style:italic}"
    ".late{color:#b3261e;font-weight:600}code{font-size:12px}"
    ".notes{color:#55606e;font-size:12px;margin-top:28px}"
    "@media print{body{margin:0}.card{break-inside:avoid}}";

/* The turnaround distribution: completed requests per duration bin, on time
 * and late stacked, as an inline SVG bar chart. */
static void html_chart(const struct report *r, FILE *f)
{
    const int W = 760, H = 300, left = 48, right = 16, top = 40, bottom = 52;
    const double pw = W - left - right, ph = H - top - bottom, slot = pw / NBINS;
    long max = 0, step, ymax;
    int k;

    for(k = 0; k < NBINS; k++)
        if(r->hist[k][0] + r->hist[k][1] > max)
            max = r->hist[k][0] + r->hist[k][1];
    /* a round scale: 1, 2 or 5 times a power of ten, four or five ticks */
    for(step = 1;; step *= 10) {
        if(max <= 4 * step)
            break;
        if(max <= 8 * step) {
            step *= 2;
            break;
        }
        if(max <= 20 * step) {
            step *= 5;
            break;
        }
    }
    ymax = ((max + step - 1) / step) * step;
    if(ymax == 0)
        ymax = step * 4;
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" "
            "aria-label=\"Turnaround distribution of completed exports and matches\" "
            "font-family=\"system-ui,Helvetica,Arial,sans-serif\" font-size=\"11\">\n",
            W, H, W, H);
    for(k = 0; (long)k * step <= ymax; k++) {
        double y = top + ph - ph * (double)(k * step) / (double)ymax;

        fprintf(f,
                "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e6eaef\"/>"
                "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" fill=\"#55606e\">%ld</text>\n",
                left, W - right, y, y, left - 6, y + 4, k * step);
    }
    for(k = 0; k < NBINS; k++) {
        double x = left + slot * k + slot * 0.15, w = slot * 0.7;
        double h0 = ph * (double)r->hist[k][0] / (double)ymax, h1 = ph * (double)r->hist[k][1] / (double)ymax;
        double base = top + ph;

        if(r->hist[k][0])
            fprintf(f,
                    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#2f7d66\"><title>%s: %ld on "
                    "time</title></rect>\n",
                    x, base - h0, w, h0, bin_label[k], r->hist[k][0]);
        if(r->hist[k][1])
            fprintf(f,
                    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#b3261e\"><title>%s: %ld "
                    "late</title></rect>\n",
                    x, base - h0 - h1, w, h1, bin_label[k], r->hist[k][1]);
        if(r->hist[k][0] + r->hist[k][1])
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#1d2530\">%ld</text>\n", x + w / 2,
                    base - h0 - h1 - 5, r->hist[k][0] + r->hist[k][1]);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#1d2530\">%s</text>\n", x + w / 2,
                base + 16, bin_label[k]);
    }
    fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#8a94a3\"/>\n", left, W - right, top + ph,
            top + ph);
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#55606e\">request to completion</text>\n",
            left + pw / 2, H - 12);
    fprintf(f,
            "<text x=\"12\" y=\"%.1f\" transform=\"rotate(-90 12 %.1f)\" text-anchor=\"middle\" "
            "fill=\"#55606e\">requests</text>\n",
            top + ph / 2, top + ph / 2);
    fprintf(f,
            "<text x=\"%d\" y=\"14\" font-size=\"12\" font-weight=\"600\" fill=\"#1d2530\">Completed exports and "
            "matches by time to completion</text>\n"
            "<rect x=\"%d\" y=\"5\" width=\"10\" height=\"10\" fill=\"#2f7d66\"/><text x=\"%d\" y=\"14\">within one "
            "business day</text><rect x=\"%d\" y=\"5\" width=\"10\" height=\"10\" fill=\"#b3261e\"/>"
            "<text x=\"%d\" y=\"14\">later</text>\n</svg>\n",
            left, W - right - 250, W - right - 236, W - right - 80, W - right - 66);
}

static void html_card(FILE *f, const char *cls, const char *value, const char *label)
{
    fprintf(f, "<div class=\"card %s\"><b>", cls);
    h(f, value);
    fputs("</b><span>", f);
    h(f, label);
    fputs("</span></div>\n", f);
}

/* The head, the period and the summary cards. */
static void html_head(const struct report *r, FILE *f)
{
    static const char *const keys[5] = { "requests", "exports", "matches", "members_disclosed", "withheld_members" };
    static const char *const labels[5] = { "API requests", "exports", "member matches", "members disclosed",
                                           "members withheld (opt-outs)" };
    json_object *providers = json_object_object_get(r->doc, "providers");
    size_t i, np = json_object_array_length(providers);
    char a[64], b[64];
    int k;

    local(r->from, a, sizeof(a));
    local(r->to, b, sizeof(b));
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Provider Access compliance "
          "report, ",
          f);
    h(f, a);
    fputs(" to ", f);
    h(f, b);
    fprintf(f, "</title>\n<style>%s</style>\n</head>\n<body>\n<h1>Provider Access compliance report</h1>\n",
            html_style);
    fputs("<p class=\"meta\">Period ", f);
    h(f, a);
    fputs(" to ", f);
    h(f, b);
    fputs(" &middot; business days in ", f);
    h(f, r->tz);
    fputs(" &middot; generated ", f);
    h(f, local(r->now, a, sizeof(a)));
    fputs("</p>\n<div class=\"cards\">\n", f);
    snprintf(a, sizeof(a), "%zu", np);
    html_card(f, "", a, "providers active");
    for(k = 0; k < 5; k++) {
        long total = 0;

        for(i = 0; i < np; i++)
            total += jlong(json_object_array_get_idx(providers, i), keys[k]);
        snprintf(a, sizeof(a), "%ld", total);
        html_card(f, "", a, labels[k]);
    }
    snprintf(a, sizeof(a), "%ld", r->st[2].over);
    html_card(f, r->st[2].over ? "bad" : "good", a, "not completed within one business day");
    fputs("</div>\n", f);
}

static void html_providers(const struct report *r, FILE *f)
{
    json_object *providers = json_object_object_get(r->doc, "providers");
    size_t i, np = json_object_array_length(providers);

    fputs(
        "<h2>Providers</h2>\n<table>\n<tr><th>NPI</th><th>client</th><th>name</th><th class=\"n\">requests</th>"
        "<th class=\"n\">exports</th><th class=\"n\">matches</th><th class=\"n\">members disclosed</th>"
        "<th class=\"n\">members withheld</th><th class=\"n\">throttled</th><th class=\"n\">late</th><th>flagged</th></tr>\n",
        f);
    for(i = 0; i < np; i++) {
        json_object *p = json_object_array_get_idx(providers, i);
        long late = provider_late(r, jstr(p, "client_id"));

        fputs("<tr><td>", f);
        h(f, *jstr(p, "npi") ? jstr(p, "npi")
                             : (json_object_get_boolean(json_object_object_get(p, "admin")) ? "(admin)" : ""));
        fputs("</td><td><code>", f);
        h(f, jstr(p, "client_id"));
        fputs("</code></td><td>", f);
        h(f, jstr(p, "name"));
        fprintf(f,
                "</td><td class=\"n\">%ld</td><td class=\"n\">%ld</td><td class=\"n\">%ld</td><td class=\"n\">%ld</td>"
                "<td class=\"n\">%ld</td><td class=\"n\">%ld</td><td class=\"n%s\">%ld</td><td>",
                jlong(p, "requests"), jlong(p, "exports"), jlong(p, "matches"), jlong(p, "members_disclosed"),
                jlong(p, "withheld_members"), jlong(p, "throttled"), late ? " late" : "", late);
        h(f, jstr(p, "flagged"));
        fputs("</td></tr>\n", f);
    }
    if(!np)
        fputs("<tr><td colspan=\"11\" class=\"none\">No provider activity in the period.</td></tr>\n", f);
    fputs("</table>\n", f);
}

static void html_outcomes(const struct report *r, FILE *f)
{
    json_object *providers = json_object_object_get(r->doc, "providers");
    size_t i;
    int any = 0;

    fputs("<h2>Member-match outcomes by reason</h2>\n<table>\n<tr><th>NPI</th><th>client</th><th>outcome</th>"
          "<th>reason code</th><th>meaning</th><th class=\"n\">members</th></tr>\n",
          f);
    for(i = 0; i < json_object_array_length(providers); i++) {
        json_object *p = json_object_array_get_idx(providers, i);

        json_object_object_foreach(json_object_object_get(p, "outcomes"), key, val)
        {
            const char *colon = strchr(key, ':');

            any = 1;
            fputs("<tr><td>", f);
            h(f, jstr(p, "npi"));
            fputs("</td><td><code>", f);
            h(f, jstr(p, "client_id"));
            fprintf(f, "</code></td><td>%.*s</td><td><code>", colon ? (int)(colon - key) : (int)strlen(key), key);
            h(f, colon ? colon + 1 : "");
            fputs("</code></td><td>", f);
            h(f, reason_words(key));
            fprintf(f, "</td><td class=\"n\">%ld</td></tr>\n", (long)json_object_get_int64(val));
        }
    }
    if(!any)
        fputs("<tr><td colspan=\"6\" class=\"none\">No member matches in the period.</td></tr>\n", f);
    fputs("</table>\n", f);
}

static void html_turnaround(const struct report *r, FILE *f)
{
    char c[32], d[32], e[32];
    int k;

    fputs("<h2>Turnaround: request to completion</h2>\n<p class=\"meta\">The rule: data available within one "
          "business day of the request (the same time on the next business day; a request made on a weekend or a "
          "holiday is due by the end of the next business day).</p>\n<table>\n<tr><th>kind</th><th class=\"n\">requests"
          "</th><th class=\"n\">completed</th><th class=\"n\">median</th><th class=\"n\">95th percentile</th>"
          "<th class=\"n\">maximum</th><th class=\"n\">over one business day</th></tr>\n",
          f);
    for(k = 0; k < 3; k++)
        fprintf(f,
                "<tr><td>%s</td><td class=\"n\">%ld</td><td class=\"n\">%ld</td><td class=\"n\">%s</td>"
                "<td class=\"n\">%s</td><td class=\"n\">%s</td><td class=\"n%s\">%ld</td></tr>\n",
                kinds[k], r->st[k].count, r->st[k].done, human(r->st[k].median, c, sizeof(c)),
                human(r->st[k].p95, d, sizeof(d)), human(r->st[k].max, e, sizeof(e)), r->st[k].over ? " late" : "",
                r->st[k].over);
    fputs("</table>\n", f);
    html_chart(r, f);
}

static void html_late(const struct report *r, FILE *f)
{
    char a[64], c[32];
    size_t i;

    fputs("<h2>Requests not completed within one business day</h2>\n<table>\n<tr><th>kind</th><th>request or job</th>"
          "<th>client</th><th>NPI</th><th>requested</th><th>due</th><th>outcome</th></tr>\n",
          f);
    for(i = 0; i < r->nreq; i++) {
        const struct request *q = &r->req[i];

        if(!q->over)
            continue;
        fputs("<tr><td>", f);
        h(f, q->kind);
        fputs("</td><td><code>", f);
        h(f, q->id);
        fputs("</code></td><td><code>", f);
        h(f, q->client);
        fputs("</code></td><td>", f);
        h(f, q->npi);
        fputs("</td><td>", f);
        h(f, local(q->created, a, sizeof(a)));
        fputs("</td><td>", f);
        h(f, local(q->deadline, a, sizeof(a)));
        fputs("</td><td class=\"late\">", f);
        h(f, ended(q));
        fprintf(f, " %s</td></tr>\n", human(q->seconds, c, sizeof(c)));
    }
    if(!r->st[2].over)
        fputs(
            "<tr><td colspan=\"7\" class=\"none\">None: every request was completed within one business day.</td></tr>\n",
            f);
    fputs("</table>\n", f);
}

static void html_out(const struct report *r, FILE *f)
{
    html_head(r, f);
    html_providers(r, f);
    html_outcomes(r, f);
    html_turnaround(r, f);
    html_late(r, f);
    fputs(
        "<p class=\"notes\">Members disclosed: distinct members whose data was exported to the provider or "
        "whose membership a match confirmed. Members withheld: distinct members an opt-out kept out of an export or a "
        "match. Throttled: member matches refused for the enumeration guard. Late: the provider's requests not "
        "completed within one business day (failed requests included). Requests the provider cancelled are not "
        "counted. Every figure comes from the service's audit trail and disclosure records (<code>pa-admin audit"
        "</code>, <code>pa-admin disclosures</code>).</p>\n</body>\n</html>\n",
        f);
}

static void usage(void)
{
    fprintf(stderr, "usage: pa-admin report [--from D] [--to D] [--format text|csv|json|html] [--out FILE]\n"
                    "  per provider: requests, exports, matches, members disclosed, match outcomes by reason,\n"
                    "  opt-outs honoured, throttling; the turnaround of every export and match against the\n"
                    "  one-business-day rule, each request over it listed.  D is a date (the whole day, in\n"
                    "  business_timezone) or an instant; by default the last 30 days up to now.\n");
}

/* A date (its midnight in the report's zone; end: the next midnight) or an instant. */
static int parse_bound(const char *s, int end, time_t *out)
{
    int64_t ms;
    int y, m, d;

    if(strlen(s) == 10 && pa_parse_date(s, &y, &m, &d) == PA_OK && d) {
        struct tm tm;

        memset(&tm, 0, sizeof(tm));
        tm.tm_year = y - 1900;
        tm.tm_mon = m - 1;
        tm.tm_mday = d + (end ? 1 : 0);
        tm.tm_isdst = -1;
        *out = mktime(&tm);
        return 0;
    }
    if(pa_parse_instant(s, &ms))
        return -1;
    *out = (time_t)(ms / 1000);
    return 0;
}

int cmd_report(int argc, char **argv)
{
    const char *from = NULL, *to = NULL, *format = "text", *path = NULL;
    static long holidays[MAX_HOLIDAYS];
    struct report r;
    pa_config *cfg = NULL;
    PGconn *db = NULL;
    FILE *f = stdout;
    long nh;
    int i, rc = 1;

    for(i = 1; i < argc; i++) {
        if(!strcmp(argv[i], "--from") && i + 1 < argc)
            from = argv[++i];
        else if(!strcmp(argv[i], "--to") && i + 1 < argc)
            to = argv[++i];
        else if(!strcmp(argv[i], "--format") && i + 1 < argc)
            format = argv[++i];
        else if(!strcmp(argv[i], "--out") && i + 1 < argc)
            path = argv[++i];
        else {
            usage();
            return 2;
        }
    }
    if(strcmp(format, "text") && strcmp(format, "csv") && strcmp(format, "json") && strcmp(format, "html")) {
        fprintf(stderr, "pa-admin: --format is text, csv, json or html, not '%s'\n", format);
        return 2;
    }
    if(admin_connect(&cfg, &db))
        return 1;
    memset(&r, 0, sizeof(r));
    /* the business day's clock: dates, deadlines and times are the payer's */
    setenv("TZ", cfg->business_timezone, 1);
    tzset();
    r.tz = cfg->business_timezone;
    r.now = time(NULL);
    r.to = r.now + 1; /* up to now, this very second included */
    r.from = r.now - 30 * 86400;
    if((from && parse_bound(from, 0, &r.from)) || (to && parse_bound(to, 1, &r.to))) {
        fprintf(stderr, "pa-admin: --from and --to take a date (2026-11-01) or an instant (2026-11-01T08:00:00Z)\n");
        rc = 2;
        goto out;
    }
    if(r.to <= r.from) {
        fprintf(stderr, "pa-admin: the period ends before it begins\n");
        rc = 2;
        goto out;
    }
    nh = pa_parse_day_list(cfg->business_holidays, holidays, MAX_HOLIDAYS);
    if(nh < 0) {
        fprintf(stderr, "pa-admin: business_holidays holds more than %d days\n", MAX_HOLIDAYS);
        goto out;
    }
    if(build(&r, db, holidays, (size_t)nh))
        goto out;
    if(path)
        f = fopen(path, "w");
    if(!f) {
        fprintf(stderr, "pa-admin: cannot write %s\n", path);
        goto out;
    }
    if(!strcmp(format, "text"))
        text_out(&r, f);
    else if(!strcmp(format, "csv"))
        csv_out(&r, f);
    else if(!strcmp(format, "json"))
        json_out(&r, f);
    else
        html_out(&r, f);
    rc = fflush(f) || ferror(f) ? 1 : 0;
    if(path && fclose(f))
        rc = 1;
    if(rc)
        fprintf(stderr, "pa-admin: the report could not be written\n");
out:
    free(r.req);
    json_object_put(r.doc);
    if(db)
        PQfinish(db);
    pa_config_free(cfg);
    return rc;
}
