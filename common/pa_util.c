#include "pa_util.h"
#include "pa_err.h"

#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

int pa_random_hex(char *out, size_t nbytes)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[64];
    size_t i;

    if(nbytes > sizeof(raw))
        return PA_EINVAL;
    if(RAND_bytes(raw, (int)nbytes) != 1)
        return PA_EIO;
    for(i = 0; i < nbytes; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * nbytes] = '\0';
    return PA_OK;
}

/* The process id, read once and again in a forked child (getpid is a system
 * call, on every log line and request otherwise). */
static pid_t cached_pid;

static void pid_forget(void)
{
    cached_pid = 0;
}

pid_t pa_pid(void)
{
    static int registered;

    if(!registered)
        registered = pthread_atfork(NULL, NULL, pid_forget) == 0;
    if(!cached_pid)
        cached_pid = getpid();
    return cached_pid;
}

int pa_request_id(char out[17])
{
    /* seeded from RAND_bytes once a process (a forked child seeds again),
     * then splitmix64 */
    static uint64_t state;
    static pid_t seeded_by;
    uint64_t z;
    int i;

    if(seeded_by != pa_pid()) {
        if(RAND_bytes((unsigned char *)&state, sizeof(state)) != 1)
            return PA_EIO;
        seeded_by = pa_pid();
    }
    z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    for(i = 15; i >= 0; i--, z >>= 4)
        out[i] = "0123456789abcdef"[z & 15];
    out[16] = '\0';
    return PA_OK;
}

int64_t pa_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t pa_mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t pa_mono_ms(void)
{
    return pa_mono_us() / 1000;
}

