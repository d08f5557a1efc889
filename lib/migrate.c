/* SPDX-License-Identifier: MIT */
/* Versioned SQL migrations: one transaction each, serialised by an advisory lock. */
#include "fsr/migrate.h"
#include "fsr/log.h"
#include "fsr/pg.h"
#include "fsr/status.h"

#include <libpq-fe.h>
#include <openssl/evp.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Why one transaction per migration, each under pg_advisory_xact_lock: PostgreSQL has
 * transactional DDL, so a migration and its schema_migrations row commit together or not at
 * all, and a crash mid-way leaves nothing half-applied.  The lock is taken as the first
 * statement of every transaction and released by its COMMIT/ROLLBACK, so it can never leak
 * with a broken connection; because the table is re-read after the lock is held, a replica
 * that lost the race sees the winner's row and skips the migration.  Advisory lock keys are
 * scoped to the database, so services with separate databases never contend.
 *
 * CREATE TABLE IF NOT EXISTS is not safe against a concurrent creator (both can pass the
 * existence check), which is why even the bootstrap runs under the lock.
 */

/* An arbitrary constant key: it only has to be the same in every replica. */
#define MIGRATE_LOCK_SQL "SELECT pg_advisory_xact_lock(7370707117760419)"

#define CREATE_TABLE_SQL                                                                           \
    "CREATE TABLE IF NOT EXISTS schema_migrations ("                                               \
    " version integer PRIMARY KEY,"                                                                \
    " name text NOT NULL,"                                                                         \
    " checksum text NOT NULL,"                                                                     \
    " applied_at timestamptz NOT NULL DEFAULT now())"

