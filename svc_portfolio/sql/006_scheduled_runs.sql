-- SPDX-License-Identifier: MIT
-- The workers' daily schedule (svc_worker/scheduler.c): one row per run of a scheduled job
-- type, inserted in the same transaction as the job's row (jobs, 002_jobs.sql).  The
-- primary key is the guard that makes a day's run happen at most once whatever Redis does:
-- the replica whose INSERT loses the race (or runs after a Redis flush dropped the lock)
-- inserts nothing, rolls back and creates no job.  The same file is
-- svc_equity/sql/006_scheduled_runs.sql, svc_fixed_income/sql/006_scheduled_runs.sql and
-- svc_portfolio/sql/006_scheduled_runs.sql: each service's database holds the runs of its
-- own queue.
CREATE TABLE scheduled_runs (
    schedule_name text COLLATE "C" NOT NULL CHECK (schedule_name ~ '^[a-z0-9_.-]{1,63}$'),
    run_date      date NOT NULL,     -- the UTC day the run is for
    -- 0 for daily entries (one run per day, whatever the time of day is set to); entries
    -- with a sub-daily interval (a test hook) use the second of the day their period starts.
    slot          integer NOT NULL DEFAULT 0 CHECK (slot BETWEEN 0 AND 86399),
    due_at        timestamptz NOT NULL,  -- when the run was due (catch-ups run later)
    job_id        uuid NOT NULL,         -- the job enqueued for it (jobs.id)
    job_type      text COLLATE "C" NOT NULL,
    enqueued_by   text NOT NULL,         -- the worker (consumer name) that enqueued it
    enqueued_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schedule_name, run_date, slot)
);
