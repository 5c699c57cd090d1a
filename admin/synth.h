/*
 * pa-admin synth's Bundle form (synth_bundle.c): the resources synth.c
 * writes, gathered into transaction Bundles shaped as Synthea's R4 output.
 */
#ifndef PA_SYNTH_H
#define PA_SYNTH_H

#include <json-c/json.h>

enum synth_bundle { SB_MEMBER, SB_HOSPITAL, SB_PRACTITIONER };

struct synth_bundles;

/* Starts the Bundles of the folder dir; -1 when out of memory. */
int synth_bundles_open(struct synth_bundles **b, const char *dir);

/* Adds one resource (an NDJSON line) to the member's Bundle or a shared one. */
int synth_bundles_add(struct synth_bundles *b, const char *line, enum synth_bundle which);

/* Writes the member's Bundle (dir/ID.json) and starts the next; -1 on a
 * write error.  The shared resources are all added before the first. */
int synth_bundles_end_member(struct synth_bundles *b, const char *member_id);

/* Writes the shared Bundles (when write) and frees b; -1 on a write error. */
int synth_bundles_close(struct synth_bundles *b, int write);

#endif