void pa_instant_format(int64_t ms, char out[32])
{
    /* floored: an instant before 1970 has a negative count, and its
     * milliseconds are still 0 to 999 after the second before it */
    int64_t secs = ms / 1000 - (ms % 1000 < 0);
    int frac = (int)(ms - secs * 1000);
    time_t t = (time_t)secs;
    struct tm tm;
    char tmp[96];

    gmtime_r(&t, &tm);
    /* four digits of year always (strftime's %Y gives "999"): PostgreSQL
     * and every FHIR reader expect them */
    snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
    pa_strlcpy(out, tmp, 32);
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    int i;

    for(i = 0; i < n; i++) {
        if(s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int y, int m, int d)
{
    int64_t era;
    int yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (int)(y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int pa_days_in_month(int y, int m)
{
    static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return m < 1 || m > 12 ? 0 : mdays[m - 1] + (m == 2 && leap);
}

long pa_parse_day_list(const char *s, long *out, size_t max)
{
    long n = 0;

    while(*s) {
        char day[11];
        int y, m, d;
        size_t len;

        s += strspn(s, " ,\t");
        len = strcspn(s, " ,\t");
        if(!len)
            break;
        if(len != 10)
            return -1;
        memcpy(day, s, 10);
        day[10] = '\0';
        if(pa_parse_date(day, &y, &m, &d) || !d)
            return -1;
        if(out) {
            if((size_t)n >= max)
                return -1;
            out[n] = (long)y * 10000 + m * 100 + d;
        }
        n++;
        s += len;
    }
    return n;
}

int pa_timezone_known(const char *tz)
{
    const char *dir = getenv("TZDIR");
    char path[1024];

    if(!strcmp(tz, "UTC"))
        return 1;
    if(!*tz || *tz == '/' || strstr(tz, "..") ||
       strspn(tz, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                  "0123456789_+-/") != strlen(tz))
        return 0;
    snprintf(path, sizeof(path), "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", tz);
    return access(path, R_OK) == 0;
}

/* True if the local day of tm is a business day. */
static int business_day(const struct tm *tm, const long *holidays, size_t n)
{
    long ymd = (long)(tm->tm_year + 1900) * 10000 + (tm->tm_mon + 1) * 100 + tm->tm_mday;
    size_t i;

    if(tm->tm_wday == 0 || tm->tm_wday == 6)
        return 0;
    for(i = 0; i < n; i++)
        if(holidays[i] == ymd)
            return 0;
    return 1;
}

/* The local day k days after tm's, at the clock time h:m:s (normalized). */
static time_t local_day(const struct tm *tm, int k, int h, int m, int s, struct tm *out)
{
    struct tm c;

    memset(&c, 0, sizeof(c));
    c.tm_year = tm->tm_year;
    c.tm_mon = tm->tm_mon;
    c.tm_mday = tm->tm_mday + k;
    c.tm_hour = h;
    c.tm_min = m;
    c.tm_sec = s;
    c.tm_isdst = -1;
    {
        time_t t = mktime(&c);

        if(out)
            *out = c;
        return t;
    }
}

time_t pa_business_deadline(time_t t, const long *holidays, size_t n)
{
    struct tm tm, day;
    int k;

    localtime_r(&t, &tm);
    /* the next business day (a year of holidays at most in between) */
    for(k = 1; k < 400; k++) {
        local_day(&tm, k, 12, 0, 0, &day);
        if(business_day(&day, holidays, n))
            break;
    }
    if(business_day(&tm, holidays, n))
        return local_day(&tm, k, tm.tm_hour, tm.tm_min, tm.tm_sec, NULL);
    /* asked on a day off: the whole of the next business day */
    return local_day(&tm, k + 1, 0, 0, 0, NULL);
}

int pa_parse_date(const char *s, int *y, int *m, int *d)
{
    size_t n = strlen(s);

    *m = 0;
    *d = 0;
    /* FHIR date: YYYY, YYYY-MM or YYYY-MM-DD; the year 0001 to 9999 */
    if((n != 4 && n != 7 && n != 10) || digits(s, 4, y) || *y < 1)
        return PA_EINVAL;
    if(n >= 7 && (s[4] != '-' || digits(s + 5, 2, m) || *m < 1 || *m > 12))
        return PA_EINVAL;
    if(n == 10 && (s[7] != '-' || digits(s + 8, 2, d) || *d < 1 || *d > pa_days_in_month(*y, *m)))
        return PA_EINVAL;
    return PA_OK;
}

/* A FHIR instant taken apart: the whole seconds since the epoch, the
 * seconds field as written (60 for a leap second), and the fraction's
 * digits (up to nine). */
struct instant {
    int64_t secs; /* with the seconds field counted as 0 */
    int sec;
    long frac; /* the fraction's digits as an integer */
    int frac_digits;
};

static int instant_parts(const char *s, struct instant *t)
{
    int y, mo, d, h, mi, tzh = 0, tzm = 0, sign = 0;
    const char *p;

    if(strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
       digits(s + 8, 2, &d) || s[10] != 'T' || digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) ||
       s[16] != ':' || digits(s + 17, 2, &t->sec))
        return PA_EINVAL;
    if(y < 1 || mo < 1 || mo > 12 || d < 1 || d > pa_days_in_month(y, mo) || h > 23 || mi > 59 || t->sec > 60)
        return PA_EINVAL;
    p = s + 19;
    t->frac = 0;
    t->frac_digits = 0;
    if(*p == '.') {
        for(p++; *p >= '0' && *p <= '9'; p++) {
            if(t->frac_digits == 9)
                return PA_EINVAL;
            t->frac = t->frac * 10 + (*p - '0');
            t->frac_digits++;
        }
        if(t->frac_digits == 0)
            return PA_EINVAL;
    }
    if(*p == 'Z') {
        p++;
    }
    else if(*p == '+' || *p == '-') {
        sign = *p == '-' ? -1 : 1;
        if(digits(p + 1, 2, &tzh) || p[3] != ':' || digits(p + 4, 2, &tzm) || tzh > 14 || tzm > 59)
            return PA_EINVAL;
        p += 6;
    }
    else {
        return PA_EINVAL;
    }
    if(*p)
        return PA_EINVAL;
    t->secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 - (int64_t)sign * (tzh * 3600 + tzm * 60);
    return PA_OK;
}

int pa_parse_instant(const char *s, int64_t *ms)
{
    struct instant t;
    long frac;
    int n;

    if(instant_parts(s, &t))
        return PA_EINVAL;
    /* milliseconds: the fraction's first three digits */
    for(frac = t.frac, n = t.frac_digits; n > 3; n--)
        frac /= 10;
    for(; n < 3; n++)
        frac *= 10;
    *ms = (t.secs + (t.sec > 59 ? 59 : t.sec)) * 1000 + frac;
    return PA_OK;
}

int pa_instant_pg_micros(const char *s, int64_t *us)
{
    static const double tens[] = { 1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9 };
    struct instant t;

    if(instant_parts(s, &t))
        return PA_EINVAL;
    /* as PostgreSQL reads it: a leap second runs into the next minute, the
     * fraction is rounded to the microsecond as rint(strtod(".f") * 1e6)
     * does (one division by an exact power of ten rounds as strtod) */
    *us = (t.secs + t.sec - PA_PG_EPOCH_SECS) * 1000000 + (int64_t)rint((double)t.frac / tens[t.frac_digits] * 1000000);
    return PA_OK;
}

size_t pa_utf8_seq(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    unsigned char lo = 0x80, hi = 0xBF;
    size_t len, i;

    if(n == 0)
        return 0;
    if(p[0] < 0x80)
        return 1;
    if(p[0] >= 0xC2 && p[0] <= 0xDF)
        len = 2;
    else if(p[0] >= 0xE0 && p[0] <= 0xEF) {
        len = 3;
        if(p[0] == 0xE0)
            lo = 0xA0;
        else if(p[0] == 0xED)
            hi = 0x9F; /* no surrogates */
    }
    else if(p[0] >= 0xF0 && p[0] <= 0xF4) {
        len = 4;
        if(p[0] == 0xF0)
            lo = 0x90;
        else if(p[0] == 0xF4)
            hi = 0x8F;
    }
    else
        return 0;
    if(n < len)
        return 0;
    for(i = 1; i < len; i++) {
        if(p[i] < lo || p[i] > hi)
            return 0;
        lo = 0x80;
        hi = 0xBF;
    }
    return len;
}

int pa_utf8_valid(const char *s, size_t n)
{
    size_t i = 0;

    while(i < n) {
        size_t k;

        if((unsigned char)s[i] < 0x80) {
            if(!s[i])
                return 0;
            i++;
            continue;
        }
        k = pa_utf8_seq(s + i, n - i);
        if(!k)
            return 0;
        i += k;
    }
    return 1;
}

size_t pa_utf8_scrub(char *s, size_t n)
{
    size_t i = 0, fixed = 0;

    while(i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 1 : pa_utf8_seq(s + i, n - i);

        if(k && c >= 0x20 && c != 0x7f) {
            i += k;
            continue;
        }
        s[i++] = '?';
        fixed++;
    }
    return fixed;
}

void pa_sha256_hex(const char *s, char out[65])
{
    static const char digits16[] = "0123456789abcdef";
    /* fetched once: EVP_sha256() is looked up again on every digest (a
     * responder hashes every request's token) */
    static EVP_MD *sha256;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0, i;

    if(!sha256)
        sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    EVP_Digest(s, strlen(s), md, &len, sha256 ? sha256 : EVP_sha256(), NULL);
    for(i = 0; i < 32; i++) {
        out[2 * i] = digits16[md[i] >> 4];
        out[2 * i + 1] = digits16[md[i] & 15];
    }
    out[64] = '\0';
}

int pa_strlcpy(char *dst, const char *src, size_t size)
{
    size_t n = strlen(src);

    if(size == 0)
        return PA_ETOOBIG;
    if(n >= size) {
        n = size - 1;
        /* never half a character: back off to where one starts */
        while(n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;
        memcpy(dst, src, n);
        dst[n] = '\0';
        return PA_ETOOBIG;
    }
    memcpy(dst, src, n + 1);
    return PA_OK;
}

int pa_parse_long(const char *s, long *out)
{
    char *end;
    long v;

    if(!s || !*s)
        return PA_EINVAL;
    errno = 0;
    v = strtol(s, &end, 10);
    if(errno || *end)
        return PA_EINVAL;
    *out = v;
    return PA_OK;
}
