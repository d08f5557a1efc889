/* SPDX-License-Identifier: MIT */
/* Analytics: rebalancing plans (drift, the 5/25 breach rule, whole-lot trades). */
#include "fsr/analytics.h"

#include <math.h>

#include "analytics_int.h"

int fsr_an_rebalance(const fsr_an_rebal_position *pos, size_t k, double cash, double cash_to_invest,
                     fsr_an_rebal_mode mode, double band_abs, double band_rel,
                     fsr_an_rebal_result *res, fsr_an_rebal_total *total)
{
    if ((k && (!pos || !res)) || !total || (mode != FSR_AN_REBAL_FULL && mode != FSR_AN_REBAL_BAND))
        return FSR_AN_E_ARG;
    if (!isfinite(cash) || !isfinite(cash_to_invest) || !isfinite(band_abs) ||
        !isfinite(band_rel) || band_abs < 0.0 || band_rel < 0.0)
        return FSR_AN_E_VALUE;
    fsr__an_sum value = { 0 }, targets = { 0 };
    for (size_t i = 0; i < k; i++) {
        const fsr_an_rebal_position *p = &pos[i];
        if (!isfinite(p->quantity) || !isfinite(p->price) || !isfinite(p->lot) ||
            !isfinite(p->target) || p->quantity < 0.0 || !(p->price > 0.0) || !(p->lot > 0.0) ||
            p->target < 0.0)
            return FSR_AN_E_VALUE;
        fsr__an_add(&value, p->quantity * p->price);
        fsr__an_add(&targets, p->target);
    }
    if (fsr__an_total(&targets) > 1.0 + 1e-9)
        return FSR_AN_E_WEIGHTS;
    fsr__an_add(&value, cash);
    fsr__an_add(&value, cash_to_invest);
    const double V = fsr__an_total(&value);
    if (!(V > 0.0))
        return FSR_AN_E_VALUE;

    fsr__an_sum spent = { 0 };
    size_t breaches = 0;
    for (size_t i = 0; i < k; i++) {
        const fsr_an_rebal_position *p = &pos[i];
        fsr_an_rebal_result *r = &res[i];
        r->current_weight = p->quantity * p->price / V;
        r->drift_abs = r->current_weight - p->target;
        /* IEEE division gives +-INFINITY for a holding with target 0 and NaN for neither:
         * the first breaches (as |x| / 0 > 25% should), the second does not. */
        r->drift_rel = r->drift_abs / p->target;
        r->breach = fabs(r->drift_abs) > band_abs || fabs(r->drift_rel) > band_rel;
        breaches += r->breach;
        /* Whole lots, rounded down, so the cash a FULL rebalance needs is never exceeded. */
        r->target_quantity = floor(p->target * V / (p->price * p->lot)) * p->lot;
        bool traded = mode == FSR_AN_REBAL_FULL || r->breach;
        r->trade = traded ? r->target_quantity - p->quantity : 0.0;
        r->notional = r->trade * p->price;
        r->post_quantity = p->quantity + r->trade;
        r->post_weight = r->post_quantity * p->price / V;
        fsr__an_add(&spent, r->notional);
    }
    total->total_value = V;
    total->post_trade_cash = cash + cash_to_invest - fsr__an_total(&spent);
    total->post_cash_weight = total->post_trade_cash / V;
    total->breaches = breaches;
    return 0;
}
