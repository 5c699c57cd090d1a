/*
 * pa-admin setup: after the package is installed, one command brings up the
 * service against the machine's own PostgreSQL, Redis and Apache, and says
 * what is left to do.  Each step prints one line; running it again changes
 * only what is not yet right (a database login that works is kept).
 *
 *   1. the database role and database, created through the local
 *      superuser (peer login as postgres, or --pg-admin CONNINFO), with a
 *      password login over TCP on loopback (Debian's pg_hba allows it as is)
 *   2. the configuration: base_url, pg_conninfo, Redis, payer_identifier
 *   3. the migrations
 *   4. the service user's view: it reaches PostgreSQL and Redis and writes
 *      the export folder (what the responder and the runner will need)
 *   5. Apache: the TLS virtual host for base_url's host and port, the
 *      modules it needs (recorded, so that a purge disables only those),
 *      configtest, graceful reload when Apache runs
 *   6. the runner, through systemd when it runs the machine
 *   7. pa-admin check, then the list of what is left
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "admin.h"
#include "pa_buf.h"
#include "pa_db.h"
#include "pa_redis.h"
#include "pa_util.h"

#define APACHE_DIR "/etc/apache2"
#define SITE_NAME "provider-access-tls"
#define SNAKEOIL_CERT "/etc/ssl/certs/ssl-cert-snakeoil.pem"
#define SNAKEOIL_KEY "/etc/ssl/private/ssl-cert-snakeoil.key"
#define MAX_TODO 12
#define TEXT_MAX (1 << 20) /* a configuration file, a site, a command's output */

struct setup {
    const char *base_url, *cert, *key, *redis, *payer, *user, *pg_admin, *pg_host, *sql_dir;
    const char *db, *db_user;
    long pg_port;
    char host[256];
    long port;
    char password[33];
    char todo[MAX_TODO][512];
    int ntodo;
};

