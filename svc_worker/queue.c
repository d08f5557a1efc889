/* SPDX-License-Identifier: MIT */
/* The queues a worker can serve: one per service, on that service's Postgres and Redis. */
#include "worker.h"

#include <string.h>

#include "fsr/mem.h"

static const wk_queue wk_queues[] = {
    { "equity", "worker-equity", "jobs:equity", "EQUITY", 9101, 5432, "equity", 6379,
      FSR_JOB_QUEUE_EQUITY },
    { "fixed_income", "worker-fixed-income", "jobs:fixed_income", "FI", 9102, 5433, "fixed_income",
      6380, FSR_JOB_QUEUE_FIXED_INCOME },
    { "portfolio", "worker-portfolio", "jobs:portfolio", "PORTFOLIO", 9103, 5434, "portfolio", 6382,
      FSR_JOB_QUEUE_PORTFOLIO },
};

const wk_queue *wk_queue_find(const char *name)
{
    if (name == NULL)
        return NULL;
    if (strcmp(name, "fi") == 0) /* DESIGN.md's short name */
        name = "fixed_income";
    for (size_t i = 0; i < FSR_ARRAY_SIZE(wk_queues); i++) {
        if (strcmp(wk_queues[i].name, name) == 0)
            return &wk_queues[i];
    }
    return NULL;
}
