-- Integration fixtures: a small roster, an empty one, and a large one for
-- crash-and-resume (400 members, so an export takes many chunks).
BEGIN;
INSERT INTO resource (type, id, patient_id, last_updated, json)
SELECT 'Patient', 'p' || n, 'p' || n, timestamptz '2024-01-01T00:00:00Z' + n * interval '1 day',
       '{"resourceType":"Patient","id":"p' || n || '","name":[{"family":"Test\\u00e9 \"' || n ||
       '\"","given":["Ana"]}],"birthDate":"1970-01-01"}'
FROM generate_series(1, 400) AS n;
-- attributed to the test clients' NPI, except 'elsewhere'
INSERT INTO roster (id, name, npi) VALUES ('small', 'three members', '1234567893'), ('empty', 'no members', '1234567893'),
  ('big', '400 members', '1234567893'), ('elsewhere', 'another provider''s', '1245319599');
INSERT INTO roster_member (roster_id, patient_id) VALUES ('small', 'p1'), ('small', 'p2'), ('small', 'p300');
INSERT INTO roster_member (roster_id, patient_id) SELECT 'big', 'p' || n FROM generate_series(1, 400) AS n;
-- a member whose Patient resource is missing exports nothing, and no error
INSERT INTO roster_member (roster_id, patient_id) VALUES ('small', 'ghost');
-- the provider directory: one provider in network, one out of it
INSERT INTO provider (npi, kind, name, in_network) VALUES
  ('1234567893', 'organization', 'In-network test clinic', true),
  ('1245319599', 'practitioner', 'Out-of-network doctor', false);
COMMIT;
