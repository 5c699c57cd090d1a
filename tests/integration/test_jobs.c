/*
 * The job model against a real Redis and PostgreSQL (the integration stack's):
 * every transition of the state machine and every race the Lua scripts
 * guard; and the audit stream's drain.  Keys use their own prefix and rows
 * their own owner or request ids, so the stack's runner never sees them.
 *   pa-test-jobs CONFIG
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/cu_main.h"
#include "pa_audit.h"
#include "pa_config.h"
#include "pa_db.h"
#include "pa_job.h"
#include "pa_redis.h"
#include "pa_util.h"

#define OWNER "jobmodel-test"

static pa_config *cfg;
static pa_redis *redis;
static PGconn *db;

static void reset(void)
{
    redisReply *reply = pa_redis_cmd(redis, NULL, "EVAL %s 0",
                                     "for _, k in ipairs(redis.call('KEYS', 'pa-test:*')) do "
                                     "redis.call('DEL', k) end return 1");
    PGresult *res = pa_db_query(db, NULL, "DELETE FROM job WHERE owner LIKE 'jobmodel-test%'", 0, NULL);

    if(reply)
        freeReplyObject(reply);
    PQclear(res);
    res = pa_db_query(db, NULL, "DELETE FROM audit_event WHERE request_id LIKE 'jobmodel-%'", 0, NULL);
    PQclear(res);
    pa_job_queue_init(redis, NULL);
}

/* How many jobs Redis counts as owner's active ones (the set pa_job_submit
 * caps and pa_job_complete and its kin leave). */
static int active_count(const char *owner, long *count)
{
    char key[256];
    redisReply *reply =
        pa_redis_cmd(redis, NULL, "SCARD %s", pa_redis_key(redis, key, sizeof(key), "active:%s", owner));

    if(!reply)
        return PA_EREDIS;
    *count = reply->type == REDIS_REPLY_INTEGER ? (long)reply->integer : -1;
    freeReplyObject(reply);
    return PA_OK;
}

static pa_job *submit(const char *owner, long cap, int *rc)
{
    pa_job *job = NULL;
    pa_err err;

    if(pa_job_create(&job, "export", owner, "http://x/Group/g/$export", "{\"group\":\"g\"}", pa_now_ms(), &err))
        return NULL;
    *rc = pa_job_submit(redis, db, job, cap, &err);
    return job;
}

static void test_submit_and_cap(void)
{
    pa_job *a, *b, *c, *got = NULL;
    long n = 0;
    int rc;
    pa_err err;
    const char *values[1];
    PGresult *res;

    reset();
    a = submit(OWNER, 2, &rc);
    CU_ASSERT_EQUAL(rc, PA_OK);
    b = submit(OWNER, 2, &rc);
    CU_ASSERT_EQUAL(rc, PA_OK);
    c = submit(OWNER, 2, &rc);
    CU_ASSERT_EQUAL(rc, PA_EBUSY);
    CU_ASSERT_EQUAL(active_count(OWNER, &n), PA_OK);
    CU_ASSERT_EQUAL(n, 2);
    /* the refused job leaves no durable row to be recovered later */
    values[0] = c->id;
    res = pa_db_query(db, &err, "SELECT count(*) FROM job WHERE id = $1", 1, values);
    CU_ASSERT_STRING_EQUAL(PQgetvalue(res, 0, 0), "0");
    PQclear(res);
    CU_ASSERT_EQUAL_FATAL(pa_job_get(redis, a->id, &got, &err), PA_OK);
    CU_ASSERT_STRING_EQUAL(got->state, "queued");
    CU_ASSERT_STRING_EQUAL(got->owner, OWNER);
    CU_ASSERT_STRING_EQUAL(got->params, "{\"group\":\"g\"}");
    CU_ASSERT_EQUAL(got->ttime, a->ttime);
    /* another client has its own cap */
    pa_job_free(c);
    c = submit(OWNER "-2", 2, &rc);
    CU_ASSERT_EQUAL(rc, PA_OK);
    CU_ASSERT_EQUAL(pa_job_get(redis, "0123456789abcdef0123456789abcdef", &got, &err), PA_ENOTFOUND);
    CU_ASSERT_EQUAL(pa_job_get(redis, "../../etc", &got, &err), PA_ENOTFOUND);
    pa_job_free(a);
    pa_job_free(b);
    pa_job_free(c);
}

