-- SPDX-License-Identifier: MIT
-- An explicit first coupon date (QuantLib's Schedule firstDate): the first coupon accrues
-- from the issue date to it, a long (or explicitly dated) first period.  NULL: the schedule
-- runs back from maturity and the first period is regular or a short stub.
--
-- The table can check only the range and the zero-coupon rule; that the date lies on the
-- schedule counted back from maturity is bondmath's check (fi_terms_periods()), made by the
-- service on the whole merged row before it commits a create or an update.
ALTER TABLE bonds ADD COLUMN first_coupon_date date;
ALTER TABLE bonds ADD CONSTRAINT bonds_first_coupon CHECK (
    first_coupon_date IS NULL
    OR (frequency > 0 AND first_coupon_date > issue_date AND first_coupon_date <= maturity_date));
