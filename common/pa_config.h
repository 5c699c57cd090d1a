/*
 * pa_config: the one configuration file read by the responder, the runner
 * and pa-admin.  Format: `key = value` lines, `#` comments, blank lines.
 * Every key is known in advance (an unknown key is an error, so a typo never
 * goes unnoticed); each has a type, a range and either a default or the
 * mark "required".  docs/CONFIGURATION.md lists them all.
 */
#ifndef PA_CONFIG_H
#define PA_CONFIG_H

#include "pa_err.h"

#define PA_CONFIG_DEFAULT_PATH SYSCONFDIR "/provider-access/provider-access.conf"

#define PA_CONFIG_SOURCES_MAX 16

/* A FHIR server pa-admin sync pulls the payer's data from: the keys
 * source.NAME.FIELD (docs/CONFIGURATION.md). */
typedef struct pa_config_source {
    char name[64];
    char *url;         /* the FHIR base */
    char *level;       /* system | patient | group/ID */
    char *types;       /* _type ("" = all) */
    char *auth;        /* none | bearer | secret | smart */
    char *client_id;   /* secret, smart */
    char *key_file;    /* smart: the PEM private key */
    char *kid;         /* smart: the key's kid (as registered in the JWKS) */
    char *secret_file; /* secret: a file holding the client secret */
    char *token_file;  /* bearer: a file holding the token */
    char *token_url;   /* secret, smart ("" = from .well-known/smart-configuration) */
    char *scope;
    char *ca_file; /* trusted CAs for https ("" = the system's) */
    long parallel; /* downloads at once */
} pa_config_source;

typedef struct pa_config {
    char *base_url;        /* public URL of the FHIR base, no trailing slash */
    char *data_dir;        /* export files live under data_dir/jobs/<id>/ */
    char *pg_conninfo;     /* libpq connection string */
    char *export_database; /* a hot standby exports read their resources from ("": the primary) */
    char *redis_host;
    long redis_port;
    char *redis_password;              /* "" = no AUTH */
    char *redis_prefix;                /* prefix of every Redis key, e.g. "pa:" */
    long redis_timeout_ms;             /* per command; blocking reads stay below it */
    char *log_file;                    /* "" or "-" = standard error */
    char *log_level;                   /* debug | info | warn | error */
    long max_request_body;             /* bytes the responder reads from a request */
    long max_jobs_per_client;          /* queued + running jobs of one client */
    long retention_seconds;            /* export files are kept this long after completion */
    long retry_after_seconds;          /* advised polling interval */
    long claim_idle_seconds;           /* a job whose runner is silent this long is taken over */
    long export_chunk_members;         /* members read per export chunk */
    long export_part_members;          /* an export of more members is split into parts of this many (0: never) */
    long export_refs_batch_bytes;      /* a chunk's references held before they are sent */
    long export_file_max_bytes;        /* an output file is split at this size */
    char *service_date_floor;          /* claims and clinical data before this date are not exported ("" = none) */
    long poll_min_interval_ms;         /* a client polling a job faster than this gets 429 */
    long responder_db_idle_seconds;    /* a responder closes a PostgreSQL connection unused this long */
    long member_match_sync_max;        /* members answered at once without Prefer: respond-async */
    long member_match_max;             /* members in one $provider-member-match */
    long suppress_consent_constrained; /* 1: opted-out members are reported as NonMatched */
    long matched_group_days;           /* a Matched Group is kept this long */
    long trl_claims_months;      /* a claim naming the provider this recently is a treatment relationship (0: off) */
    char *payer_identifier;      /* CoverageToMatch.payor identifiers must carry this value ("" = not checked) */
    long pdex_member_extensions; /* 1: roster members carry PDex 2.1.0's lastTransmitted, lastTypes, lastTypeFilter */
    char *treatment_relationship_policy; /* "list": a relationship on file or a recent claim; "attestation":
                                          * also a verified attestation, which is then recorded as one */
    long export_chunk_pause_ms;          /* pause between chunks, to leave I/O to other work */
    long runner_workers;
    long xsendfile;                   /* 1: Apache serves files (X-Sendfile); 0: the responder streams */
    long require_https;               /* 1: a request that did not come over TLS is answered 403 */
    long plain_http_loopback;         /* 1: ... except from a loopback address (health checks, a local proxy) */
    long match_nonmatch_budget;       /* unmatched members a client may send a window (pa_guard) */
    long match_budget_window_seconds; /* the window */
    long match_repeat_weight;         /* what one costs whose demographics came before with another id */
    char *business_timezone;          /* the one-business-day rule's clock (pa-admin report): UTC or a zoneinfo name */
    char *business_holidays;          /* days that are not business days: YYYY-MM-DD, separated by spaces or commas */
    pa_config_source sources[PA_CONFIG_SOURCES_MAX];
    int nsources;
} pa_config;

/* The source named name, or NULL. */
const pa_config_source *pa_config_source_find(const pa_config *cfg, const char *name);

/* Reads path into a new config (*out, freed with pa_config_free).  On an
 * error, err->msg names the file, the line and the key. */
int pa_config_load(const char *path, pa_config **out, pa_err *err);

/* Reads from a string instead of a file; name is for messages.  What
 * pa_config_load does with the file's text, exposed for the unit tests and
 * the match fuzz target. */
int pa_config_parse(const char *text, const char *name, pa_config **out, pa_err *err);

/* The path to use: explicit if given, else $PA_CONFIG, else the default. */
const char *pa_config_path(const char *explicit_path);

void pa_config_free(pa_config *cfg);

#endif
