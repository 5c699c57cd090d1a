# _typeFilter search parameters read from the stored JSON: _id, _profile and
# _lastUpdated on every type, and the Patient parameters US Core requires of a
# server (identifier, name, family, given, gender, birthdate).

orig=$(psql_q "SELECT json FROM resource WHERE type = 'Patient' AND id = 'p1'")
orig2=$(psql_q "SELECT json FROM resource WHERE type = 'Patient' AND id = 'p2'")
psql_q "UPDATE resource SET json = '{\"resourceType\":\"Patient\",\"id\":\"p1\",\"meta\":{\"profile\":[\"http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient\"]},\"identifier\":[{\"system\":\"urn:mb\",\"value\":\"MB-1\"}],\"name\":[{\"family\":\"Smith\",\"given\":[\"Ana\"]}],\"gender\":\"female\",\"birthDate\":\"1980-05-02\"}'
          WHERE type = 'Patient' AND id = 'p1';
        UPDATE resource SET json = '{\"resourceType\":\"Patient\",\"id\":\"p2\",\"identifier\":[{\"system\":\"urn:mb\",\"value\":\"MB-2\"}],\"name\":[{\"family\":\"Jones\",\"given\":[\"Bob\",\"Li_z\"]}],\"gender\":\"male\",\"birthDate\":\"1990\"}'
          WHERE type = 'Patient' AND id = 'p2'" > /dev/null
# ids FILTER: the Patients of roster small an export with that _typeFilter gives
ids() {
  kickoff small --get --data-urlencode '_type=Patient' --data-urlencode "_typeFilter=Patient?$1"
  [ "$STATUS" = 202 ] || { echo "kick-off $STATUS: ${BODY:0:200}"; return; }
  wait_job "$JOB_URL" 60
  rm -rf "$HTTP_TMP/tf"
  download_all "$BODY" "$HTTP_TMP/tf"
  cat "$HTTP_TMP"/tf/* 2>/dev/null | jq -r .id | sort | paste -sd' '
  http DELETE "$JOB_URL"
}
expect_eq "family: starts with, whatever the case" "$(ids family=SMI)" p1
expect_eq "name: family or given" "$(ids name=bob)" p2
expect_eq "given" "$(ids given=an)" "p1 p300"
expect_eq "a value's % and _ are themselves, not wildcards" "$(ids given=li_)" p2
expect_eq "... (li% matches nobody)" "$(ids 'given=li%25')" ""
expect_eq "a comma list is any of its values" "$(ids family=jon,smi)" "p1 p2"
expect_eq "gender" "$(ids gender=male)" p2
expect_eq "birthdate with a prefix, a year meaning its whole year" "$(ids birthdate=lt1985)" "p1 p300"
expect_eq "birthdate eq a year" "$(ids birthdate=1990)" p2
expect_eq "identifier system|value" "$(ids 'identifier=urn:mb|MB-2')" p2
expect_eq "identifier by value alone" "$(ids identifier=MB-1)" p1
expect_eq "_profile" "$(ids _profile=http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient)" p1
expect_eq "_id" "$(ids _id=p300,p2)" "p2 p300"
expect_eq "_lastUpdated" "$(ids _lastUpdated=gt2000-01-01)" "p1 p2 p300"
expect_eq "... and before a date nobody changed" "$(ids _lastUpdated=lt2000-01-01)" ""
expect_eq "conditions of one filter are AND'ed" "$(ids 'gender=female&birthdate=ge1980')" p1
kickoff small --get --data-urlencode '_type=Patient' --data-urlencode '_typeFilter=Patient?telecom=x'
expect_outcome "a parameter not served is refused, naming those that are" 400 "_lastUpdated, birthdate, _id, _profile, gender, identifier, name, family, given"
psql_q "UPDATE resource SET json = \$j\$$orig\$j\$ WHERE type = 'Patient' AND id = 'p1';
        UPDATE resource SET json = \$j\$$orig2\$j\$ WHERE type = 'Patient' AND id = 'p2'" > /dev/null
