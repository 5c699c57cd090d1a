/*
 * _elements: what an export keeps of a resource it cuts down (jobs/elements.c).
 */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "cu_main.h"
#include "elements.h"
#include "pa_err.h"
#include "pa_fhir.h"

/* The line as elements_apply leaves it, for the elements spec (a JSON
 * _elements parameter as the kick-off stores it) and the type. */
static const char *cut(const char *spec, const char *type, const char *line, pa_buf *out)
{
    json_object *elements = json_tokener_parse(spec);
    struct elements e;
    int subset = elements_for(elements, type, &e);
    static char buf[4096];

    buf[0] = '\0';
    if(!subset)
        strcpy(buf, "(whole)");
    else if(elements_apply(&e, line, strlen(line), out) == PA_OK)
        snprintf(buf, sizeof(buf), "%s", pa_buf_str(out));
    else
        strcpy(buf, "(refused)");
    json_object_put(elements);
    return buf;
}

static void test_cut(void)
{
    static const char obs[] =
        "{\"resourceType\":\"Observation\",\"id\":\"o1\",\"status\":\"final\",\"_status\":{\"extension\":[]},"
        "\"code\":{\"text\":\"x\"},\"subject\":{\"reference\":\"Patient/p\"},\"valueQuantity\":{\"value\":1},"
        "\"note\":[{\"text\":\"n\"}]}";
    pa_buf out;

    pa_buf_init(&out, 1 << 20);
    /* listed, mandatory (status with its extension, code) and resourceType/id/meta, tagged */
    CU_ASSERT_STRING_EQUAL(
        cut("{\"*\":[\"subject\"]}", "Observation", obs, &out),
        "{\"resourceType\":\"Observation\",\"id\":\"o1\",\"status\":\"final\",\"_status\":"
        "{\"extension\":[]},\"code\":{\"text\":\"x\"},\"subject\":{\"reference\":\"Patient/p\"},"
        "\"meta\":{\"tag\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/v3-ObservationValue\","
        "\"code\":\"SUBSETTED\"}]}}");
    /* a choice element by its stem or as name[x] */
    CU_ASSERT_PTR_NOT_NULL(strstr(cut("{\"Observation\":[\"value\"]}", "Observation", obs, &out), "valueQuantity"));
    CU_ASSERT_PTR_NOT_NULL(strstr(cut("{\"Observation\":[\"value[x]\"]}", "Observation", obs, &out), "valueQuantity"));
    /* ... and not a longer name that starts the same */
    CU_ASSERT_PTR_NULL(strstr(cut("{\"Observation\":[\"not\"]}", "Observation", obs, &out), "note"));
    /* a type the elements do not name is whole */
    CU_ASSERT_STRING_EQUAL(cut("{\"Patient\":[\"name\"]}", "Observation", obs, &out), "(whole)");
    CU_ASSERT_STRING_EQUAL(cut("{}", "Observation", obs, &out), "(whole)");
    /* an existing meta keeps its content, and gains the tag */
    CU_ASSERT_STRING_EQUAL(
        cut("{\"*\":[\"id\"]}", "Patient",
            "{\"resourceType\":\"Patient\",\"id\":\"p\",\"meta\":{\"lastUpdated\":\"2024-01-01T00:00:00Z\","
            "\"tag\":[{\"code\":\"t\"}]},\"name\":[]}",
            &out),
        "{\"resourceType\":\"Patient\",\"id\":\"p\",\"meta\":{\"lastUpdated\":\"2024-01-01T00:00:00Z\","
        "\"tag\":[{\"code\":\"t\"},{\"system\":\"http://terminology.hl7.org/CodeSystem/v3-ObservationValue\","
        "\"code\":\"SUBSETTED\"}]}}");
    CU_ASSERT_STRING_EQUAL(cut("{\"*\":[\"id\"]}", "Patient", "[1,2]", &out), "(refused)");
    CU_ASSERT_STRING_EQUAL(cut("{\"*\":[\"id\"]}", "Patient", "{\"resourceType\":", &out), "(refused)");
    pa_buf_free(&out);
}

/* More keys to drop than one round of elements_apply takes. */
static void test_many_keys(void)
{
    pa_buf line, out;
    int i;

    pa_buf_init(&line, 1 << 20);
    pa_buf_init(&out, 1 << 20);
    pa_buf_addstr(&line, "{\"resourceType\":\"Patient\",\"id\":\"p\"");
    for(i = 0; i < 300; i++)
        pa_buf_printf(&line, ",\"x%d\":%d", i, i);
    pa_buf_addstr(&line, "}");
    CU_ASSERT_STRING_EQUAL(cut("{\"*\":[\"gender\"]}", "Patient", pa_buf_str(&line), &out),
                           "{\"resourceType\":\"Patient\",\"id\":\"p\",\"meta\":{\"tag\":[{\"system\":"
                           "\"http://terminology.hl7.org/CodeSystem/v3-ObservationValue\",\"code\":\"SUBSETTED\"}]}}");
    pa_buf_free(&line);
    pa_buf_free(&out);
}

/* As many elements as a kick-off takes (64 for every type, 64 for one) are all kept. */
static void test_full_lists(void)
{
    json_object *elements = json_object_new_object(), *all = json_object_new_array(), *own = json_object_new_array();
    struct elements e;
    char name[16];
    int i;

    for(i = 0; i < 64; i++) {
        snprintf(name, sizeof(name), "a%d", i);
        json_object_array_add(all, json_object_new_string(name));
        snprintf(name, sizeof(name), "b%d", i);
        json_object_array_add(own, json_object_new_string(name));
    }
    json_object_object_add(elements, "*", all);
    json_object_object_add(elements, "Patient", own);
    CU_ASSERT_TRUE(elements_for(elements, "Patient", &e));
    CU_ASSERT_EQUAL(e.n, 128);
    CU_ASSERT_STRING_EQUAL(e.names[127], "b63");
    json_object_put(elements);
}

static void test_names(void)
{
    CU_ASSERT_TRUE(pa_fhir_element_name_valid("birthDate"));
    CU_ASSERT_TRUE(pa_fhir_element_name_valid("value[x]"));
    CU_ASSERT_FALSE(pa_fhir_element_name_valid("name.family"));
    CU_ASSERT_FALSE(pa_fhir_element_name_valid(""));
    CU_ASSERT_FALSE(pa_fhir_element_name_valid("[x]"));
    CU_ASSERT_FALSE(pa_fhir_element_name_valid("1abc"));
    CU_ASSERT_FALSE(pa_fhir_element_name_valid("a-b"));
}

int main(void)
{
    static const struct cu_test tests[] = {
        { "a resource cut down to its _elements", test_cut },
        { "however many keys it drops", test_many_keys },
        { "as many elements as a kick-off takes", test_full_lists },
        { "element names", test_names },
        { NULL, NULL },
    };

    return cu_run("elements", tests);
}
