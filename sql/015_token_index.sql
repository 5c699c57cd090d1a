-- 015: the GIN index on resource.tokens goes.  No query needs it: every
-- condition on tokens (a _typeFilter's, a match's claims naming a provider)
-- is on one member's rows, which resource_patient_type finds, and the
-- shared resources an export sends are found by id (export_ref).  Measured
-- on bench/run's payer (10,000 members): the match and the filtered export
-- take as long without it, and a load, which kept it up to date row by row,
-- takes a sixth less time.  tokens itself stays, as every query reads it.
DROP INDEX IF EXISTS resource_tokens;
