/*
 * pa-admin's commands share: the configuration, a database connection with
 * the schema checked, and the conventions of output (tab-separated lists with
 * a header unless --no-header; errors on stderr; non-zero exit on failure).
 */
#ifndef PA_ADMIN_H
#define PA_ADMIN_H

#include <libpq-fe.h>
#include <stdio.h>

#include "pa_config.h"

/* The configuration file's path: --config, $PA_CONFIG or the default. */
const char *admin_config_path(void);

/* Loads the configuration (--config, $PA_CONFIG or the default); prints why not. */
int admin_config(pa_config **cfg);

/* Loads the configuration and connects with the schema checked; prints why not. */
int admin_connect(pa_config **cfg, PGconn **db);

/* pa-admin check [--config-only]: one line per component; 0 when all work. */
int cmd_check(int argc, char **argv);

/* pa-admin setup ... (admin/setup.c): database, configuration, Apache, runner. */
int cmd_setup(int argc, char **argv);

/* pa-admin migrate [--sql-dir DIR] (admin/migrate.c) */
int cmd_migrate(int argc, char **argv);

/* The SQL folder: given, else $PA_SQL_DIR, else the installed one. */
const char *admin_sql_dir(const char *given);

/* Compares the checksums of the migrations the database applied with the
 * files of the SQL folder (dir, or admin_sql_dir's); says on stderr which
 * differ.  0 when all match (or, said as a warning on stdout, when there is
 * no SQL folder to compare with), the number that differ (or 1 when the
 * database keeps no checksums yet), -1 on error. */
int admin_migrations_verify(PGconn *db, const char *dir);

/* pa-admin load FILE|DIR...: exit 0 when all loaded, 1 when some was rejected, 2 on failure. */
int cmd_load(int argc, char **argv);

/* pa-admin sync SOURCE (admin/sync.c): a Bulk Data export of a FHIR server, loaded. */
int cmd_sync(int argc, char **argv);

/* pa-admin member|provider ...: lists. */
int cmd_member(int argc, char **argv);
int cmd_provider(int argc, char **argv);

/* pa-admin delete Type/id...: removes resources, leaving tombstones. */
int cmd_delete(int argc, char **argv);

/* pa-admin client ... and pa-admin audit */
int cmd_client(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_downloads(int argc, char **argv);

/* pa-admin disclosures: who received what about whom */
int cmd_disclosures(int argc, char **argv);

/* pa-admin report: the compliance report for a period */
int cmd_report(int argc, char **argv);

/* pa-admin roster ... */
int cmd_roster(int argc, char **argv);

/* pa-admin optout ... and pa-admin trl ... */
int cmd_optout(int argc, char **argv);
int cmd_trl(int argc, char **argv);

/* pa-admin synth --members N --seed S --out DIR */
int cmd_synth(int argc, char **argv);

/* Runs one statement; *rows (if given) how many rows it touched or returned;
 * prints why not.  The exit status. */
int admin_exec(const char *sql, int n, const char *const *values, long *rows);

/* Revokes at once every access token of the clients a query names (its first
 * column); prints why not.  The exit status. */
int admin_revoke_tokens(const char *sql, int n, const char *const *values);

/* Runs a query and prints its rows (admin_print_rows); the exit status. */
int admin_list(const char *sql, int n, const char *const *values, int no_header);

/* Prints a query's rows tab-separated, with the column names first unless no_header. */
void admin_print_rows(PGresult *res, int no_header);

#endif
