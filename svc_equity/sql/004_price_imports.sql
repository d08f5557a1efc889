-- SPDX-License-Identifier: MIT
-- CSV price imports (POST /imports/prices): the file as uploaded, keyed by the job that
-- imports it (svc_worker, job type equity.import_prices).  ImportPrices inserts this row and
-- the job's row in one transaction, so a job never exists without its file nor a file
-- without its job; the outcome (accepted rows, every rejected line with its reason) is the
-- job's result, read with GET /jobs/{id}.  Deleting the job deletes the file.
CREATE TABLE price_imports (
    job_id     uuid PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    -- Resolves symbols listed on several exchanges; NULL when the request gave none.
    exchange   text COLLATE "C" CHECK (exchange <> ''),
    csv        text NOT NULL,
    bytes      integer NOT NULL CHECK (bytes >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
);
