#include "pa_util.h"
#include "pa_err.h"

#include <errno.h>
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

int64_t pa_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pa_fhir_instant(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    size_t n;

    gmtime_r(&t, &tm);
    n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

void pa_http_date(time_t t, char out[32])
{
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, 32, "%a, %d %b %Y %H:%M:%S GMT", &tm);
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

int pa_parse_instant(const char *s, int64_t *ms)
{
    static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int y, mo, d, h, mi, sec, frac = 0, tzh = 0, tzm = 0, sign = 0;
    const char *p;
    int leap;

    if(strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) ||
       s[7] != '-' || digits(s + 8, 2, &d) || s[10] != 'T' || digits(s + 11, 2, &h) ||
       s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &sec))
        return PA_EINVAL;
    leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if(y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap) ||
       h > 23 || mi > 59 || sec > 60)
        return PA_EINVAL;
    p = s + 19;
    if(*p == '.') {
        int n = 0;

        p++;
        while(*p >= '0' && *p <= '9') {
            if(n < 3)
                frac = frac * 10 + (*p - '0');
            n++;
            p++;
        }
        if(n == 0 || n > 9)
            return PA_EINVAL;
        while(n < 3) {
            frac *= 10;
            n++;
        }
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
    *ms = ((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + (sec > 59 ? 59 : sec)) -
           (int64_t)sign * (tzh * 3600 + tzm * 60)) * 1000 + frac;
    return PA_OK;
}

int pa_strlcpy(char *dst, const char *src, size_t size)
{
    size_t n = strlen(src);

    if(size == 0)
        return PA_ETOOBIG;
    if(n >= size) {
        memcpy(dst, src, size - 1);
        dst[size - 1] = '\0';
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

int pa_is_fhir_id(const char *s)
{
    size_t n = 0;

    for(; s[n]; n++) {
        char c = s[n];

        if(!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '-' || c == '.'))
            return 0;
        if(n >= 64)
            return 0;
    }
    return n > 0;
}