static void test_lifecycle(void)
{
    pa_job_entry e;
    pa_job *job, *got = NULL;
    long attempts = 0, n = 0;
    int rc;
    pa_err err;

    reset();
    job = submit(OWNER, 5, &rc);
    CU_ASSERT_EQUAL_FATAL(rc, PA_OK);
    CU_ASSERT_EQUAL(pa_job_next(redis, "A", 100, 60000, &e, &err), 1);
    CU_ASSERT_STRING_EQUAL(e.jobid, job->id);
    CU_ASSERT_EQUAL(pa_job_begin(redis, e.jobid, NULL, "A", pa_now_ms(), &attempts, &err), 1);
    CU_ASSERT_EQUAL(attempts, 1);
    CU_ASSERT_EQUAL(pa_job_checkpoint(redis, e.jobid, NULL, "A", 1, 4, "{\"after\":\"x\"}", &err), PA_OK);
    CU_ASSERT_EQUAL_FATAL(pa_job_get(redis, e.jobid, &got, &err), PA_OK);
    CU_ASSERT_STRING_EQUAL(got->state, "running");
    CU_ASSERT_EQUAL(got->done, 1);
    CU_ASSERT_EQUAL(got->total, 4);
    CU_ASSERT_STRING_EQUAL(got->checkpoint, "{\"after\":\"x\"}");
    pa_job_free(got);
    CU_ASSERT_EQUAL(pa_job_complete(redis, e.jobid, NULL, "A", "{\"output\":[]}", 1000, 5000, &err), PA_OK);
    CU_ASSERT_EQUAL(pa_job_ack(redis, &e, &err), PA_OK);
    CU_ASSERT_EQUAL_FATAL(pa_job_get(redis, e.jobid, &got, &err), PA_OK);
    CU_ASSERT_STRING_EQUAL(got->state, "completed");
    CU_ASSERT_STRING_EQUAL(got->manifest, "{\"output\":[]}");
    CU_ASSERT_PTR_NULL(got->checkpoint);
    CU_ASSERT_EQUAL(got->finished, 1000);
    pa_job_free(got);
    CU_ASSERT_EQUAL(active_count(OWNER, &n), PA_OK);
    CU_ASSERT_EQUAL(n, 0);
    /* purging is due at completion + retention, not before */
    {
        char **ids = NULL;
        size_t k = 0;

        CU_ASSERT_EQUAL(pa_job_due(redis, 5999, 10, &ids, &k, &err), PA_OK);
        CU_ASSERT_EQUAL(k, 0);
        free(ids);
        CU_ASSERT_EQUAL(pa_job_due(redis, 6000, 10, &ids, &k, &err), PA_OK);
        CU_ASSERT_EQUAL_FATAL(k, 1);
        CU_ASSERT_STRING_EQUAL(ids[0], e.jobid);
        free(ids[0]);
        free(ids);
    }
    /* an acknowledged entry is gone: nothing more to take */
    CU_ASSERT_EQUAL(pa_job_next(redis, "B", 100, 0, &e, &err), 0);
    pa_job_free(job);
}

static void test_cancel_races(void)
{
    pa_job_entry e;
    pa_job *job, *got = NULL;
    long attempts = 0;
    int rc;
    pa_err err;

    reset();
    job = submit(OWNER, 5, &rc);
    CU_ASSERT_EQUAL(pa_job_next(redis, "A", 100, 60000, &e, &err), 1);
    CU_ASSERT_EQUAL(pa_job_begin(redis, e.jobid, NULL, "A", pa_now_ms(), &attempts, &err), 1);
    CU_ASSERT_EQUAL(pa_job_cancel(redis, db, e.jobid, "someone-else", 1000, &err), PA_ENOTFOUND);
    CU_ASSERT_EQUAL(pa_job_cancel(redis, db, e.jobid, OWNER, 1000, &err), PA_OK);
    CU_ASSERT_EQUAL(pa_job_cancel(redis, db, e.jobid, OWNER, 1000, &err), PA_ENOTFOUND);
    /* the runner learns it at its next step and can no longer complete */
    CU_ASSERT_EQUAL(pa_job_checkpoint(redis, e.jobid, NULL, "A", 1, 2, "{}", &err), PA_ECANCELLED);
    CU_ASSERT_EQUAL(pa_job_complete(redis, e.jobid, NULL, "A", "{}", pa_now_ms(), 1000, &err), PA_ECANCELLED);
    CU_ASSERT_EQUAL_FATAL(pa_job_get(redis, e.jobid, &got, &err), PA_OK);
    CU_ASSERT_STRING_EQUAL(got->state, "cancelled");
    pa_job_free(got);
    /* a cancelled job is never begun again */
    CU_ASSERT_EQUAL(pa_job_begin(redis, e.jobid, NULL, "B", pa_now_ms(), &attempts, &err), 0);
    pa_job_free(job);
}

