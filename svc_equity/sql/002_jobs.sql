-- SPDX-License-Identifier: MIT
-- Background jobs of this service's queue: lib/jobs.c creates them (state QUEUED) and
-- answers GetJob; svc_worker runs them.  The row is the source of truth for a job's state,
-- so it survives a Redis flush.  The same file is svc_equity/sql/002_jobs.sql,
-- svc_fixed_income/sql/002_jobs.sql and svc_portfolio/sql/002_jobs.sql: each service's
-- database holds the jobs of its own queue (lib/include/fsr/jobs.h).
--
-- Lifecycle: QUEUED -> RUNNING -> SUCCEEDED, or RUNNING -> FAILED (a retry is due at
-- next_run_at) -> RUNNING ..., and DEAD once max_attempts attempts have failed.  attempts
-- counts attempts started; a worker only finishes an attempt whose number it started (the
-- fencing token), inside the one transaction that also applies the job's effects.
CREATE TABLE jobs (
    id           uuid PRIMARY KEY,  -- names its queue: see fsr_job_id_new()
    queue        text NOT NULL CHECK (queue IN ('equity', 'fixed_income', 'portfolio')),
    type         text COLLATE "C" NOT NULL CHECK (type ~ '^[a-z0-9_.-]{1,63}$'),
    state        text NOT NULL DEFAULT 'QUEUED'
                 CHECK (state IN ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'DEAD')),
    payload      bytea NOT NULL DEFAULT '' CHECK (length(payload) <= 1024),
    attempts     integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts integer NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 100),
    request_id   text,              -- of the API call that created it (log correlation)
    worker       text,              -- the consumer that ran the latest attempt
    lease_until  timestamptz,       -- RUNNING: the attempt is presumed alive until then
    next_run_at  timestamptz,       -- FAILED: when the retry is due
    published_at timestamptz NOT NULL DEFAULT now(),  -- envelope last put on the stream
    result       jsonb CHECK (result IS NULL OR jsonb_typeof(result) = 'object'),
    error        text,              -- the last attempt's error (client-safe text)
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,       -- the latest attempt's start
    finished_at  timestamptz,       -- SUCCEEDED or DEAD
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT jobs_finished_check
        CHECK ((finished_at IS NULL) = (state IN ('QUEUED', 'RUNNING', 'FAILED')))
) WITH (fillfactor = 80);

-- The workers' requeue sweep looks only at unfinished jobs; finished ones cost it nothing.
-- The predicate is on finished_at, not state, on purpose: the workers' per-job statements
-- (by id, filtered on state) can never pick this index over the primary key, and starting
-- or retrying a job leaves every indexed column as it was, so those updates stay HOT
-- (fillfactor 80 leaves the room); only reaching SUCCEEDED or DEAD touches an index.
CREATE INDEX jobs_unfinished_idx ON jobs (published_at) WHERE finished_at IS NULL;
