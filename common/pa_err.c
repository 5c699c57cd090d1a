#include "pa_err.h"

#include <stdarg.h>
#include <stdio.h>

int pa_err_set(pa_err *err, int code, const char *fmt, ...)
{
    va_list ap;

    if(!err)
        return code;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

void pa_err_clear(pa_err *err)
{
    if(!err)
        return;
    err->code = PA_OK;
    err->msg[0] = '\0';
}

const char *pa_err_name(int code)
{
    switch(code) {
    case PA_OK: return "ok";
    case PA_ENOMEM: return "out of memory";
    case PA_EINVAL: return "invalid input";
    case PA_ETOOBIG: return "limit exceeded";
    case PA_ENOTFOUND: return "not found";
    case PA_EIO: return "file error";
    case PA_EREDIS: return "Redis error";
    case PA_EDB: return "database error";
    case PA_ECONFIG: return "configuration error";
    case PA_ESCHEMA: return "database schema too old";
    case PA_EBUSY: return "too many jobs";
    case PA_ESTATE: return "wrong state";
    case PA_ECANCELLED: return "cancelled";
    case PA_ESTOPPED: return "stopped";
    case PA_EDBQUERY: return "database refused a statement";
    case PA_ENOTSUP: return "not supported";
    default: return "unknown error";
    }
}
