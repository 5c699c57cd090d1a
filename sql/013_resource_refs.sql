-- 013: the references a stored resource makes to resources of a Patient
-- compartment ("Type/id"), kept apart from the search tokens: an export names
-- those its date floor leaves out (docs/EXPORT.md), and nothing searches
-- them, so they cost the tokens' GIN index nothing.  The loader fills it
-- (loading the same lines again fills it for resources stored before).
ALTER TABLE resource ADD COLUMN IF NOT EXISTS refs text[];
