/* SPDX-License-Identifier: MIT */
/* Analytics: single-period Brinson attribution (Brinson-Fachler and Brinson-Hood-Beebower). */
#include "fsr/analytics.h"

#include <math.h>

#include "analytics_int.h"

int fsr_an_attribution(const double *wp, const double *wb, const double *rp, const double *rb,
                       size_t k, fsr_an_attr_model model, fsr_an_attr_class *classes,
                       fsr_an_attr_total *total)
{
    if (!wp || !wb || !rp || !rb || !total || k == 0 ||
        (model != FSR_AN_BRINSON_FACHLER && model != FSR_AN_BHB))
        return FSR_AN_E_ARG;
    fsr__an_sum swp = { 0 }, swb = { 0 }, sRp = { 0 }, sRb = { 0 };
    for (size_t i = 0; i < k; i++) {
        if (!isfinite(wp[i]) || !isfinite(wb[i]) || !isfinite(rp[i]) || !isfinite(rb[i]))
            return FSR_AN_E_NONFINITE;
        fsr__an_add(&swp, wp[i]);
        fsr__an_add(&swb, wb[i]);
        fsr__an_add(&sRp, wp[i] * rp[i]);
        fsr__an_add(&sRb, wb[i] * rb[i]);
    }
    /*
     * Both weight sets must sum to 1: otherwise allocation + selection + interaction misses
     * Rp - Rb by Rb (sum wp - sum wb) under Brinson-Fachler, and the result would not be an
     * attribution of the active return.  Negative weights (shorts, overdrafts) are allowed.
     */
    if (fabs(fsr__an_total(&swp) - 1.0) > 1e-9 || fabs(fsr__an_total(&swb) - 1.0) > 1e-9)
        return FSR_AN_E_WEIGHTS;
    const double Rp = fsr__an_total(&sRp), Rb = fsr__an_total(&sRb);
    fsr__an_sum sa = { 0 }, ss = { 0 }, si = { 0 };
    for (size_t i = 0; i < k; i++) {
        double dw = wp[i] - wb[i];
        double alloc = model == FSR_AN_BRINSON_FACHLER ? dw * (rb[i] - Rb) : dw * rb[i];
        double sel = wb[i] * (rp[i] - rb[i]);
        double inter = dw * (rp[i] - rb[i]);
        fsr__an_add(&sa, alloc);
        fsr__an_add(&ss, sel);
        fsr__an_add(&si, inter);
        if (classes) {
            classes[i].allocation = alloc;
            classes[i].selection = sel;
            classes[i].interaction = inter;
            classes[i].selection_with_interaction = wp[i] * (rp[i] - rb[i]);
        }
    }
    total->portfolio_return = Rp;
    total->benchmark_return = Rb;
    total->active_return = Rp - Rb;
    total->allocation = fsr__an_total(&sa);
    total->selection = fsr__an_total(&ss);
    total->interaction = fsr__an_total(&si);
    return 0;
}
