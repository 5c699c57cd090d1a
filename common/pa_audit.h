/*
 * pa_audit: the audit trail of every API request.
 *
 * A responder queues each request's event on a Redis stream right after the
 * answer went out (one round trip, no WAL flush to wait for); the runner's
 * supervisor moves queued events into PostgreSQL's audit_event table in
 * batches.  When Redis cannot take an event, the responder inserts it
 * itself.  Moving is at-least-once and the insert idempotent (an event is
 * its time and request id), so a drainer that dies mid-batch loses nothing
 * and duplicates nothing.  Events never hold tokens or PHI.
 */
#ifndef PA_AUDIT_H
#define PA_AUDIT_H

#include <libpq-fe.h>

#include "pa_err.h"
#include "pa_redis.h"

typedef struct pa_audit_event {
    char at[32];            /* when the request arrived: FHIR instant, UTC, ms */
    const char *request_id; /* the X-Request-Id answered */
    const char *client_id;  /* NULL (or "") when unauthenticated */
    const char *npi;
    const char *method;
    const char *endpoint; /* the path, never the query string */
    const char *operation;
    const char *group_id;
    const char *job_id;
    const char *outcome; /* success, refused, error */
    const char *detail;  /* why it was refused: for the payer only */
    long members;        /* -1: not applicable */
    int status;
    long long duration_ms;
} pa_audit_event;

/* Queues e on the audit stream. */
int pa_audit_queue(pa_redis *r, const pa_audit_event *e, pa_err *err);

/* Inserts e straight into audit_event (when Redis is out of reach). */
int pa_audit_insert(PGconn *db, const pa_audit_event *e, pa_err *err);

/*
 * Moves queued events into audit_event, batch by batch, at most max_batches
 * batches of batch events, taking over the events another drainer read more
 * than stale_ms ago and never stored.  consumer names this drainer.  Returns
 * how many events it stored, or -1 with err set (what it had not stored
 * stays queued).
 */
long pa_audit_drain(pa_redis *r, PGconn *db, const char *consumer, long batch, int max_batches, long stale_ms,
                    pa_err *err);

/* Forgets drainers idle for idle_ms with nothing pending (runners gone). */
int pa_audit_prune_drainers(pa_redis *r, long idle_ms, long *pruned, pa_err *err);

#endif
