-- A tiny demo payer for ./quickstart: three members on one attribution roster.
-- Safe to load again: rows are replaced, never duplicated.
BEGIN;
INSERT INTO resource (type, id, patient_id, last_updated, json) VALUES
('Patient', 'demo-p1', 'demo-p1', '2025-06-01T10:00:00Z',
 '{"resourceType":"Patient","id":"demo-p1","meta":{"lastUpdated":"2025-06-01T10:00:00Z","profile":["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},"identifier":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MB"}]},"system":"https://demo-payer.example/member-id","value":"M1000001"}],"name":[{"family":"Rivera","given":["Ana","María"]}],"gender":"female","birthDate":"1968-04-12","address":[{"line":["12 Elm St"],"city":"Springfield","state":"IL","postalCode":"62701"}]}'),
('Patient', 'demo-p2', 'demo-p2', '2025-06-02T10:00:00Z',
 '{"resourceType":"Patient","id":"demo-p2","meta":{"lastUpdated":"2025-06-02T10:00:00Z","profile":["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},"identifier":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MB"}]},"system":"https://demo-payer.example/member-id","value":"M1000002"}],"name":[{"family":"O''Brien","given":["Liam"]}],"gender":"male","birthDate":"1952-11-30","address":[{"line":["4 \"Old\" Mill Rd"],"city":"Peoria","state":"IL","postalCode":"61602"}]}'),
('Patient', 'demo-p3', 'demo-p3', '2025-06-03T10:00:00Z',
 '{"resourceType":"Patient","id":"demo-p3","meta":{"lastUpdated":"2025-06-03T10:00:00Z","profile":["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},"identifier":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MB"}]},"system":"https://demo-payer.example/member-id","value":"M1000003"}],"name":[{"family":"Nguyen","given":["Bao"]}],"gender":"male","birthDate":"1990-02-07"}')
ON CONFLICT (type, id) DO UPDATE SET patient_id = EXCLUDED.patient_id,
    last_updated = EXCLUDED.last_updated, json = EXCLUDED.json;
INSERT INTO roster (id, name, npi, status) VALUES ('demo-roster', 'Demo attribution roster', '1234567893', 'open')
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, npi = EXCLUDED.npi, status = EXCLUDED.status;
INSERT INTO roster_member (roster_id, patient_id, period_start) VALUES
('demo-roster', 'demo-p1', '2025-01-01'), ('demo-roster', 'demo-p2', '2025-01-01'), ('demo-roster', 'demo-p3', '2025-01-01')
ON CONFLICT DO NOTHING;
COMMIT;