static void test_takeover(void)
{
    pa_job_entry e, e2;
    pa_job *job;
    long attempts = 0;
    int rc;
    pa_err err;

    reset();
    job = submit(OWNER, 5, &rc);
    CU_ASSERT_EQUAL(pa_job_next(redis, "A", 100, 60000, &e, &err), 1);
    CU_ASSERT_EQUAL(pa_job_begin(redis, e.jobid, NULL, "A", pa_now_ms(), &attempts, &err), 1);
    /* B does not take a job A is still working on ... */
    CU_ASSERT_EQUAL(pa_job_next(redis, "B", 100, 60000, &e2, &err), 0);
    /* ... until A is silent longer than the idle time (here: 0) */
    CU_ASSERT_EQUAL(pa_job_next(redis, "B", 100, 0, &e2, &err), 1);
    CU_ASSERT_STRING_EQUAL(e2.msgid, e.msgid);
    CU_ASSERT_EQUAL(pa_job_begin(redis, e.jobid, NULL, "B", pa_now_ms(), &attempts, &err), 1);
    CU_ASSERT_EQUAL(attempts, 2);
    /* the stalled A may no longer write progress or finish */
    CU_ASSERT_EQUAL(pa_job_checkpoint(redis, e.jobid, NULL, "A", 1, 2, "{}", &err), PA_ESTATE);
    CU_ASSERT_EQUAL(pa_job_complete(redis, e.jobid, NULL, "A", "{}", pa_now_ms(), 1000, &err), PA_ESTATE);
    CU_ASSERT_EQUAL(pa_job_checkpoint(redis, e.jobid, NULL, "B", 1, 2, "{}", &err), PA_OK);
    CU_ASSERT_EQUAL(pa_job_complete(redis, e.jobid, NULL, "B", "{}", pa_now_ms(), 1000, &err), PA_OK);
    pa_job_free(job);
}

static void test_release(void)
{
    pa_job_entry e;
    pa_job *job;
    int rc;
    pa_err err;

    reset();
    job = submit(OWNER, 5, &rc);
    CU_ASSERT_EQUAL(pa_job_next(redis, "A", 100, 60000, &e, &err), 1);
    CU_ASSERT_EQUAL(pa_job_heartbeat(redis, "A", &e, &err), PA_OK);
    CU_ASSERT_EQUAL(pa_job_next(redis, "B", 100, 60000, &e, &err), 0);
    /* and A is not handed its own pending entry again as a new one */
    CU_ASSERT_EQUAL(pa_job_next(redis, "A", 100, 60000, &e, &err), 0);
    pa_job_free(job);
}

static void test_release_hands_over(void)
{
    pa_job_entry e, e2;
    pa_job *job;
    int rc;
    pa_err err;

    reset();
    job = submit(OWNER, 5, &rc);
    CU_ASSERT_EQUAL(pa_job_next(redis, "A", 100, 60000, &e, &err), 1);
    CU_ASSERT_EQUAL(pa_job_release(redis, "A", &e, 60000, &err), PA_OK);
    CU_ASSERT_EQUAL(pa_job_next(redis, "B", 100, 60000, &e2, &err), 1);
    CU_ASSERT_STRING_EQUAL(e2.msgid, e.msgid);
    CU_ASSERT_STRING_EQUAL(e.jobid, job->id);
    pa_job_free(job);
}

