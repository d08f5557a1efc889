/* SPDX-License-Identifier: MIT */
/* svc_fixed_income internals: the handlers service.c binds, one .c per feature. */
#ifndef FI_FIXED_INCOME_H
#define FI_FIXED_INCOME_H

#include "fsr/server.h"

#include "fixed_income/v1/fixed_income.pb-c.h"

/* bonds.c: the bonds resource (create, get, list). */
void fi_create_bond(fsr_call *call, const FixedIncome__V1__CreateBondRequest *req);
void fi_get_bond(fsr_call *call, const FixedIncome__V1__GetBondRequest *req);
void fi_list_bonds(fsr_call *call, const FixedIncome__V1__ListBondsRequest *req);

/* service.c: adds the gRPC services to |srv| (fsr_app_config.register_services). */
int fi_register_services(fsr_server *srv);

#endif /* FI_FIXED_INCOME_H */