static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int fsr_migration_checksum(const char *sql, char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(sql, strlen(sql), md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        return -EIO;
    static const char digits[] = "0123456789abcdef";
    for (unsigned int i = 0; i < mdlen; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
    return 0;
}

/* Runs |sql|; on failure rolls back (ignoring errors) and formats |what| into |err|. */
static int run(PGconn *c, const char *sql, int nparams, const char *const *values, PGresult **out,
               const char *what, char *err, size_t errlen)
{
    char msg[512];
    int rv = fsr_pg_sync_exec(c, sql, nparams, values, out, msg, sizeof msg);
    if (rv != 0) {
        errf(err, errlen, "%s: %s", what, msg);
        PQclear(PQexec(c, "ROLLBACK"));
    }
    return rv;
}

static int validate(const fsr_migration *m, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        if (m[i].version <= 0 || m[i].name == NULL || m[i].sql == NULL) {
            errf(err, errlen, "migration #%zu: version must be > 0 with a name and sql", i);
            return FSR_E_CONFIG;
        }
        if (i > 0 && m[i].version <= m[i - 1].version) {
            errf(err, errlen, "migration %d: versions must be strictly increasing (after %d)",
                 m[i].version, m[i - 1].version);
            return FSR_E_CONFIG;
        }
    }
    return 0;
}

/* The checksum of |mi|: embedded at build time, else computed now. */
static int checksum_of(const fsr_migration *mi, char hex[65])
{
    if (mi->checksum != NULL && strlen(mi->checksum) == 64) {
        memcpy(hex, mi->checksum, 65);
        return 0;
    }
    return fsr_migration_checksum(mi->sql, hex);
}

/* Compares every applied migration the binary knows with its embedded checksum. */
static int verify(PGconn *c, const fsr_migration *m, size_t n, char *err, size_t errlen)
{
    PGresult *res;
    int rv = run(c, "SELECT version, name, checksum FROM schema_migrations ORDER BY version", 0,
                 NULL, &res, "reading schema_migrations", err, errlen);
    if (rv != 0)
        return rv;
    for (int row = 0; row < PQntuples(res) && rv == 0; row++) {
        int version = atoi(PQgetvalue(res, row, 0));
        const fsr_migration *mi = NULL;
        for (size_t i = 0; i < n && mi == NULL; i++)
            if (m[i].version == version)
                mi = &m[i];
        if (mi == NULL) {
            FSR_WARN("migrate: database has migration %d (%s) unknown to this binary", version,
                     PQgetvalue(res, row, 1));
            continue;
        }
        char hex[65];
        if (checksum_of(mi, hex) != 0) {
            errf(err, errlen, "migration %d: cannot compute checksum", version);
            rv = -EIO;
        } else if (strcmp(hex, PQgetvalue(res, row, 2)) != 0) {
            errf(err, errlen,
                 "migration %d (%s) was changed after it was applied (checksum %.12s..., "
                 "applied %.12s...): add a new migration instead",
                 version, mi->name, hex, PQgetvalue(res, row, 2));
            rv = FSR_E_CONFIG;
        }
    }
    PQclear(res);
    return rv;
}

/* Applies |mi| unless another process already did; one transaction. */
static int apply_one(PGconn *c, const fsr_migration *mi, int *applied, char *err, size_t errlen)
{
    char what[160], version[16], hex[65];
    snprintf(what, sizeof what, "migration %d (%s)", mi->version, mi->name);
    snprintf(version, sizeof version, "%d", mi->version);
    if (checksum_of(mi, hex) != 0) {
        errf(err, errlen, "%s: cannot compute checksum", what);
        return -EIO;
    }
    int rv;
    if ((rv = run(c, "BEGIN", 0, NULL, NULL, what, err, errlen)) != 0 ||
        (rv = run(c, MIGRATE_LOCK_SQL, 0, NULL, NULL, what, err, errlen)) != 0)
        return rv;
    PGresult *res;
    const char *v1[] = { version };
    rv = run(c, "SELECT checksum FROM schema_migrations WHERE version = $1::int", 1, v1, &res, what,
             err, errlen);
    if (rv != 0)
        return rv;
    if (PQntuples(res) > 0) {
        // Applied meanwhile by another replica: check it is the same migration.
        bool same = strcmp(PQgetvalue(res, 0, 0), hex) == 0;
        PQclear(res);
        PQclear(PQexec(c, "ROLLBACK"));
        if (!same) {
            errf(err, errlen, "%s was applied by another process with a different checksum", what);
            return FSR_E_CONFIG;
        }
        return 0;
    }
    PQclear(res);
    // PQexec: a migration file may hold several statements.
    if ((rv = run(c, mi->sql, 0, NULL, NULL, what, err, errlen)) != 0)
        return rv;
    const char *v3[] = { version, mi->name, hex };
    if ((rv = run(
             c, "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1::int, $2, $3)",
             3, v3, NULL, what, err, errlen)) != 0 ||
        (rv = run(c, "COMMIT", 0, NULL, NULL, what, err, errlen)) != 0)
        return rv;
    FSR_INFO("migrate: applied %s", what);
    (*applied)++;
    return 0;
}

int fsr_migrate(const char *conninfo, const fsr_migration *m, size_t n, char *err, size_t errlen)
{
    if (conninfo == NULL || (m == NULL && n > 0))
        return -EINVAL;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    int rv = validate(m, n, err, errlen);
    if (rv != 0)
        return rv;

    char msg[512];
    PGconn *c;
    rv = fsr_pg_sync_connect(conninfo, &c, msg, sizeof msg);
    if (rv != 0) {
        errf(err, errlen, "cannot connect: %s", msg);
        return rv;
    }
    // Bootstrap the bookkeeping table under the lock (see the note at the top).
    if ((rv = run(c, "BEGIN", 0, NULL, NULL, "bootstrap", err, errlen)) != 0 ||
        (rv = run(c, MIGRATE_LOCK_SQL, 0, NULL, NULL, "bootstrap", err, errlen)) != 0 ||
        (rv = run(c, CREATE_TABLE_SQL, 0, NULL, NULL, "creating schema_migrations", err, errlen)) !=
            0 ||
        (rv = run(c, "COMMIT", 0, NULL, NULL, "bootstrap", err, errlen)) != 0)
        goto out;
    // Refuse to touch a database whose history disagrees with this binary.
    if ((rv = verify(c, m, n, err, errlen)) != 0)
        goto out;
    int applied = 0;
    for (size_t i = 0; i < n && rv == 0; i++)
        rv = apply_one(c, &m[i], &applied, err, errlen);
    if (rv == 0)
        FSR_INFO("migrate: schema up to date (%zu known, %d applied now)", n, applied);
out:
    if (rv != 0)
        FSR_ERROR("migrate: %s", err && errlen ? err : "failed");
    fsr_pg_sync_close(c);
    return rv;
}