static void test_lost_and_recovered(void)
{
    char key[256];
    pa_job_entry e;
    pa_job *job, *got = NULL;
    long attempts = 0, recovered = 0;
    const char *values[1];
    redisReply *reply;
    PGresult *res;
    int rc;
    pa_err err;

    reset();
    job = submit(OWNER, 5, &rc);
    CU_ASSERT_EQUAL(pa_job_next(redis, "A", 100, 60000, &e, &err), 1);
    CU_ASSERT_EQUAL(pa_job_begin(redis, e.jobid, NULL, "A", pa_now_ms(), &attempts, &err), 1);
    CU_ASSERT_EQUAL(pa_job_ack(redis, &e, &err), PA_OK);
    reply = pa_redis_cmd(redis, &err, "DEL %s", pa_redis_key(redis, key, sizeof(key), "job:%s", e.jobid));
    freeReplyObject(reply);
    CU_ASSERT_EQUAL(pa_job_checkpoint(redis, e.jobid, NULL, "A", 1, 2, "{}", &err), PA_ENOTFOUND);
    /* too recent to recover: the responder may be enqueuing it right now */
    CU_ASSERT_EQUAL(pa_job_recover(redis, db, &recovered, &err), PA_OK);
    CU_ASSERT_EQUAL(recovered, 0);
    values[0] = e.jobid;
    res = pa_db_query(db, &err, "UPDATE job SET created_at = now() - interval '1 minute' WHERE id = $1", 1, values);
    PQclear(res);
    CU_ASSERT_EQUAL(pa_job_recover(redis, db, &recovered, &err), PA_OK);
    CU_ASSERT_EQUAL(recovered, 1);
    CU_ASSERT_EQUAL(pa_job_recover(redis, db, &recovered, &err), PA_OK);
    CU_ASSERT_EQUAL(recovered, 0);
    CU_ASSERT_EQUAL_FATAL(pa_job_get(redis, e.jobid, &got, &err), PA_OK);
    CU_ASSERT_STRING_EQUAL(got->state, "queued");
    CU_ASSERT_EQUAL(got->ttime, job->ttime);
    pa_job_free(got);
    CU_ASSERT_EQUAL(pa_job_next(redis, "B", 100, 60000, &e, &err), 1);
    CU_ASSERT_STRING_EQUAL(e.jobid, job->id);
    pa_job_free(job);
}

static void test_prune_consumers(void)
{
    pa_job_entry e;
    pa_job *job, *other;
    long pruned = 0;
    int rc;
    pa_err err;

    reset();
    job = submit(OWNER, 5, &rc);
    other = submit(OWNER, 5, &rc);
    /* A holds an entry; B finished its own and holds nothing */
    CU_ASSERT_EQUAL(pa_job_next(redis, "A", 100, 60000, &e, &err), 1);
    CU_ASSERT_EQUAL(pa_job_next(redis, "B", 100, 60000, &e, &err), 1);
    CU_ASSERT_STRING_EQUAL(e.jobid, other->id);
    CU_ASSERT_EQUAL(pa_job_ack(redis, &e, &err), PA_OK);
    CU_ASSERT_EQUAL(pa_job_prune_consumers(redis, 3600000, &pruned, &err), PA_OK);
    CU_ASSERT_EQUAL(pruned, 0);
    CU_ASSERT_EQUAL(pa_job_prune_consumers(redis, 0, &pruned, &err), PA_OK);
    CU_ASSERT_EQUAL(pruned, 1);
    /* A keeps its entry: a departed worker's job is never lost */
    CU_ASSERT_EQUAL(pa_job_next(redis, "C", 100, 0, &e, &err), 1);
    CU_ASSERT_STRING_EQUAL(e.jobid, job->id);
    pa_job_free(job);
    pa_job_free(other);
}

/* A split job: its parts are worked on by any runner, each fenced and
 * counted once; a new job goes before waiting parts; the last part queues the
 * last step, which completes the job. */
