/*
 * What a load tells its user: a progress line while it works, and at the
 * end counts per type and per reason, with the first few file:line examples
 * of each reason, instead of one line per refused resource.  Every report
 * goes in full to the --errors file when one is given.
 *
 * Reasons are grouped by their message with what varies from one resource
 * to the next taken out: the id after a "Type/", quoted values, numbers.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"
#include "pa_util.h"

#define PROGRESS_TTY_MS 200
#define PROGRESS_LOG_MS 10000
#define BAR_WIDTH 30

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');

    return slash ? slash + 1 : path;
}

/* The message's reason: ids after '/', quoted values and numbers replaced. */
static void reason_key(const char *msg, char *out, size_t size)
{
    size_t o = 0;
    const char *p = msg;

    while(*p && o + 4 < size) {
        if(*p == '/' && p[1] && strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.", p[1])) {
            out[o++] = '/';
            out[o++] = '*';
            p++;
            while(*p && strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.", *p))
                p++;
        }
        else if(*p == '\'') {
            const char *close = strchr(p + 1, '\'');

            if(!close)
                break;
            out[o++] = '\'';
            out[o++] = '*';
            out[o++] = '\'';
            p = close + 1;
        }
        else if(*p >= '0' && *p <= '9') {
            out[o++] = 'N';
            while(*p >= '0' && *p <= '9')
                p++;
        }
        else
            out[o++] = *p++;
    }
    out[o] = '\0';
}

/* Counts one report under key, keeping it as an example while there is room. */
static void tally(load_tally *t, const char *key, const char *example)
{
    int i;

    for(i = 0; i < t->n; i++)
        if(!strcmp(t->r[i].key, key))
            break;
    if(i == t->n) {
        if(t->n == LOAD_REASONS_MAX) {
            t->other++;
            return;
        }
        t->r[i].key = strdup(key);
        if(!t->r[i].key) {
            t->other++;
            return;
        }
        t->n++;
    }
    if(t->r[i].count < LOAD_EXAMPLES)
        t->r[i].examples[t->r[i].count] = strdup(example);
    t->r[i].count++;
}

static void clear_progress(load_ctx *l)
{
    if(l->progress_shown) {
        fprintf(stderr, "\r\033[K");
        l->progress_shown = 0;
    }
}

static void report(load_ctx *l, load_tally *t, const char *label, const char *file, long line, const char *fmt,
                   va_list ap)
{
    char msg[1024], key[512], example[1400];
    int at = 0;

    if(l->entry >= 0)
        at = snprintf(msg, sizeof(msg), "entry %ld: ", l->entry);
    vsnprintf(msg + at, sizeof(msg) - (size_t)at, fmt, ap);
    reason_key(msg, key, sizeof(key));
    snprintf(example, sizeof(example), "%s:%ld: %s", file, line, msg);
    tally(t, key, example);
    if(l->errors)
        fprintf(l->errors, "%s:%ld: %s%s\n", file, line, label, msg);
}

void load_report(load_ctx *l, const char *file, long line, const char *fmt, ...)
{
    va_list ap;

    l->rejected++;
    va_start(ap, fmt);
    report(l, &l->refused, "", file, line, fmt, ap);
    va_end(ap);
}

void load_warn(load_ctx *l, const char *file, long line, const char *fmt, ...)
{
    va_list ap;

    l->warnings++;
    va_start(ap, fmt);
    report(l, &l->warned, "warning: ", file, line, fmt, ap);
    va_end(ap);
}

void load_skip(load_ctx *l, const char *type, const char *file, long line)
{
    char example[1200];

    l->skipped++;
    if(l->entry >= 0)
        snprintf(example, sizeof(example), "%s:%ld entry %ld", file, line, l->entry);
    else
        snprintf(example, sizeof(example), "%s:%ld", file, line);
    tally(&l->skipped_types, type, example);
    if(l->errors)
        fprintf(l->errors, "%s: not stored: %s is not a type this server keeps\n", example, type);
}

void load_progress(load_ctx *l, const char *file, int final)
{
    int64_t now = pa_mono_ms();
    double secs = (double)(now - l->started) / 1000.0;
    double rate = secs > 0 ? (double)l->seen / secs : 0.0;
    long long done = l->bytes_done + l->bytes_current;
    int pct = l->bytes_total > 0 ? (int)(done * 100 / l->bytes_total) : 0;

    if(pct > 100)
        pct = 100;
    if(l->tty) {
        char bar[BAR_WIDTH + 1];
        int fill = pct * BAR_WIDTH / 100;

        if(!final && now - l->last_progress < PROGRESS_TTY_MS)
            return;
        memset(bar, '#', (size_t)fill);
        memset(bar + fill, '.', (size_t)(BAR_WIDTH - fill));
        bar[BAR_WIDTH] = '\0';
        fprintf(stderr, "\r\033[K[%s] %3d%%  %ld resources  %ld refused  %.0f/s  %s", bar, pct, l->seen, l->rejected,
                rate, base_name(file));
        l->progress_shown = 1;
    }
    else {
        if(final || now - l->last_progress < PROGRESS_LOG_MS)
            return;
        fprintf(stderr, "pa-admin load: %d%%, %ld resources, %ld refused, %.0f/s, %s\n", pct, l->seen, l->rejected,
                rate, file);
    }
    l->last_progress = now;
}

static void print_tally(FILE *out, const load_tally *t)
{
    int i, k;

    for(i = 0; i < t->n; i++) {
        fprintf(out, "  %8ld  %s\n", t->r[i].count, t->r[i].key);
        for(k = 0; k < LOAD_EXAMPLES && k < t->r[i].count; k++)
            if(t->r[i].examples[k])
                fprintf(out, "            %s\n", t->r[i].examples[k]);
    }
    if(t->other)
        fprintf(out, "  %8ld  for other reasons (see --errors FILE)\n", t->other);
}

void load_summary(load_ctx *l, FILE *out)
{
    const char *const *names = pa_fhir_type_names();
    double secs = (double)(pa_mono_ms() - l->started) / 1000.0;
    int i, any = 0;

    clear_progress(l);
    fprintf(out,
            "loaded %ld resources (%ld new, %ld updated, %ld unchanged), %ld deleted, %ld groups, "
            "%ld feed rows; %ld refused; %.1f s, %.0f resources/s\n",
            l->loaded, l->inserted, l->updated, l->unchanged, l->deleted, l->groups, l->feed_rows, l->rejected, secs,
            secs > 0 ? (double)l->loaded / secs : 0.0);
    for(i = 0; names[i]; i++) {
        if(!l->type_loaded[i])
            continue;
        fprintf(out, "%s%s %ld", any ? ", " : "  by type: ", names[i], l->type_loaded[i]);
        any = 1;
    }
    if(any)
        fputc('\n', out);
    if(l->skipped) {
        fprintf(out, "not stored: %ld of types this server does not keep:", l->skipped);
        for(i = 0; i < l->skipped_types.n; i++)
            fprintf(out, "%s %s %ld (%s)", i ? "," : "", l->skipped_types.r[i].key, l->skipped_types.r[i].count,
                    l->skipped_types.r[i].examples[0] ? l->skipped_types.r[i].examples[0] : "");
        fputc('\n', out);
    }
    if(l->warnings) {
        fprintf(out, "stored with warnings: %ld\n", l->warnings);
        print_tally(out, &l->warned);
    }
    if(l->rejected) {
        fprintf(out, "refused: %ld%s\n", l->rejected, l->errors ? "" : " (every one: pa-admin load --errors FILE)");
        print_tally(out, &l->refused);
    }
}

static void tally_free(load_tally *t)
{
    int i, k;

    for(i = 0; i < t->n; i++) {
        free(t->r[i].key);
        for(k = 0; k < LOAD_EXAMPLES; k++)
            free(t->r[i].examples[k]);
    }
    memset(t, 0, sizeof(*t));
}

void load_summary_free(load_ctx *l)
{
    if(!l)
        return;
    tally_free(&l->refused);
    tally_free(&l->warned);
    tally_free(&l->skipped_types);
}