static void todo(struct setup *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void todo(struct setup *s, const char *fmt, ...)
{
    va_list ap;

    if(s->ntodo == MAX_TODO)
        return;
    va_start(ap, fmt);
    vsnprintf(s->todo[s->ntodo], sizeof(s->todo[0]), fmt, ap);
    va_end(ap);
    s->ntodo++;
}

static void step(const char *what, const char *state, const char *detail)
{
    printf("%-11s %-8s %s\n", what, state, detail ? detail : "");
    fflush(stdout);
}

/* A PostgreSQL identifier we create: plain lower-case, never quoted wrong. */
static int plain_name(const char *s)
{
    size_t i;

    if(!*s || strlen(s) > 63 || !(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z')))
        return 0;
    for(i = 1; s[i]; i++)
        if(!(s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
            return 0;
    return 1;
}

/* base_url's host and port; the Apache conf serves the API at /fhir. */
static int parse_base_url(struct setup *s)
{
    const char *p = s->base_url, *host, *end, *colon;
    int https = !strncmp(p, "https://", 8);

    if(!https && strncmp(p, "http://", 7)) {
        fprintf(stderr, "pa-admin setup: --base-url must be an https URL, e.g. https://fhir.payer.example/fhir\n");
        return -1;
    }
    host = p + (https ? 8 : 7);
    end = strchr(host, '/');
    if(!end || strcmp(end, "/fhir")) {
        fprintf(stderr, "pa-admin setup: the API is served at /fhir: --base-url must end in /fhir (%s)\n", p);
        return -1;
    }
    colon = memchr(host, ':', (size_t)(end - host));
    if((size_t)((colon ? colon : end) - host) >= sizeof(s->host) || (colon ? colon : end) == host) {
        fprintf(stderr, "pa-admin setup: no host in --base-url %s\n", p);
        return -1;
    }
    snprintf(s->host, sizeof(s->host), "%.*s", (int)((colon ? colon : end) - host), host);
    s->port = https ? 443 : 80;
    if(colon) {
        char port[8];

        snprintf(port, sizeof(port), "%.*s", (int)(end - colon - 1), colon + 1);
        if(pa_parse_long(port, &s->port) || s->port < 1 || s->port > 65535) {
            fprintf(stderr, "pa-admin setup: bad port in --base-url %s\n", p);
            return -1;
        }
    }
    if(strspn(s->host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != strlen(s->host)) {
        fprintf(stderr, "pa-admin setup: bad host name in --base-url %s\n", p);
        return -1;
    }
    return 0;
}

/* Runs fn(arg) in a child process as user (its groups too); its exit status. */
static int as_user(const char *user, int (*fn)(void *), void *arg)
{
    struct passwd *pw = getpwnam(user);
    pid_t pid;
    int status;

    if(!pw) {
        fprintf(stderr, "pa-admin setup: no user %s on this machine\n", user);
        return -1;
    }
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if(pid < 0)
        return -1;
    if(!pid) {
        if(initgroups(pw->pw_name, pw->pw_gid) || setgid(pw->pw_gid) || setuid(pw->pw_uid) || chdir("/")) {
            fprintf(stderr, "pa-admin setup: cannot become %s: %s\n", user, strerror(errno));
            _exit(1);
        }
        setenv("HOME", pw->pw_dir, 1);
        status = fn(arg);
        fflush(stdout);
        fflush(stderr);
        _exit(status);
    }
    while(waitpid(pid, &status, 0) < 0)
        if(errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Runs a program (no shell) with its output captured into out; its exit status. */
static int run(char *const argv[], pa_buf *out)
{
    int fds[2], status;
    pid_t pid;
    char chunk[4096];
    ssize_t n;

    if(pipe(fds))
        return -1;
    fflush(stdout);
    pid = fork();
    if(pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if(!pid) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    for(n = read(fds[0], chunk, sizeof(chunk)); n > 0 || (n < 0 && errno == EINTR);
        n = read(fds[0], chunk, sizeof(chunk)))
        if(n > 0 && out)
            pa_buf_add(out, chunk, (size_t)n);
    close(fds[0]);
    while(waitpid(pid, &status, 0) < 0)
        if(errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- 1. the database ---- */

static PGresult *exec1(PGconn *c, const char *sql, const char *param)
{
    PGresult *res = PQexecParams(c, sql, param ? 1 : 0, NULL, param ? &param : NULL, NULL, NULL, 0);

    if(PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK) {
        fprintf(stderr, "pa-admin setup: PostgreSQL: %s", PQerrorMessage(c));
        PQclear(res);
        return NULL;
    }
    return res;
}

static int exists(PGconn *c, const char *sql, const char *name)
{
    PGresult *res = exec1(c, sql, name);
    int n = res ? PQntuples(res) : -1;

    PQclear(res);
    return n;
}

/* As PostgreSQL's superuser: the role (its password set anew) and the database. */
static int pg_create(void *arg)
{
    struct setup *s = arg;
    char conninfo[512], sql[512];
    PGconn *c;
    PGresult *res;
    int role, db;

    if(s->pg_admin)
        snprintf(conninfo, sizeof(conninfo), "%s", s->pg_admin);
    else
        snprintf(conninfo, sizeof(conninfo), "dbname=postgres port=%ld connect_timeout=10", s->pg_port);
    c = PQconnectdb(conninfo);
    if(PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "pa-admin setup: cannot reach PostgreSQL as its superuser (%s): %s",
                s->pg_admin ? "--pg-admin" : "postgres, over the local socket", PQerrorMessage(c));
        PQfinish(c);
        return 1;
    }
    role = exists(c, "SELECT 1 FROM pg_roles WHERE rolname = $1", s->db_user);
    snprintf(sql, sizeof(sql), "%s ROLE %s %sPASSWORD '%s'", role > 0 ? "ALTER" : "CREATE", s->db_user,
             role > 0 ? "" : "LOGIN ", s->password);
    res = role < 0 ? NULL : exec1(c, sql, NULL);
    db = res ? 0 : -1;
    PQclear(res);
    if(!db)
        db = exists(c, "SELECT 1 FROM pg_database WHERE datname = $1", s->db);
    if(db == 0) {
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s OWNER %s ENCODING 'UTF8' TEMPLATE template0", s->db, s->db_user);
        res = exec1(c, sql, NULL);
        db = res ? 1 : -1;
        PQclear(res);
    }
    PQfinish(c);
    if(db < 0)
        return 1;
    printf("postgresql  %-8s role %s (password login on %s:%ld), database %s\n", role > 0 ? "updated" : "created",
           s->db_user, s->pg_host, s->pg_port, s->db);
    return 0;
}

/* The configuration's pg_conninfo already logs in: kept as it is. */
static int pg_works(const char *conf_path)
{
    pa_config *cfg = NULL;
    PGconn *db = NULL;
    pa_err err;
    int ok;

    pa_err_clear(&err);
    if(pa_config_load(conf_path, &cfg, &err))
        return 0;
    ok = !pa_db_connect(cfg, &db, &err);
    if(db)
        PQfinish(db);
    pa_config_free(cfg);
    return ok;
}

/* ---- 2. the configuration file: keys set in place, the rest kept ---- */

/* The start of a line that sets key (commented out: "# key = ..."), or NULL. */
static const char *key_line(const char *line, const char *key, int commented)
{
    const char *q = line + strspn(line, " \t");

    if(commented) {
        if(*q != '#')
            return NULL;
        q += 1 + strspn(q + 1, " \t");
    }
    if(strncmp(q, key, strlen(key)))
        return NULL;
    q += strlen(key);
    q += strspn(q, " \t");
    return *q == '=' ? line : NULL;
}

/* Sets key in the text: its line replaced, else its commented-out example,
 * else a line added at the end. */
static int conf_set(pa_buf *text, const char *key, const char *value)
{
    pa_buf out;
    const char *line, *eol;
    int pass, done = 0, rc = 0;

    if(strpbrk(value, "\r\n"))
        return -1; /* one value, one line */
    for(pass = 0; pass < 2 && !done; pass++) {
        pa_buf_init(&out, TEXT_MAX);
        for(line = pa_buf_str(text); *line; line = eol) {
            eol = strchr(line, '\n');
            eol = eol ? eol + 1 : line + strlen(line);
            if(!done && key_line(line, key, pass)) {
                rc |= pa_buf_printf(&out, "%s = %s\n", key, value);
                done = 1;
            }
            else
                rc |= pa_buf_add(&out, line, (size_t)(eol - line));
        }
        if(!done)
            pa_buf_free(&out);
    }
    if(!done) {
        pa_buf_init(&out, TEXT_MAX);
        rc |= pa_buf_add(&out, text->data, text->len);
        if(out.len && out.data[out.len - 1] != '\n')
            rc |= pa_buf_addstr(&out, "\n");
        rc |= pa_buf_printf(&out, "%s = %s\n", key, value);
    }
    pa_buf_reset(text);
    rc |= pa_buf_add(text, out.data, out.len);
    pa_buf_free(&out);
    return rc;
}

static int read_text(const char *path, pa_buf *out)
{
    FILE *f = fopen(path, "r");
    char chunk[4096];
    size_t n;

    int rc = 0;

    if(!f)
        return -1;
    for(n = fread(chunk, 1, sizeof(chunk), f); !rc && n > 0; n = fread(chunk, 1, sizeof(chunk), f))
        rc = pa_buf_add(out, chunk, n);
    if(ferror(f))
        rc = -1;
    fclose(f);
    return rc ? -2 : 0;
}

/* Written beside, then renamed: root may write it, the service user read it. */
static int write_private(const char *path, const pa_buf *text, gid_t gid)
{
    char tmp[1024];
    int fd;

    snprintf(tmp, sizeof(tmp), "%s.new", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    if(fd < 0 || write(fd, text->data, text->len) != (ssize_t)text->len || fchown(fd, 0, gid) || fchmod(fd, 0640) ||
       fsync(fd) || close(fd) || rename(tmp, path)) {
        fprintf(stderr, "pa-admin setup: cannot write %s: %s\n", path, strerror(errno));
        if(fd >= 0)
            close(fd);
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int write_config(struct setup *s, const char *path, int new_login, gid_t gid)
{
    pa_buf text;
    char v[512];
    int rc;

    pa_buf_init(&text, TEXT_MAX);
    rc = read_text(path, &text);
    if(rc == -1) {
        pa_buf_reset(&text);
        rc = read_text(PA_PKGDATADIR "/provider-access.conf.example", &text);
        if(rc == -1)
            rc = pa_buf_addstr(&text, "# provider-access configuration: key = value; see docs/CONFIGURATION.md.\n");
    }
    if(rc) {
        fprintf(stderr, "pa-admin setup: cannot read %s (or it is over %d bytes)\n", path, TEXT_MAX);
        pa_buf_free(&text);
        return -1;
    }
    rc |= conf_set(&text, "base_url", s->base_url);
    if(new_login) {
        snprintf(v, sizeof(v), "host=%s port=%ld dbname=%s user=%s password=%s connect_timeout=5", s->pg_host,
                 s->pg_port, s->db, s->db_user, s->password);
        rc |= conf_set(&text, "pg_conninfo", v);
    }
    if(s->redis) {
        const char *colon = s->redis[0] == '/' ? NULL : strrchr(s->redis, ':');

        snprintf(v, sizeof(v), "%.*s", colon ? (int)(colon - s->redis) : (int)strlen(s->redis), s->redis);
        rc |= conf_set(&text, "redis_host", v);
        if(colon)
            rc |= conf_set(&text, "redis_port", colon + 1);
    }
    if(s->payer)
        rc |= conf_set(&text, "payer_identifier", s->payer);
    if(rc)
        fprintf(stderr, "pa-admin setup: %s could not be edited (a value with a line break, or over %d bytes)\n", path,
                TEXT_MAX);
    else
        rc = write_private(path, &text, gid);
    pa_buf_free(&text);
    return rc;
}

/* ---- 4. what the service user sees ---- */

static int service_view(void *arg)
{
    const char *conf_path = arg;
    pa_config *cfg = NULL;
    PGconn *db = NULL;
    pa_redis *redis = NULL;
    pa_err err;
    int rc = 1;

    pa_err_clear(&err);
    if(pa_config_load(conf_path, &cfg, &err))
        fprintf(stderr, "pa-admin setup: %s\n", err.msg);
    else if(pa_db_connect(cfg, &db, &err) || pa_db_check_schema(db, &err))
        fprintf(stderr, "pa-admin setup: PostgreSQL: %s\n", err.msg);
    else if(pa_redis_open(cfg, &redis, &err))
        fprintf(stderr, "pa-admin setup: Redis: %s (docs/OPERATIONS.md, Redis)\n", err.msg);
    else if(access(cfg->data_dir, R_OK | W_OK | X_OK))
        fprintf(stderr, "pa-admin setup: cannot write data_dir %s: %s\n", cfg->data_dir, strerror(errno));
    else
        rc = 0;
    if(db)
        PQfinish(db);
    pa_redis_free(redis);
    pa_config_free(cfg);
    return rc;
}

/* The folders the service writes, owned by its user. */
static int own_folders(const pa_config *cfg, const struct passwd *pw)
{
    char logdir[1024];
    const char *dirs[2];
    int i, rc = 0;

    snprintf(logdir, sizeof(logdir), "%s", cfg->log_file);
    if(strrchr(logdir, '/'))
        *strrchr(logdir, '/') = '\0';
    dirs[0] = cfg->data_dir;
    dirs[1] = *cfg->log_file ? logdir : NULL;
    for(i = 0; i < 2 && !rc; i++) {
        if(!dirs[i] || !*dirs[i])
            continue;
        if((mkdir(dirs[i], 0750) && errno != EEXIST) || chown(dirs[i], pw->pw_uid, pw->pw_gid)) {
            fprintf(stderr, "pa-admin setup: cannot make %s the service's: %s\n", dirs[i], strerror(errno));
            rc = -1;
        }
    }
    return rc;
}

/* ---- 5. Apache ---- */

static int module_enabled(const char *m)
{
    char path[256];

    snprintf(path, sizeof(path), APACHE_DIR "/mods-enabled/%s.load", m);
    return !access(path, F_OK);
}

/* Enables the modules the site needs; those it enabled (dependencies too)
 * are recorded for the package's purge. */
static int enable_modules(const char *record)
{
    static const char *const wanted[] = { "fcgid", "xsendfile",     "alias",    "headers",
                                          "ssl",   "socache_shmcb", "setenvif", "mime" };
    int was[sizeof(wanted) / sizeof(*wanted)];
    size_t i;
    FILE *f;
    pa_buf out;
    char *argv[] = { "a2enmod", "-q", "fcgid", "xsendfile", "alias", "headers", "ssl", NULL };
    int rc;

    for(i = 0; i < sizeof(wanted) / sizeof(*wanted); i++)
        was[i] = module_enabled(wanted[i]);
    pa_buf_init(&out, TEXT_MAX);
    rc = run(argv, &out);
    if(rc)
        fprintf(stderr, "pa-admin setup: a2enmod failed: %s\n", pa_buf_str(&out));
    pa_buf_free(&out);
    f = fopen(record, "a");
    for(i = 0; f && i < sizeof(wanted) / sizeof(*wanted); i++)
        if(!was[i] && module_enabled(wanted[i]))
            fprintf(f, "%s\n", wanted[i]);
    if(!f || fclose(f))
        fprintf(stderr, "pa-admin setup: cannot record the modules it enabled in %s\n", record);
    return rc;
}

/* The system's Apache (not another instance of the same program) runs. */
static int apache_running(void)
{
    FILE *f = fopen("/run/apache2/apache2.pid", "r");
    long pid = 0;

    if(f && fscanf(f, "%ld", &pid) != 1)
        pid = 0;
    if(f)
        fclose(f);
    return pid > 0 && !kill((pid_t)pid, 0);
}

static int write_site(struct setup *s, const char *cert, const char *key)
{
    pa_buf text;
    int rc = 0;

    pa_buf_init(&text, TEXT_MAX);
    pa_buf_printf(&text, "# The TLS virtual host of the Provider Access API, written by pa-admin setup\n"
                         "# (run it again to change it); the package's purge removes it.\n");
    if(s->port != 443)
        pa_buf_printf(&text, "Listen %ld https\n", s->port);
    pa_buf_printf(&text,
                  "<VirtualHost *:%ld>\n"
                  "    ServerName %s\n"
                  "    SSLEngine on\n"
                  "    SSLCertificateFile %s\n"
                  "    SSLCertificateKeyFile %s\n"
                  "    # errors Apache raises before it knows the path, as OperationOutcomes\n"
                  "    ErrorDocument 400 /provider-access-errors/400.json\n"
                  "    ErrorDocument 404 /provider-access-errors/404.json\n"
                  "    ErrorDocument 414 /provider-access-errors/414.json\n"
                  "</VirtualHost>\n",
                  s->port, s->host, cert, key);
    rc = write_private(APACHE_DIR "/sites-available/" SITE_NAME ".conf", &text, 0);
    if(!rc)
        chmod(APACHE_DIR "/sites-available/" SITE_NAME ".conf", 0644);
    pa_buf_free(&text);
    return rc;
}

static int setup_apache(struct setup *s)
{
    const char *cert = s->cert, *key = s->key;
    char *ensite[] = { "a2ensite", "-q", SITE_NAME, NULL };
    char *dissite[] = { "a2dissite", "-q", SITE_NAME, NULL };
    char *configtest[] = { "apache2ctl", "configtest", NULL };
    char *graceful[] = { "apache2ctl", "graceful", NULL };
    pa_buf out;
    int rc;

    if(access(APACHE_DIR "/sites-available", F_OK)) {
        step("apache", "skipped", "no " APACHE_DIR ": configure your web server by docs/OPERATIONS.md");
        todo(s, "serve /fhir: no Debian Apache here (docs/OPERATIONS.md, Apache)");
        return 0;
    }
    if(strncmp(s->base_url, "https://", 8)) {
        step("apache", "warning", "base_url is not https: no TLS virtual host written");
        todo(s, "use an https base_url: Bulk Data and SMART require TLS");
    }
    else {
        if(!cert && !access(SNAKEOIL_CERT, R_OK) && !access(SNAKEOIL_KEY, R_OK)) {
            cert = SNAKEOIL_CERT;
            key = SNAKEOIL_KEY;
            todo(s,
                 "replace the self-signed snakeoil certificate with one for %s issued by a CA your providers "
                 "trust: pa-admin setup --base-url %s --cert FILE --key FILE",
                 s->host, s->base_url);
        }
        if(!cert) {
            step("apache", "skipped", "no certificate: the TLS virtual host is not written");
            todo(s, "a certificate for %s: pa-admin setup --base-url %s --cert FILE --key FILE", s->host, s->base_url);
        }
        else if(access(cert, R_OK) || access(key, R_OK)) {
            fprintf(stderr, "pa-admin setup: cannot read the certificate %s or its key %s\n", cert, key);
            return -1;
        }
        else {
            if(enable_modules("/etc/provider-access/apache-enabled-by-setup") || write_site(s, cert, key))
                return -1;
            pa_buf_init(&out, TEXT_MAX);
            rc = run(ensite, &out);
            pa_buf_reset(&out);
            if(!rc && run(configtest, &out)) {
                fprintf(stderr, "pa-admin setup: apache2ctl configtest failed; the site is disabled again:\n%s",
                        pa_buf_str(&out));
                run(dissite, NULL);
                rc = -1;
            }
            pa_buf_free(&out);
            if(rc)
                return -1;
            step("apache", "ok", "TLS virtual host " APACHE_DIR "/sites-available/" SITE_NAME ".conf");
        }
    }
    if(apache_running()) {
        rc = run(graceful, NULL);
        step("apache", rc ? "failed" : "reloaded", rc ? "apache2ctl graceful failed: see Apache's error log" : NULL);
        return rc ? -1 : 0;
    }
    todo(s, "start Apache: service apache2 start");
    return 0;
}

/* ---- 6. the runner ---- */

static int setup_runner(struct setup *s, const char *conf_path)
{
    char *enable[] = { "systemctl", "enable", "pa-runner.service", NULL };
    char *restart[] = { "systemctl", "restart", "pa-runner.service", NULL };

    if(!access("/run/systemd/system", F_OK)) {
        int rc = run(enable, NULL) || run(restart, NULL);

        step("runner", rc ? "failed" : "started",
             rc ? "systemctl status pa-runner says why" : "systemd: pa-runner.service");
        return rc ? -1 : 0;
    }
    step("runner", "todo", "no systemd here");
    todo(s,
         "start the runner as %s: runuser -u %s -- pa-runner --config %s --daemon --pidfile "
         "/run/provider-access/runner.pid",
         s->user, s->user, conf_path);
    return 0;
}

static void setup_usage(void)
{
    fprintf(stderr, "usage: pa-admin setup --base-url https://HOST[:PORT]/fhir [--cert FILE --key FILE]\n"
                    "                      [--payer-identifier NAIC] [--redis HOST:PORT|SOCKET] [--user NAME]\n"
                    "                      [--db NAME] [--db-user NAME] [--pg-host HOST] [--pg-port PORT]\n"
                    "                      [--pg-admin CONNINFO]\n"
                    "                      [--sql-dir DIR]\n");
}

static int parse_args(struct setup *s, int argc, char **argv)
{
    int i;

    for(i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        const char **slot = !strcmp(a, "--base-url")           ? &s->base_url
                            : !strcmp(a, "--cert")             ? &s->cert
                            : !strcmp(a, "--key")              ? &s->key
                            : !strcmp(a, "--payer-identifier") ? &s->payer
                            : !strcmp(a, "--redis")            ? &s->redis
                            : !strcmp(a, "--user")             ? &s->user
                            : !strcmp(a, "--db")               ? &s->db
                            : !strcmp(a, "--db-user")          ? &s->db_user
                            : !strcmp(a, "--pg-admin")         ? &s->pg_admin
                            : !strcmp(a, "--pg-host")          ? &s->pg_host
                            : !strcmp(a, "--sql-dir")          ? &s->sql_dir
                                                               : NULL;

        if(v && !strcmp(a, "--pg-port")) {
            if(pa_parse_long(v, &s->pg_port) || s->pg_port < 1 || s->pg_port > 65535)
                return -1;
            i++;
        }
        else if(slot && v) {
            *slot = v;
            i++;
        }
        else
            return -1;
    }
    if(!s->base_url || !s->cert != !s->key)
        return -1;
    return 0;
}

int cmd_setup(int argc, char **argv)
{
    struct setup s = { .user = "www-data",
                       .db = "provider_access",
                       .db_user = "provider_access",
                       .pg_host = "127.0.0.1",
                       .pg_port = 5432 };
    const char *conf_path = admin_config_path();
    struct passwd *pw, service;
    pa_config *cfg = NULL;
    pa_err err;
    int new_login, payer_set, i;

    if(parse_args(&s, argc, argv)) {
        setup_usage();
        return 2;
    }
    if(geteuid()) {
        fprintf(stderr,
                "pa-admin setup: run it as root: it writes %s, creates the database role and enables "
                "Apache's modules\n",
                conf_path);
        return 1;
    }
    if(parse_base_url(&s))
        return 1;
    if(!plain_name(s.db) || !plain_name(s.db_user)) {
        fprintf(stderr, "pa-admin setup: --db and --db-user take lower-case letters, digits and _\n");
        return 1;
    }
    pw = getpwnam(s.user);
    if(!pw) {
        fprintf(stderr, "pa-admin setup: no user %s (the user Apache runs as): --user NAME\n", s.user);
        return 1;
    }
    service = *pw; /* getpwnam's storage is reused by the next lookup */
    /* 1, 2: a login that works is kept; otherwise a new role password */
    new_login = !pg_works(conf_path);
    if(new_login) {
        if(pa_random_hex(s.password, 16) || as_user(s.pg_admin ? "root" : "postgres", pg_create, &s)) {
            fprintf(stderr, "pa-admin setup: the database could not be set up (docs/OPERATIONS.md, PostgreSQL)\n");
            return 1;
        }
    }
    else
        step("postgresql", "ok", "the configured login works: kept");
    if(mkdir("/etc/provider-access", 0755) && errno != EEXIST) {
        fprintf(stderr, "pa-admin setup: cannot make /etc/provider-access: %s\n", strerror(errno));
        return 1;
    }
    if(write_config(&s, conf_path, new_login, service.pw_gid))
        return 1;
    pa_err_clear(&err);
    if(pa_config_load(conf_path, &cfg, &err)) {
        fprintf(stderr, "pa-admin setup: %s\n", err.msg);
        return 1;
    }
    payer_set = *cfg->payer_identifier != '\0';
    i = own_folders(cfg, &service);
    pa_config_free(cfg);
    if(i)
        return 1;
    step("config", "written", conf_path);
    /* 3 */
    {
        char *margv[] = { "migrate", "--sql-dir", (char *)admin_sql_dir(s.sql_dir), NULL };

        if(cmd_migrate(3, margv))
            return 1;
    }
    /* 4 */
    if(as_user(s.user, service_view, (void *)conf_path)) {
        step("service", "failed", "the service user cannot work with this (above)");
        return 1;
    }
    step("service", "ok", "as the service user: PostgreSQL, Redis and the export folder");
    /* 5, 6 */
    if(setup_apache(&s) || setup_runner(&s, conf_path))
        return 1;
    /* 7 */
    printf("\n");
    if(cmd_check(1, argv))
        return 1;
    if(!payer_set)
        todo(&s, "the plan's NAIC code, that member matches require: pa-admin setup ... --payer-identifier NAIC");
    todo(&s, "the payer's data: pa-admin load FILE|DIR (docs/LOADING.md)");
    todo(&s, "the first client: pa-admin client add --name NAME --npi NPI --jwks FILE (docs/AUTH.md)");
    printf("\nset up; left to do:\n");
    for(i = 0; i < s.ntodo; i++)
        printf("  - %s\n", s.todo[i]);
    return 0;
}