static void test_parts(void)
{
    pa_job_entry e, p1, p2, p3, f;
    pa_job *job, *small, *got = NULL;
    long attempts = 0;
    char *cp = NULL;
    int rc;
    pa_err err;

    reset();
    job = submit(OWNER, 5, &rc);
    CU_ASSERT_EQUAL_FATAL(pa_job_next(redis, "A", 100, 60000, &e, &err), 1);
    CU_ASSERT_STRING_EQUAL(e.part, "");
    CU_ASSERT_STRING_EQUAL(e.stream, PA_JOB_STREAM);
    CU_ASSERT_EQUAL(pa_job_begin(redis, e.jobid, NULL, "A", pa_now_ms(), &attempts, &err), 1);
    /* no part of a job not split (an entry left by a lost job) is begun */
    CU_ASSERT_EQUAL(pa_job_begin(redis, e.jobid, "1", "Z", pa_now_ms(), &attempts, &err), 0);
    /* only the job's runner splits it */
    CU_ASSERT_EQUAL(pa_job_split(redis, &e, "Z", 3, "{\"parts\":[\"m1\",\"m2\"]}", &err), PA_ESTATE);
    CU_ASSERT_EQUAL(pa_job_split(redis, &e, "A", 3, "{\"parts\":[\"m1\",\"m2\"]}", &err), PA_OK);
    CU_ASSERT_EQUAL_FATAL(pa_job_get(redis, job->id, &got, &err), PA_OK);
    CU_ASSERT_EQUAL(got->done, 0);
    CU_ASSERT_EQUAL(got->total, 4);
    CU_ASSERT_STRING_EQUAL(got->checkpoint, "{\"parts\":[\"m1\",\"m2\"]}");
    pa_job_free(got);
    /* nor a part it was not split into, nor its last step before every part is done */
    CU_ASSERT_EQUAL(pa_job_begin(redis, e.jobid, "4", "Z", pa_now_ms(), &attempts, &err), 0);
    CU_ASSERT_EQUAL(pa_job_begin(redis, e.jobid, PA_PART_FINISH, "Z", pa_now_ms(), &attempts, &err), 0);
    /* the parts, in order, to any runner */
    CU_ASSERT_EQUAL_FATAL(pa_job_next(redis, "B", 100, 60000, &p1, &err), 1);
    CU_ASSERT_STRING_EQUAL(p1.stream, PA_PART_STREAM);
    CU_ASSERT_STRING_EQUAL(p1.part, "1");
    CU_ASSERT_EQUAL(pa_job_begin(redis, p1.jobid, p1.part, "B", pa_now_ms(), &attempts, &err), 1);
    CU_ASSERT_EQUAL(attempts, 1);
    /* a job submitted now goes before the parts still waiting */
    small = submit(OWNER, 5, &rc);
    CU_ASSERT_EQUAL_FATAL(pa_job_next(redis, "C", 100, 60000, &e, &err), 1);
    CU_ASSERT_STRING_EQUAL(e.jobid, small->id);
    CU_ASSERT_STRING_EQUAL(e.part, "");
    CU_ASSERT_EQUAL(pa_job_ack(redis, &e, &err), PA_OK);
    CU_ASSERT_EQUAL_FATAL(pa_job_next(redis, "C", 100, 60000, &p2, &err), 1);
    CU_ASSERT_STRING_EQUAL(p2.part, "2");
    CU_ASSERT_EQUAL(pa_job_begin(redis, p2.jobid, p2.part, "C", pa_now_ms(), &attempts, &err), 1);
    /* a part's checkpoint is its own, and leaves the job's alone */
    CU_ASSERT_EQUAL(pa_job_checkpoint(redis, p1.jobid, p1.part, "B", 7, 9, "{\"after\":\"x\"}", &err), PA_OK);
    CU_ASSERT_EQUAL(pa_job_checkpoint(redis, p1.jobid, p1.part, "C", 7, 9, "{}", &err), PA_ESTATE);
    CU_ASSERT_EQUAL(pa_job_part_field(redis, p1.jobid, p1.part, "cp", &cp, &err), PA_OK);
    CU_ASSERT_STRING_EQUAL(cp ? cp : "", "{\"after\":\"x\"}");
    free(cp);
    CU_ASSERT_EQUAL_FATAL(pa_job_get(redis, job->id, &got, &err), PA_OK);
    CU_ASSERT_STRING_EQUAL(got->checkpoint, "{\"parts\":[\"m1\",\"m2\"]}");
    CU_ASSERT_EQUAL(got->done, 0);
    pa_job_free(got);
    /* only its runner completes a part, and a part counts once */
    CU_ASSERT_EQUAL(pa_job_part_done(redis, &p1, "C", "[1]", &err), PA_ESTATE);
    CU_ASSERT_EQUAL(pa_job_part_done(redis, &p1, "B", "[1]", &err), PA_OK);
    CU_ASSERT_EQUAL(pa_job_part_done(redis, &p1, "B", "[9]", &err), PA_OK);
    CU_ASSERT_EQUAL(pa_job_part_field(redis, p1.jobid, p1.part, "out", &cp, &err), PA_OK);
    CU_ASSERT_STRING_EQUAL(cp ? cp : "", "[1]");
    free(cp);
    CU_ASSERT_EQUAL(pa_job_part_field(redis, p1.jobid, p1.part, "cp", &cp, &err), PA_OK);
    CU_ASSERT_PTR_NULL(cp);
    free(cp);
    /* a done part is never begun again */
    CU_ASSERT_EQUAL(pa_job_begin(redis, p1.jobid, p1.part, "D", pa_now_ms(), &attempts, &err), 0);
    CU_ASSERT_EQUAL(pa_job_part_done(redis, &p2, "C", "[2]", &err), PA_OK);
    CU_ASSERT_EQUAL_FATAL(pa_job_get(redis, job->id, &got, &err), PA_OK);
    CU_ASSERT_EQUAL(got->done, 2);
    pa_job_free(got);
    /* the last step is queued only after the last part */
    CU_ASSERT_EQUAL_FATAL(pa_job_next(redis, "D", 100, 60000, &p3, &err), 1);
    CU_ASSERT_STRING_EQUAL(p3.part, "3");
    CU_ASSERT_EQUAL(pa_job_next(redis, "E", 100, 60000, &f, &err), 0);
    CU_ASSERT_EQUAL(pa_job_begin(redis, p3.jobid, p3.part, "D", pa_now_ms(), &attempts, &err), 1);
    CU_ASSERT_EQUAL(pa_job_part_done(redis, &p3, "D", "[3]", &err), PA_OK);
    CU_ASSERT_EQUAL_FATAL(pa_job_next(redis, "E", 100, 60000, &f, &err), 1);
    CU_ASSERT_STRING_EQUAL(f.stream, PA_JOB_STREAM);
    CU_ASSERT_STRING_EQUAL(f.part, PA_PART_FINISH);
    CU_ASSERT_EQUAL(pa_job_begin(redis, f.jobid, f.part, "E", pa_now_ms(), &attempts, &err), 1);
    /* the job's runner was A; its last step's is E */
    CU_ASSERT_EQUAL(pa_job_complete(redis, f.jobid, f.part, "A", "{}", pa_now_ms(), 1000, &err), PA_ESTATE);
    CU_ASSERT_EQUAL(pa_job_complete(redis, f.jobid, f.part, "E", "{}", pa_now_ms(), 1000, &err), PA_OK);
    CU_ASSERT_EQUAL(pa_job_ack(redis, &f, &err), PA_OK);
    CU_ASSERT_EQUAL(pa_job_next(redis, "E", 100, 60000, &f, &err), 0);
    pa_job_free(job);
    pa_job_free(small);
}

