/*
 * Walking JSON text in place (see pa_json.h): a strict RFC 8259 scanner.
 */
#include "pa_json.h"
#include "pa_util.h"

#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX 256

struct scan {
    const char *start, *p, *end;
    const char *why; /* the first thing found wrong */
    int stopped;     /* what a visitor returned to stop the walk */
    /* pa_json_tape: the nodes, and the name of the member whose value is
     * scanned next (key_len 0: none) */
    pa_json_tape *tape;
    size_t key_at, key_len;
    int escaped; /* the last string scanned had an escape */
};

static int fail(struct scan *s, const char *why)
{
    if(!s->why)
        s->why = why;
    return -1;
}

static void ws(struct scan *s)
{
    const char *from = s->p;

    while(s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
    if(s->tape && s->p > from)
        s->tape->spaced = 1;
}

/* Appends bytes to out (size) at *n; sets *full when they do not fit. */
static void put(char *out, size_t size, size_t *n, const char *bytes, size_t len, int *full)
{
    if(!out || *full)
        return;
    if(*n + len >= size) {
        *full = 1;
        return;
    }
    memcpy(out + *n, bytes, len);
    *n += len;
}

static void put_cp(char *out, size_t size, size_t *n, unsigned cp, int *full)
{
    char b[4];
    size_t len;

    if(cp < 0x80) {
        b[0] = (char)cp;
        len = 1;
    }
    else if(cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        len = 2;
    }
    else if(cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        len = 3;
    }
    else {
        b[0] = (char)(0xF0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        len = 4;
    }
    put(out, size, n, b, len, full);
}

static int hex4(struct scan *s, unsigned *cp)
{
    int i;

    *cp = 0;
    if(s->end - s->p < 4)
        return -1;
    for(i = 0; i < 4; i++) {
        char c = *s->p++;

        *cp <<= 4;
        if(c >= '0' && c <= '9')
            *cp |= (unsigned)(c - '0');
        else if(c >= 'a' && c <= 'f')
            *cp |= (unsigned)(c - 'a' + 10);
        else if(c >= 'A' && c <= 'F')
            *cp |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    return 0;
}

/* The string at s->p (its opening quote), decoded into out if not NULL;
 * *full set when it did not fit. */
static int scan_string(struct scan *s, char *out, size_t size, int *full)
{
    size_t n = 0;

    *full = 0;
    s->escaped = 0;
    s->p++;
    while(s->p < s->end) {
        unsigned char c = (unsigned char)*s->p;

        if(c == '"') {
            s->p++;
            if(out)
                out[n] = '\0';
            return 0;
        }
        if(c < 0x20)
            return fail(s, "a control character in a string");
        if(c == '\\') {
            unsigned cp;

            s->escaped = 1;
            if(++s->p >= s->end)
                break;
            switch(*s->p++) {
            case '"': cp = '"'; break;
            case '\\': cp = '\\'; break;
            case '/': cp = '/'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u':
                if(hex4(s, &cp))
                    return fail(s, "a bad \\u escape");
                /* no FHIR string holds one, and C strings end at it */
                if(cp == 0)
                    return fail(s, "a \\u0000 (NUL) in a string");
                if(cp >= 0xDC00 && cp <= 0xDFFF)
                    return fail(s, "a lone low surrogate");
                if(cp >= 0xD800 && cp <= 0xDBFF) {
                    unsigned lo;

                    if(s->end - s->p < 2 || s->p[0] != '\\' || s->p[1] != 'u')
                        return fail(s, "a lone high surrogate");
                    s->p += 2;
                    if(hex4(s, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                        return fail(s, "a lone high surrogate");
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                break;
            default: return fail(s, "a bad escape");
            }
            put_cp(out, size, &n, cp, full);
            continue;
        }
        if(c < 0x80) {
            put(out, size, &n, s->p, 1, full);
            s->p++;
            continue;
        }
        {
            int len = (int)pa_utf8_seq(s->p, (size_t)(s->end - s->p));

            if(!len)
                return fail(s, "text that is not UTF-8");
            put(out, size, &n, s->p, (size_t)len, full);
            s->p += len;
        }
    }
    return fail(s, "an unterminated string");
}

static int digits(struct scan *s)
{
    const char *from = s->p;

    while(s->p < s->end && *s->p >= '0' && *s->p <= '9')
        s->p++;
    return s->p > from ? 0 : -1;
}

static int scan_number(struct scan *s)
{
    if(*s->p == '-')
        s->p++;
    if(s->p < s->end && *s->p == '0')
        s->p++;
    else if(digits(s))
        return fail(s, "a bad number");
    if(s->p < s->end && *s->p == '.') {
        s->p++;
        if(digits(s))
            return fail(s, "a bad number");
    }
    if(s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if(s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if(digits(s))
            return fail(s, "a bad number");
    }
    return 0;
}

static int scan_literal(struct scan *s, const char *word)
{
    size_t n = strlen(word);

    if((size_t)(s->end - s->p) < n || memcmp(s->p, word, n))
        return fail(s, "a value expected");
    s->p += n;
    return 0;
}

static int scan_value(struct scan *s, int depth, pa_json_visit visit, void *ctx);
static int scan_node(struct scan *s, int depth);

/* The object or array at s->p; visit, if set, sees its members or elements. */
static int scan_container(struct scan *s, int depth, pa_json_visit visit, void *ctx)
{
    int is_object = *s->p == '{';
    char close = is_object ? '}' : ']';
    char key[KEY_MAX];
    int full;

    if(depth > PA_JSON_MAX_DEPTH)
        return fail(s, "nesting too deep");
    s->p++;
    ws(s);
    if(s->p < s->end && *s->p == close) {
        s->p++;
        return 0;
    }
    for(;;) {
        const char *value;

        if(is_object) {
            if(s->p >= s->end || *s->p != '"')
                return fail(s, "a member name expected");
            s->key_at = (size_t)(s->p - s->start);
            if(scan_string(s, visit ? key : NULL, sizeof(key), &full))
                return -1;
            s->key_len = (size_t)(s->p - s->start) - s->key_at;
            if(s->tape && s->escaped)
                s->tape->odd_keys = 1;
            ws(s);
            if(s->p >= s->end || *s->p != ':')
                return fail(s, "':' expected");
            s->p++;
            ws(s);
        }
        value = s->p;
        if(s->tape) {
            if(!is_object)
                s->key_len = 0;
            if(scan_node(s, depth))
                return -1;
        }
        else if(scan_value(s, depth, NULL, NULL)) {
            return -1;
        }
        if(visit)
            s->stopped = visit(is_object ? key : NULL, value, (size_t)(s->p - value), ctx);
        if(s->stopped)
            return -1;
        ws(s);
        if(s->p < s->end && *s->p == ',') {
            s->p++;
            ws(s);
            continue;
        }
        if(s->p < s->end && *s->p == close) {
            s->p++;
            return 0;
        }
        return fail(s, is_object ? "',' or '}' expected" : "',' or ']' expected");
    }
}

/* In a tape: whether object i names a key twice (by the key's bytes: a key
 * with an escape marks the tape odd_keys instead). */
static int twice(const pa_json_tape *t, const char *text, size_t i)
{
    size_t a, b;

    for(a = i + 1; a < t->n[i].end; a = t->n[a].end)
        for(b = t->n[a].end; b < t->n[i].end; b = t->n[b].end)
            if(t->n[a].key_len == t->n[b].key_len && !memcmp(text + t->n[a].key, text + t->n[b].key, t->n[a].key_len))
                return 1;
    return 0;
}

/* scan_value, noting the value as a node of the tape. */
static int scan_node(struct scan *s, int depth)
{
    pa_json_tape *t = s->tape;
    pa_json_node *n;
    size_t i = t->count;

    ws(s);
    if(t->count == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        pa_json_node *more = cap > UINT32_MAX ? NULL : realloc(t->n, cap * sizeof(*more));

        if(!more) {
            t->oom = 1;
            return fail(s, "out of memory");
        }
        t->n = more;
        t->cap = cap;
    }
    n = &t->n[t->count++];
    n->at = (uint32_t)(s->p - s->start);
    n->key = (uint32_t)s->key_at;
    n->key_len = (uint32_t)s->key_len;
    n->type = s->p < s->end ? *s->p : 0;
    if(n->type == '-' || (n->type >= '0' && n->type <= '9'))
        n->type = '0';
    s->key_len = 0;
    if(scan_value(s, depth, NULL, NULL))
        return -1;
    /* (the array may have moved) */
    n = &t->n[i];
    n->len = (uint32_t)(s->p - s->start) - n->at;
    n->end = (uint32_t)t->count;
    n->plain = n->type == '"' && !s->escaped;
    if(n->type == '{' && !t->dup_keys && twice(t, s->start, i))
        t->dup_keys = 1;
    return 0;
}

static int scan_value(struct scan *s, int depth, pa_json_visit visit, void *ctx)
{
    int full;

    ws(s);
    if(s->p >= s->end)
        return fail(s, "a value expected");
    switch(*s->p) {
    case '{':
    case '[': return scan_container(s, depth + 1, visit, ctx);
    case '"': return scan_string(s, NULL, 0, &full);
    case 't': return scan_literal(s, "true");
    case 'f': return scan_literal(s, "false");
    case 'n': return scan_literal(s, "null");
    default:
        if(*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
            return scan_number(s);
        return fail(s, "a value expected");
    }
}

/* The outcome of a scan of a whole text: 0, or what was wrong in err. */
static int scanned(struct scan *s, int rc, pa_err *err)
{
    if(rc == 0) {
        ws(s);
        if(s->p == s->end)
            return 0;
        fail(s, "text after the value");
    }
    if(s->stopped)
        return s->stopped;
    if(s->tape && s->tape->oom)
        return pa_err_set(err, PA_ENOMEM, "out of memory");
    if(s->p >= s->end && (!s->why || strcmp(s->why, "text after the value")))
        return pa_err_set(err, PA_EINVAL, "not valid JSON: the text ends before the JSON does");
    return pa_err_set(err, PA_EINVAL, "not valid JSON: %s at byte %zu", s->why ? s->why : "an error",
                      (size_t)(s->p - s->start));
}

int pa_json_walk(const char *text, size_t len, pa_json_visit visit, void *ctx, pa_err *err)
{
    struct scan s = { text, text, text + len, NULL, 0, NULL, 0, 0, 0 };

    return scanned(&s, scan_value(&s, 0, visit, ctx), err);
}

int pa_json_tape_parse(const char *text, size_t len, pa_json_tape *t, pa_err *err)
{
    struct scan s = { text, text, text + len, NULL, 0, t, 0, 0, 0 };

    t->count = 0;
    t->spaced = t->dup_keys = t->odd_keys = t->oom = 0;
    if(len > UINT32_MAX)
        return pa_err_set(err, PA_ETOOBIG, "a JSON text over 4 GB");
    return scanned(&s, scan_node(&s, 0), err);
}

void pa_json_tape_free(pa_json_tape *t)
{
    if(!t)
        return;
    free(t->n);
    memset(t, 0, sizeof(*t));
}

size_t pa_json_member(const pa_json_tape *t, const char *text, size_t i, const char *key)
{
    size_t c, found = 0, n = strlen(key);

    if(i >= t->count || t->n[i].type != '{')
        return 0;
    /* the last of that name, as json-c keeps it */
    for(c = i + 1; c < t->n[i].end; c = t->n[c].end)
        if(t->n[c].key_len == n + 2 && !memcmp(text + t->n[c].key + 1, key, n))
            found = c;
    return found;
}

int pa_json_node_string(const pa_json_tape *t, const char *text, size_t i, char *out, size_t size)
{
    const pa_json_node *n;

    if(i == 0 || i >= t->count || t->n[i].type != '"' || !size)
        return -1;
    n = &t->n[i];
    if(n->plain) {
        if(n->len - 2 >= size)
            return -2;
        memcpy(out, text + n->at + 1, n->len - 2);
        out[n->len - 2] = '\0';
        return 0;
    }
    return pa_json_string(text + n->at, n->len, out, size) ? -2 : 0;
}

int pa_json_prefix(const char *text, size_t len)
{
    struct scan s = { text, text, text + len, NULL, 0, NULL, 0, 0, 0 };

    if(scan_value(&s, 0, NULL, NULL) == 0)
        return 0;
    return s.p >= s.end && !s.stopped;
}

int pa_json_string(const char *value, size_t len, char *out, size_t size)
{
    struct scan s = { value, value, value + len, NULL, 0, NULL, 0, 0, 0 };
    int full;

    if(!len || *value != '"' || !size || scan_string(&s, out, size, &full) || full || s.p != s.end)
        return -1;
    return 0;
}

int pa_json_parse(const char *text, size_t len, json_object **out, pa_err *err)
{
    json_tokener *tok;
    json_object *o = NULL;
    int rc, ok;

    *out = NULL;
    if(len > (size_t)0x7fffffff)
        return pa_err_set(err, PA_ETOOBIG, "a JSON text over 2 GB");
    rc = pa_json_walk(text, len, NULL, NULL, err);
    if(rc)
        return rc;
    tok = json_tokener_new_ex(PA_JSON_MAX_DEPTH + 1);
    if(!tok)
        return pa_err_set(err, PA_ENOMEM, "out of memory");
    o = json_tokener_parse_ex(tok, text, (int)len);
    /* a bare number at the very end is not known to be whole until json-c
     * sees what follows it: the end of the text */
    if(!o && json_tokener_get_error(tok) == json_tokener_continue && json_tokener_get_parse_end(tok) == len)
        o = json_tokener_parse_ex(tok, "", 1);
    /* (a JSON null is a NULL object: success says whether it parsed) */
    ok = json_tokener_get_error(tok) == json_tokener_success;
    json_tokener_free(tok);
    if(!ok) {
        json_object_put(o);
        return pa_err_set(err, PA_EINVAL, "not valid JSON");
    }
    *out = o;
    return PA_OK;
}

const char *pa_json_str(json_object *o, const char *key)
{
    json_object *v;

    return o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

json_object *pa_json_get(json_object *o, const char *key)
{
    json_object *v;

    return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}
