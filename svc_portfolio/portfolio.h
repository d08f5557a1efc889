/* SPDX-License-Identifier: MIT */
/* svc_portfolio internals: the handlers service.c binds, one .c per feature. */
#ifndef PF_PORTFOLIO_H
#define PF_PORTFOLIO_H

#include "fsr/server.h"

#include "portfolio/v1/portfolio.pb-c.h"

/* portfolios.c: the portfolios resource (create, get, list). */
void pf_create_portfolio(fsr_call *call, const Portfolio__V1__CreatePortfolioRequest *req);
void pf_get_portfolio(fsr_call *call, const Portfolio__V1__GetPortfolioRequest *req);
void pf_list_portfolios(fsr_call *call, const Portfolio__V1__ListPortfoliosRequest *req);

/* service.c: adds the gRPC services to |srv| (fsr_app_config.register_services). */
int pf_register_services(fsr_server *srv);

#endif /* PF_PORTFOLIO_H */