/* One failing part fails the job: the others stop at their next step, and
 * the parts not begun are only acknowledged. */
static void test_part_fails(void)
{
    pa_job_entry e, p1, p2;
    pa_job *job, *got = NULL;
    long attempts = 0;
    int rc;
    pa_err err;

    reset();
    job = submit(OWNER, 5, &rc);
    CU_ASSERT_EQUAL_FATAL(pa_job_next(redis, "A", 100, 60000, &e, &err), 1);
    CU_ASSERT_EQUAL(pa_job_begin(redis, e.jobid, NULL, "A", pa_now_ms(), &attempts, &err), 1);
    CU_ASSERT_EQUAL(pa_job_split(redis, &e, "A", 3, "{\"parts\":[\"a\",\"b\"]}", &err), PA_OK);
    CU_ASSERT_EQUAL_FATAL(pa_job_next(redis, "B", 100, 60000, &p1, &err), 1);
    CU_ASSERT_EQUAL_FATAL(pa_job_next(redis, "C", 100, 60000, &p2, &err), 1);
    CU_ASSERT_EQUAL(pa_job_begin(redis, p1.jobid, p1.part, "B", pa_now_ms(), &attempts, &err), 1);
    CU_ASSERT_EQUAL(pa_job_begin(redis, p2.jobid, p2.part, "C", pa_now_ms(), &attempts, &err), 1);
    CU_ASSERT_EQUAL(pa_job_fail(redis, p1.jobid, p1.part, "C", "no", pa_now_ms(), 1000, &err), PA_ESTATE);
    CU_ASSERT_EQUAL(pa_job_fail(redis, p1.jobid, p1.part, "B", "no", pa_now_ms(), 1000, &err), PA_OK);
    CU_ASSERT_EQUAL_FATAL(pa_job_get(redis, job->id, &got, &err), PA_OK);
    CU_ASSERT_STRING_EQUAL(got->state, "failed");
    pa_job_free(got);
    CU_ASSERT_EQUAL(pa_job_checkpoint(redis, p2.jobid, p2.part, "C", 0, 0, "{}", &err), PA_ECANCELLED);
    CU_ASSERT_EQUAL(pa_job_part_done(redis, &p2, "C", "[]", &err), PA_ECANCELLED);
    CU_ASSERT_EQUAL_FATAL(pa_job_next(redis, "D", 100, 60000, &e, &err), 1);
    CU_ASSERT_STRING_EQUAL(e.part, "3");
    CU_ASSERT_EQUAL(pa_job_begin(redis, e.jobid, e.part, "D", pa_now_ms(), &attempts, &err), 0);
    pa_job_free(job);
}

