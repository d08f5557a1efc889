/* SPDX-License-Identifier: MIT */
/* svc_equity internals: the handlers service.c binds, one .c per feature. */
#ifndef EQ_EQUITY_H
#define EQ_EQUITY_H

#include "fsr/server.h"

#include "equity/v1/equity.pb-c.h"

/* equities.c: the equities resource (create, get, list). */
void eq_create_equity(fsr_call *call, const Equity__V1__CreateEquityRequest *req);
void eq_get_equity(fsr_call *call, const Equity__V1__GetEquityRequest *req);
void eq_list_equities(fsr_call *call, const Equity__V1__ListEquitiesRequest *req);

/* service.c: adds the gRPC services to |srv| (fsr_app_config.register_services). */
int eq_register_services(fsr_server *srv);

#endif /* EQ_EQUITY_H */
