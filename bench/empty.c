/*
 * The front end's baseline in bench/run: a FastCGI responder that does
 * nothing but answer, run by the benchmark's Apache under the same mod_fcgid
 * as the API.  Every API request pays for that hop (Apache, mod_fcgid, the
 * socket to a responder process); what a request costs beyond it is ours.
 *
 * GET /empty?n=N answers 200 with N bytes of body (at most 65,536), so that
 * it can stand beside an API answer of the same size.
 */
#include <fcgiapp.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BODY 65536

int main(void)
{
    static char body[MAX_BODY];
    FCGX_Request req;

    memset(body, 'x', sizeof(body));
    if(FCGX_Init() != 0 || FCGX_InitRequest(&req, 0, 0) != 0)
        return 1;
    while(FCGX_Accept_r(&req) == 0) {
        const char *query = FCGX_GetParam("QUERY_STRING", req.envp);
        long n = query && !strncmp(query, "n=", 2) ? strtol(query + 2, NULL, 10) : 0;

        if(n < 0 || n > MAX_BODY)
            n = 0;
        FCGX_FPrintF(req.out, "Status: 200 OK\r\nContent-Type: application/fhir+json\r\nContent-Length: %ld\r\n\r\n",
                     n);
        FCGX_PutStr(body, (int)n, req.out);
        FCGX_Finish_r(&req);
    }
    return 0;
}