/* queues an audit event with this request id */
static int queue_event(const char *request_id, const char *at)
{
    pa_audit_event e;
    pa_err err;

    memset(&e, 0, sizeof(e));
    pa_strlcpy(e.at, at, sizeof(e.at));
    e.request_id = request_id;
    e.method = "GET";
    e.endpoint = "/metadata";
    e.outcome = "success";
    e.members = -1;
    e.status = 200;
    return pa_audit_queue(redis, &e, &err);
}

static long stored(const char *like)
{
    const char *values[1] = { like };
    PGresult *res = pa_db_query(db, NULL, "SELECT count(*) FROM audit_event WHERE request_id LIKE $1", 1, values);
    long n = res ? strtol(PQgetvalue(res, 0, 0), NULL, 10) : -1;

    PQclear(res);
    return n;
}

static long long stream_len(void)
{
    redisReply *reply = pa_redis_cmd(redis, NULL, "XLEN pa-test:audit");
    long long n = reply && reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;

    if(reply)
        freeReplyObject(reply);
    return n;
}

static void test_audit_drain(void)
{
    char id[32];
    pa_err err;
    int i;

    reset();
    for(i = 0; i < 3; i++) {
        snprintf(id, sizeof(id), "jobmodel-a%d", i);
        CU_ASSERT_EQUAL(queue_event(id, "2026-11-01T10:00:00.000Z"), PA_OK);
    }
    CU_ASSERT_EQUAL(pa_audit_drain(redis, db, "A", 2, 10, 30000, &err), 3);
    CU_ASSERT_EQUAL(stored("jobmodel-a%"), 3);
    CU_ASSERT_EQUAL(stream_len(), 0);
    CU_ASSERT_EQUAL(pa_audit_drain(redis, db, "A", 2, 10, 30000, &err), 0);
    /* the same event twice (a drainer died between storing and acknowledging) */
    CU_ASSERT_EQUAL(queue_event("jobmodel-twice", "2026-11-01T10:00:01.000Z"), PA_OK);
    CU_ASSERT_EQUAL(queue_event("jobmodel-twice", "2026-11-01T10:00:01.000Z"), PA_OK);
    CU_ASSERT_EQUAL(pa_audit_drain(redis, db, "A", 100, 10, 30000, &err), 2);
    CU_ASSERT_EQUAL(stored("jobmodel-twice"), 1);
}

static void test_audit_takeover(void)
{
    redisReply *reply;
    long pruned = -1;
    pa_err err;

    reset();
    CU_ASSERT_EQUAL(queue_event("jobmodel-t1", "2026-11-01T10:00:02.000Z"), PA_OK);
    CU_ASSERT_EQUAL(pa_audit_drain(redis, db, "A", 100, 10, 30000, &err), 1);
    CU_ASSERT_EQUAL(queue_event("jobmodel-t2", "2026-11-01T10:00:03.000Z"), PA_OK);
    CU_ASSERT_EQUAL(queue_event("jobmodel-t3", "2026-11-01T10:00:04.000Z"), PA_OK);
    /* a drainer reads two events and dies before storing them */
    reply = pa_redis_cmd(redis, NULL, "XREADGROUP GROUP store dead COUNT 10 STREAMS pa-test:audit >");
    CU_ASSERT_PTR_NOT_NULL(reply);
    if(reply)
        freeReplyObject(reply);
    CU_ASSERT_EQUAL(pa_audit_drain(redis, db, "B", 100, 10, 60000, &err), 0);
    CU_ASSERT_EQUAL(stored("jobmodel-t_"), 1);
    /* once they are stale, another drainer stores them */
    CU_ASSERT_EQUAL(pa_audit_drain(redis, db, "B", 100, 10, 0, &err), 2);
    CU_ASSERT_EQUAL(stored("jobmodel-t_"), 3);
    CU_ASSERT_EQUAL(stream_len(), 0);
    /* drainers holding nothing are forgotten */
    CU_ASSERT_EQUAL(pa_audit_prune_drainers(redis, 0, &pruned, &err), PA_OK);
    printf("PRUNED %ld\n", pruned);
    CU_ASSERT_EQUAL(pruned, 3);
}

