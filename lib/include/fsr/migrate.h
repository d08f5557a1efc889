/* SPDX-License-Identifier: MIT */
/* Versioned SQL migrations, applied at startup (blocking, before serving). */
#ifndef FSR_MIGRATE_H
#define FSR_MIGRATE_H

#include <stddef.h>

/*
 * One migration: the contents of sql/NNN_name.sql.  Services embed their files at build
 * time with scripts/embed_sql.py, which defines `const fsr_migration <sym>[]` sorted by
 * version and `const size_t <sym>_count`; declare them with FSR_MIGRATIONS_DECLARE(sym).
 *
 * |sql| may hold several statements but no transaction control (BEGIN/COMMIT) and nothing
 * that refuses to run in a transaction block (CREATE INDEX CONCURRENTLY, VACUUM).  Once a
 * version has shipped its file never changes: fix mistakes with a new version.
 */
typedef struct fsr_migration {
    int version; /* > 0, strictly increasing through the array */
    const char *name;
    const char *sql;
    /*
     * SHA-256 of |sql| in lowercase hex, computed at build time by scripts/embed_sql.py, or
     * NULL to have it computed at startup.  Precomputing keeps OpenSSL's digest machinery
     * (about 2 MiB of resident pages once initialised) out of every service process.
     */
    const char *checksum;
} fsr_migration;

#define FSR_MIGRATIONS_DECLARE(sym)                                                                \
    extern const fsr_migration sym[];                                                              \
    extern const size_t sym##_count

/*
 * Brings the database at |conninfo| up to date with |m|[0..|n|): creates the table
 *
 *   schema_migrations(version int PRIMARY KEY, name text, checksum text, applied_at timestamptz)
 *
 * if missing (in the first schema of the search_path), then applies each migration not yet
 * recorded there in version order, each in ONE transaction together with its
 * schema_migrations row.  Every transaction first takes a transaction-scoped advisory lock
 * (pg_advisory_xact_lock) and re-reads the table, so replicas starting at the same time
 * apply each migration exactly once.  Re-running with nothing new is a no-op.
 *
 * Before applying anything it compares the SHA-256 (hex) of every embedded migration with
 * the checksum recorded when it was applied, and refuses to proceed on a mismatch.  Applied
 * versions the binary does not know (a newer schema) are logged and tolerated.
 *
 * Blocking (PQconnectdb/PQexec): call it at startup, before serving.  On failure |err|
 * (may be NULL) gets a message naming the version.  Returns 0, or one of:
 *   -EINVAL       |conninfo| is NULL, or |m| is NULL while |n| > 0
 *   FSR_E_CONFIG  versions not > 0 and strictly increasing, a NULL name or sql, or an
 *                 applied migration whose checksum changed
 *   FSR_E_CLOSED  cannot connect, or the connection was lost
 *   FSR_E_DB      (or another fsr_pg_err_from_sqlstate() code) a migration failed; it was
 *                 rolled back and the ones before it stay applied
 */
int fsr_migrate(const char *conninfo, const fsr_migration *m, size_t n, char *err, size_t errlen);

/* The lowercase hex SHA-256 of |sql| into |hex| (65 bytes with the NUL).  Returns 0 or -EIO. */
int fsr_migration_checksum(const char *sql, char hex[65]);

#endif /* FSR_MIGRATE_H */
