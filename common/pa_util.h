/*
 * pa_util: small helpers every module needs: random ids, times in the
 * formats FHIR and HTTP use, and safe string copying.
 */
#ifndef PA_UTIL_H
#define PA_UTIL_H

#include <stddef.h>
#include <sys/types.h>
#include <stdint.h>
#include <time.h>

/* Fills out (2*nbytes+1 chars) with nbytes of CSPRNG output as lowercase hex. */
int pa_random_hex(char *out, size_t nbytes);

/* The process id, cached (and read again after a fork). */
pid_t pa_pid(void);

/* A request id: 16 hex digits, distinct from call to call (a bijection of a
 * counter) and from process to process (a random start), not secret.
 * Cheaper than pa_random_hex, which costs a system call per call. */
int pa_request_id(char out[17]);

/* The SHA-256 of s as 64 lowercase hex digits (a key that holds no secret
 * or PHI in the clear). */
void pa_sha256_hex(const char *s, char out[65]);

/* Milliseconds since the epoch, wall clock. */
int64_t pa_now_ms(void);

/* Milliseconds (and microseconds) from a monotonic clock, for durations. */
int64_t pa_mono_ms(void);
int64_t pa_mono_us(void);

/* "2026-11-22T11:30:00.123Z" (FHIR instant, UTC); out must hold 32 bytes. */
void pa_instant_format(int64_t ms, char out[32]);

/* Parses a FHIR instant (date, time and zone all required; fraction optional)
 * into milliseconds since the epoch.  Returns 0 or PA_EINVAL. */
int pa_parse_instant(const char *s, int64_t *ms);

/* PostgreSQL's epoch (2000-01-01T00:00:00Z) in Unix seconds. */
#define PA_PG_EPOCH_SECS INT64_C(946684800)

/* Parses a FHIR instant into the microseconds since PostgreSQL's epoch that
 * PostgreSQL itself reads from it as a timestamptz (the binary COPY form):
 * a leap second runs into the next minute, the fraction is rounded to the
 * microsecond.  Returns 0 or PA_EINVAL. */
int pa_instant_pg_micros(const char *s, int64_t *us);

/* Parses a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD, a real calendar day of
 * the years 0001 to 9999); *m and *d are 0 where the precision stops.
 * Returns 0 or PA_EINVAL. */
int pa_parse_date(const char *s, int *y, int *m, int *d);

/* Days in month m (1 to 12) of year y; 0 for another m. */
int pa_days_in_month(int y, int m);

/* Parses days (YYYY-MM-DD, separated by spaces or commas) into out as
 * YYYYMMDD numbers, at most max of them (out may be NULL to only check).
 * Returns how many, or -1 if one is not a real calendar day or there are
 * more than max (when out is given). */
long pa_parse_day_list(const char *s, long *out, size_t max);

/* True if tz is "UTC" or a time zone the system's zoneinfo has
 * (America/New_York): a name glibc would silently take for UTC is refused. */
int pa_timezone_known(const char *tz);

/*
 * The deadline of the one-business-day rule for a request made at t, in the
 * local time zone (TZ; set it and call tzset() first): the same clock time on
 * the next business day (Monday to Friday, not among the n holidays, as
 * YYYYMMDD), or, for a request made on a day that is not a business day, the
 * end of the next business day.
 */
time_t pa_business_deadline(time_t t, const long *holidays, size_t n);

/* Length of the well-formed UTF-8 sequence at s (n bytes available): 1 to
 * 4, or 0 if there is none (a stray, overlong or surrogate byte). */
size_t pa_utf8_seq(const char *s, size_t n);

/* True if s[0..n) is well-formed UTF-8 without a NUL byte. */
int pa_utf8_valid(const char *s, size_t n);

/* Replaces in s[0..n) every byte that is not part of well-formed UTF-8, and
 * every control character, with '?': text from a request made safe for a
 * log line or a stored record.  Returns how many were replaced. */
size_t pa_utf8_scrub(char *s, size_t n);

/* Copies at most size-1 bytes and always terminates; returns PA_ETOOBIG if
 * cut, and then cuts before a character, never inside one. */
int pa_strlcpy(char *dst, const char *src, size_t size);

/* Parses a base-10 long with no trailing garbage; PA_EINVAL otherwise. */
int pa_parse_long(const char *s, long *out);

#endif
