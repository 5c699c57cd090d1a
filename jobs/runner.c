/*
 * pa-runner: the long-running job runner.  The supervisor process checks
 * the configuration, the schema and Redis, forks --workers worker processes
 * (restarting any that die), and runs the janitor: purging expired or
 * cancelled jobs' files and keys, and re-enqueueing jobs PostgreSQL has but
 * a restarted Redis lost.
 *
 * SIGTERM/SIGINT: workers finish their current chunk, hand the job back and
 * exit; the supervisor waits for them.  SIGHUP: every process reopens the
 * log file (the supervisor passes it on to its workers).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pa_audit.h"
#include "pa_buf.h"
#include "pa_db.h"
#include "pa_jobfiles.h"
#include "pa_log.h"
#include "pa_util.h"
#include "kinds.h"
#include "worker.h"

#define MAX_WORKERS 256
#define JANITOR_EVERY_MS 5000
#define STOP_GRACE_MS 30000
#define CONSUMER_GONE_MS (3600 * 1000L)
#define AUDIT_STALE_MS 30000

static volatile sig_atomic_t stop_flag;
static volatile sig_atomic_t reopen_flag;

static void on_stop(int sig)
{
    (void)sig;
    stop_flag = 1;
}

/* The supervisor reopens its log and passes the signal on to its workers;
 * a worker (which inherits this handler) reopens its own at its next line. */
static void on_hup(int sig)
{
    (void)sig;
    reopen_flag = 1;
    pa_log_reopen_later();
}

static void usage(FILE *f)
{
    fprintf(f, "usage: pa-runner [--config FILE] [--workers N] [--daemon] [--pidfile FILE] [--allow-root]\n"
               "  --config FILE   configuration (default: $PA_CONFIG or " PA_CONFIG_DEFAULT_PATH ")\n"
               "  --workers N     worker processes (default: runner_workers from the config)\n"
               "  --daemon        detach from the terminal (log to log_file)\n"
               "  --pidfile FILE  write the supervisor's pid here\n"
               "  --allow-root    run as root (its job files must still be readable by Apache's user)\n");
}

static void on_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    /* a log rotation must not interrupt a job: what it interrupts goes on */
    sa.sa_handler = on_hup;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* a file size limit (ulimit -f) fails the write with EFBIG, which fails
     * the job loudly, instead of killing the worker */
    signal(SIGXFSZ, SIG_IGN);
}

/* The daemon's end of the pipe its first parent waits on, or -1. */
static int ready_fd = -1;

/* The first parent waits until the daemon has written its pid file (or
 * failed), so that whoever started it finds the pid file as soon as it
 * returns, and a runner that could not start exits non-zero. */
static void wait_for_daemon(int fd, const char *log_file)
{
    char c = 1;
    ssize_t n;

    do
        n = read(fd, &c, 1);
    while(n < 0 && errno == EINTR);
    if(n == 1 && c == 0)
        _exit(0);
    fprintf(stderr, "pa-runner: the daemon did not start; see %s\n", log_file);
    _exit(1);
}

/* Tells the waiting first parent the daemon started; a daemon that ends
 * before this closes the pipe, which tells it the daemon did not. */
static void daemon_ready(void)
{
    char c = 0;

    if(ready_fd < 0)
        return;
    if(write(ready_fd, &c, 1) != 1)
        pa_warn("cannot tell the starting shell the runner started: %s", strerror(errno));
    close(ready_fd);
    ready_fd = -1;
}