static void test_pipeline(void)
{
    const char *a[2] = { "HGETALL", "pa-test:h" }, *b[2] = { "HGETALL", "pa-test:none" },
               *c[2] = { "HGETALL", "pa-test:s" };
    const char *const *ok[2] = { a, b }, *const * bad[3] = { a, c, b };
    const int argcs[3] = { 2, 2, 2 };
    redisReply *replies[3] = { NULL, NULL, NULL };
    redisReply *r;
    pa_err err;

    reset();
    r = pa_redis_cmd(redis, NULL, "HSET pa-test:h f v");
    if(r)
        freeReplyObject(r);
    r = pa_redis_cmd(redis, NULL, "SET pa-test:s x");
    if(r)
        freeReplyObject(r);
    CU_ASSERT_EQUAL_FATAL(pa_redis_pipeline(redis, 2, argcs, ok, replies, &err), PA_OK);
    CU_ASSERT_EQUAL(replies[0]->elements, 2);
    CU_ASSERT_STRING_EQUAL(replies[0]->element[1]->str, "v");
    CU_ASSERT_EQUAL(replies[1]->elements, 0);
    freeReplyObject(replies[0]);
    freeReplyObject(replies[1]);
    /* one error reply fails the whole pipeline, and keeps no reply */
    CU_ASSERT_EQUAL(pa_redis_pipeline(redis, 3, argcs, bad, replies, &err), PA_EREDIS);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "WRONGTYPE"));
    CU_ASSERT_PTR_NULL(replies[0]);
    CU_ASSERT_PTR_NULL(replies[1]);
    CU_ASSERT_PTR_NULL(replies[2]);
    /* the connection is still good */
    CU_ASSERT_EQUAL(pa_redis_pipeline(redis, 2, argcs, ok, replies, &err), PA_OK);
    freeReplyObject(replies[0]);
    freeReplyObject(replies[1]);
}

int main(int argc, char **argv)
{
    static const struct cu_test tests[] = {
        { "submit, read and the per-client cap", test_submit_and_cap },
        { "claim, checkpoint, complete, purge time", test_lifecycle },
        { "cancel against a running job", test_cancel_races },
        { "a silent runner is taken over and fenced off", test_takeover },
        { "heartbeat keeps a job", test_release },
        { "release hands a job on at once", test_release_hands_over },
        { "a job lost from Redis is recovered", test_lost_and_recovered },
        { "departed workers holding nothing are forgotten", test_prune_consumers },
        { "a split job's parts, fenced, counted once, after new jobs", test_parts },
        { "a failing part fails the job and stops the others", test_part_fails },
        { "audit events are stored once, in batches", test_audit_drain },
        { "an audit drainer that died is taken over", test_audit_takeover },
        { "commands pipelined in one round trip", test_pipeline },
        { NULL, NULL },
    };
    pa_err err;
    int rc;

    if(argc != 2 || pa_config_load(argv[1], &cfg, &err)) {
        fprintf(stderr, "usage: pa-test-jobs CONFIG (%s)\n", argc == 2 ? err.msg : "");
        return 99;
    }
    free(cfg->redis_prefix);
    cfg->redis_prefix = strdup("pa-test:");
    if(pa_redis_open(cfg, &redis, &err) || pa_db_connect(cfg, &db, &err)) {
        fprintf(stderr, "pa-test-jobs: %s\n", err.msg);
        return 99;
    }
    rc = cu_run("jobs", tests);
    reset();
    pa_redis_free(redis);
    PQfinish(db);
    pa_config_free(cfg);
    return rc;
}