static int daemonize(const char *log_file)
{
    int ready[2];
    pid_t pid;
    int fd;

    if(pipe(ready))
        return -1;
    pid = fork();
    if(pid < 0)
        return -1;
    if(pid > 0) {
        close(ready[1]);
        wait_for_daemon(ready[0], log_file);
    }
    close(ready[0]);
    ready_fd = ready[1];
    if(setsid() < 0)
        return -1;
    pid = fork();
    if(pid < 0)
        return -1;
    if(pid > 0)
        _exit(0);
    if(chdir("/"))
        return -1;
    fd = open("/dev/null", O_RDWR);
    if(fd < 0)
        return -1;
    dup2(fd, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    if(fd > 2)
        close(fd);
    return 0;
}

/* Whether pid is a live pa-runner: not gone, not a zombie nobody reaped
 * (a runner killed with -9 under an init that does not reap), and not
 * another program that was given the pid since. */
static int runner_alive(long pid)
{
    char path[64], stat[256], *close_paren;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    f = fopen(path, "r");
    if(!f)
        return !kill((pid_t)pid, 0) || errno == EPERM; /* no /proc: the pid's existence */
    n = fread(stat, 1, sizeof(stat) - 1, f);
    fclose(f);
    stat[n] = '\0';
    close_paren = strrchr(stat, ')');
    return close_paren && close_paren[1] == ' ' && close_paren[2] != 'Z' && close_paren[2] != 'X' &&
           strstr(stat, "(pa-runner)") != NULL;
}

/* The live runner a pid file names (not this one), or 0. */
static pid_t pidfile_owner(const char *path)
{
    FILE *f = fopen(path, "r");
    long pid = 0;

    if(f && fscanf(f, "%ld", &pid) != 1)
        pid = 0;
    if(f)
        fclose(f);
    if(pid <= 0 || pid == (long)getpid() || !runner_alive(pid))
        return 0;
    return (pid_t)pid;
}

static int write_pidfile(const char *path)
{
    FILE *f = fopen(path, "w");

    if(!f)
        return -1;
    fprintf(f, "%d\n", (int)getpid());
    return fclose(f);
}

static pid_t spawn(const pa_config *cfg, int index)
{
    pid_t parent = getpid();
    pid_t pid = fork();

    if(pid == 0) {
        int rc;

        /* A worker never outlives its supervisor: killed (even with -9), it
         * takes its workers with it, each handing its job back at its next
         * checkpoint as on SIGTERM.  The check after the prctl covers a
         * supervisor that died before it took effect. */
        if(prctl(PR_SET_PDEATHSIG, SIGTERM) || getppid() != parent)
            _exit(0);
        rc = worker_main(cfg, index, &stop_flag);

        pa_log_close();
        _exit(rc);
    }
    if(pid < 0)
        pa_error("cannot fork worker %d: %s", index, strerror(errno));
    return pid;
}

/*
 * What is on disk against PostgreSQL, whatever Redis knows (a Redis that
 * restarted empty has no `due` entries).  A job folder is removed when its
 * job is gone, cancelled, failed or expired, or finished longer ago than the
 * retention; a job expired that way is marked so and forgotten by Redis.  A
 * kept request (data_dir/requests) is removed once its job is no longer
 * queued or running.
 */
static void purge_files(const pa_config *cfg, pa_redis *redis, PGconn *db)
{
    char retention[24];
    const char *values[2];
    pa_buf ids;
    PGresult *res = NULL;
    pa_err err;
    int i, n;

    pa_buf_init(&ids, 1 << 20);
    snprintf(retention, sizeof(retention), "%ld", cfg->retention_seconds);
    values[1] = retention;
    n = pa_jobfiles_list(cfg, "jobs", &ids);
    values[0] = pa_buf_str(&ids);
    if(n)
        res = pa_db_query(db, &err,
                          "SELECT d, j.state IN ('completed', 'failed') FROM unnest($1::text[]) d"
                          " LEFT JOIN job j ON j.id = d WHERE j.id IS NULL"
                          " OR j.state IN ('cancelled', 'expired', 'failed')"
                          " OR (j.state = 'completed' AND j.finished_at + $2::int * interval '1 second' < now())",
                          2, values);
    for(i = 0; res && i < PQntuples(res); i++) {
        const char *id = PQgetvalue(res, i, 0);
        const char *one[1] = { id };

        if(pa_jobfiles_remove(cfg, id)) {
            pa_warn("janitor: cannot remove the files of job %s", id);
            continue;
        }
        pa_info("janitor: job %s purged (its files were left on disk)", id);
        if(!strcmp(PQgetvalue(res, i, 1), "t")) {
            PQclear(pa_db_query(db, &err,
                                "UPDATE job SET state = 'expired', updated_at = now() WHERE id = $1"
                                " AND state IN ('completed', 'failed')",
                                1, one));
            pa_job_forget(redis, id, &err);
        }
    }
    PQclear(res);
    res = NULL;
    pa_buf_reset(&ids);
    /* (a request with no job row yet is one a responder is about to queue) */
    n = pa_jobfiles_list(cfg, "requests", &ids);
    values[0] = pa_buf_str(&ids);
    if(n)
        res = pa_db_query(db, &err,
                          "SELECT d FROM unnest($1::text[]) d JOIN job j ON j.id = d"
                          " WHERE j.state NOT IN ('queued', 'running')",
                          1, values);
    for(i = 0; res && i < PQntuples(res); i++)
        pa_jobfiles_drop_request(cfg, PQgetvalue(res, i, 0));
    PQclear(res);
    pa_buf_free(&ids);
}

/* One janitor pass: purge what is due, recover what Redis lost. */
static void janitor(const pa_config *cfg, pa_redis *redis, PGconn **db)
{
    char **ids = NULL;
    size_t n = 0;
    size_t i;
    long recovered = 0;
    pa_err err;

    pa_err_clear(&err);
    if(pa_job_due(redis, pa_now_ms(), 100, &ids, &n, &err)) {
        pa_warn("janitor: %s", err.msg);
        return;
    }
    for(i = 0; i < n; i++) {
        if(pa_jobfiles_remove(cfg, ids[i]))
            pa_warn("janitor: cannot remove the files of job %s", ids[i]);
        else if(pa_job_forget(redis, ids[i], &err) == PA_OK)
            pa_info("janitor: job %s purged", ids[i]);
        if(!pa_db_ensure(db, cfg, &err)) {
            const char *values[1] = { ids[i] };
            PGresult *res = pa_db_query(*db, &err,
                                        "UPDATE job SET state = 'expired', updated_at = now() "
                                        "WHERE id = $1 AND state IN ('completed', 'failed')",
                                        1, values);
            PQclear(res);
            /* normally gone when the job ended; a worker that died may have left them */
            job_kinds_end(*db, ids[i], "expired", &err);
        }
        free(ids[i]);
    }
    free(ids);
    if(!pa_db_ensure(db, cfg, &err))
        purge_files(cfg, redis, *db);
    if(!pa_db_ensure(db, cfg, &err) && !pa_job_recover(redis, *db, &recovered, &err) && recovered)
        pa_warn("janitor: %ld jobs were missing from Redis and are queued again", recovered);
    if(!pa_job_prune_consumers(redis, CONSUMER_GONE_MS, &recovered, &err) && recovered)
        pa_info("janitor: forgot %ld departed workers", recovered);
    if(!pa_audit_prune_drainers(redis, CONSUMER_GONE_MS, &recovered, &err) && recovered)
        pa_info("janitor: forgot %ld departed audit drainers", recovered);
}

/* Moves the queued audit events into PostgreSQL; says so once when it
 * cannot, and once when it can again. */
static void store_audit(const pa_config *cfg, pa_redis *redis, PGconn **db, const char *consumer)
{
    static int failing;
    pa_err err;
    long n;

    pa_err_clear(&err);
    n = pa_db_ensure(db, cfg, &err) ? -1 : pa_audit_drain(redis, *db, consumer, 1000, 20, AUDIT_STALE_MS, &err);
    if(n < 0 && !failing)
        pa_warn("audit events stay queued in Redis: %s", err.msg);
    else if(n >= 0 && failing)
        pa_info("audit events are stored again");
    failing = n < 0;
}

/* How long a starting runner waits for a restarted Redis to read its data. */
#define REDIS_LOADING_WAIT_MS (300 * 1000)

static void say_redis_loading(void)
{
    fprintf(stderr, "pa-runner: Redis is loading its data; waiting (at most %d s)\n", REDIS_LOADING_WAIT_MS / 1000);
    pa_info("Redis is loading its data; waiting (at most %d s)", REDIS_LOADING_WAIT_MS / 1000);
}

/* Checks that the runner can work at all before it forks anything. */
static int preflight(const pa_config *cfg, pa_err *err)
{
    PGconn *db = NULL;
    pa_redis *redis = NULL;
    int rc = pa_db_connect(cfg, &db, err);

    if(!rc)
        rc = pa_db_check_schema(db, err);
    if(!rc)
        rc = pa_redis_open(cfg, &redis, err);
    if(!rc)
        rc = pa_redis_wait_loaded(redis, REDIS_LOADING_WAIT_MS, say_redis_loading, err);
    if(!rc)
        rc = pa_job_queue_init(redis, err);
    if(!rc && mkdir(cfg->data_dir, 0750) && errno != EEXIST)
        rc = pa_err_set(err, PA_EIO, "cannot create data_dir %s: %s", cfg->data_dir, strerror(errno));
    if(!rc) {
        char jobs[1024];

        snprintf(jobs, sizeof(jobs), "%s/jobs", cfg->data_dir);
        if(mkdir(jobs, 0750) && errno != EEXIST)
            rc = pa_err_set(err, PA_EIO, "cannot create %s: %s", jobs, strerror(errno));
    }
    if(db)
        PQfinish(db);
    pa_redis_free(redis);
    return rc;
}

/* The command line. */
struct options {
    const char *config;
    const char *pidfile; /* absolute once start() made it so */
    char pidpath[4096 + 256];
    long workers; /* 0: runner_workers */
    int daemon_mode;
    int allow_root;
};

/* Reads the command line into o: -1 to go on, else the exit status. */
static int read_options(int argc, char **argv, struct options *o)
{
    static const struct option opts[] = { { "config", required_argument, NULL, 'c' },
                                          { "workers", required_argument, NULL, 'w' },
                                          { "daemon", no_argument, NULL, 'd' },
                                          { "pidfile", required_argument, NULL, 'p' },
                                          { "help", no_argument, NULL, 'h' },
                                          { "allow-root", no_argument, NULL, 'r' },
                                          { NULL, 0, NULL, 0 } };
    int opt;

    memset(o, 0, sizeof(*o));
    for(opt = getopt_long(argc, argv, "c:w:dp:h", opts, NULL); opt != -1;
        opt = getopt_long(argc, argv, "c:w:dp:h", opts, NULL)) {
        switch(opt) {
        case 'c': o->config = optarg; break;
        case 'd': o->daemon_mode = 1; break;
        case 'p': o->pidfile = optarg; break;
        case 'r': o->allow_root = 1; break;
        case 'w':
            if(pa_parse_long(optarg, &o->workers) || o->workers < 1 || o->workers > MAX_WORKERS) {
                fprintf(stderr, "pa-runner: --workers must be from 1 to %d\n", MAX_WORKERS);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    return -1;
}

/*
 * Everything before the workers: the configuration, the user, the log, the
 * pid file (one runner per file), the preflight, the daemon.  *cfg and
 * *redis are the caller's to free.  -1 to go on, else the exit status.
 */
static int start(struct options *o, pa_config **cfg, pa_redis **redis)
{
    char cwd[4096];
    pid_t other;
    pa_err err;

    pa_err_clear(&err);
    if(pa_config_load(pa_config_path(o->config), cfg, &err)) {
        fprintf(stderr, "pa-runner: %s\n", err.msg);
        return 2;
    }
    /* root's job folders are not Apache's to read: every download would be a 404 */
    if(geteuid() == 0 && !o->allow_root) {
        fprintf(stderr, "pa-runner: refusing to run as root: Apache's user could not read the job files it writes. "
                        "Run it as that user (systemctl start pa-runner, or runuser -u www-data -- pa-runner "
                        "--config FILE), or pass --allow-root\n");
        return 2;
    }
    if(!o->workers)
        o->workers = (*cfg)->runner_workers > MAX_WORKERS ? MAX_WORKERS : (*cfg)->runner_workers;
    if(pa_log_open("pa-runner", (*cfg)->log_file, (*cfg)->log_level)) {
        fprintf(stderr, "pa-runner: cannot open log file %s: %s\n", (*cfg)->log_file, strerror(errno));
        return 2;
    }
    /* the daemon works in /, where a relative pid file path means another file */
    if(o->pidfile && o->pidfile[0] != '/') {
        if(!getcwd(cwd, sizeof(cwd)) ||
           (size_t)snprintf(o->pidpath, sizeof(o->pidpath), "%s/%s", cwd, o->pidfile) >= sizeof(o->pidpath)) {
            fprintf(stderr, "pa-runner: cannot make the pid file path %s absolute\n", o->pidfile);
            return 2;
        }
        o->pidfile = o->pidpath;
    }
    other = o->pidfile ? pidfile_owner(o->pidfile) : 0;
    if(other) {
        fprintf(stderr, "pa-runner: another runner (pid %ld) runs with the pid file %s: stop it first\n", (long)other,
                o->pidfile);
        return 1;
    }
    if(preflight(*cfg, &err)) {
        fprintf(stderr, "pa-runner: %s\n", err.msg);
        pa_error("not starting: %s", err.msg);
        return 1;
    }
    if(o->daemon_mode && daemonize((*cfg)->log_file)) {
        pa_error("cannot become a daemon: %s", strerror(errno));
        return 1;
    }
    if(o->pidfile && write_pidfile(o->pidfile)) {
        pa_error("cannot write pid file %s: %s", o->pidfile, strerror(errno));
        return 1;
    }
    on_signals();
    if(pa_redis_new(*cfg, redis, &err)) {
        pa_error("%s", err.msg);
        return 1;
    }
    daemon_ready();
    return -1;
}

/* Sends sig to every live worker. */
static void signal_workers(const pid_t *pids, long workers, int sig)
{
    long i;

    for(i = 0; i < workers; i++)
        if(pids[i] > 0)
            kill(pids[i], sig);
}

/* Reaps the workers that ended; starts another for each unless stopping. */
static void reap_workers(const pa_config *cfg, pid_t *pids, long workers)
{
    int status;
    pid_t pid;
    long i;

    for(pid = waitpid(-1, &status, WNOHANG); pid > 0; pid = waitpid(-1, &status, WNOHANG)) {
        for(i = 0; i < workers; i++) {
            if(pids[i] != pid)
                continue;
            pids[i] = 0;
            if(!stop_flag) {
                pa_warn("worker %ld (pid %d) ended with status %d; starting another", i, (int)pid,
                        WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
                sleep(1); /* never a tight restart loop */
                pids[i] = spawn(cfg, (int)i);
            }
        }
    }
}

/*
 * The supervisor: keeps workers workers running, passes SIGHUP on, stores
 * the queued audit events and runs the janitor, until SIGTERM; then gives
 * the workers STOP_GRACE_MS to hand their jobs back, and kills what is left.
 */
static void supervise(const pa_config *cfg, pa_redis *redis, long workers)
{
    pid_t pids[MAX_WORKERS];
    int64_t next_janitor = 0, stop_deadline = 0;
    PGconn *db = NULL;
    char host[64], consumer[96];
    long i, alive;

    if(gethostname(host, sizeof(host)))
        pa_strlcpy(host, "localhost", sizeof(host));
    host[sizeof(host) - 1] = '\0';
    snprintf(consumer, sizeof(consumer), "runner-%s-%d", host, (int)getpid());
    pa_info("runner started with %ld workers", workers);
    for(i = 0; i < workers; i++)
        pids[i] = spawn(cfg, (int)i);
    for(;;) {
        if(reopen_flag) {
            reopen_flag = 0;
            pa_log_reopen();
            pa_info("log file reopened (SIGHUP); the workers reopen theirs");
            signal_workers(pids, workers, SIGHUP);
        }
        if(stop_flag && !stop_deadline) {
            pa_info("stopping: workers finish their current chunk");
            stop_deadline = pa_mono_ms() + STOP_GRACE_MS;
            signal_workers(pids, workers, SIGTERM);
        }
        reap_workers(cfg, pids, workers);
        for(alive = 0, i = 0; i < workers; i++)
            alive += pids[i] > 0;
        if(stop_flag && (!alive || pa_mono_ms() > stop_deadline)) {
            signal_workers(pids, workers, SIGKILL);
            break;
        }
        store_audit(cfg, redis, &db, consumer);
        if(!stop_flag && pa_mono_ms() >= next_janitor) {
            janitor(cfg, redis, &db);
            next_janitor = pa_mono_ms() + JANITOR_EVERY_MS;
        }
        usleep(200 * 1000);
    }
    if(db)
        PQfinish(db);
}

int main(int argc, char **argv)
{
    struct options o;
    pa_config *cfg = NULL;
    pa_redis *redis = NULL;
    int rc = read_options(argc, argv, &o);

    if(rc < 0)
        rc = start(&o, &cfg, &redis);
    if(rc < 0) {
        supervise(cfg, redis, o.workers);
        pa_info("runner stopped");
        /* the file is removed only while it is still this runner's */
        if(o.pidfile && !pidfile_owner(o.pidfile))
            unlink(o.pidfile);
        rc = 0;
    }
    pa_redis_free(redis);
    pa_config_free(cfg);
    pa_log_close();
    return rc;
}
