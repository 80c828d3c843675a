/* test_iceberg_evolve.c: schema evolution rules (src/iceberg/evolve.c).
 * Not for writing evolved schemas into metadata (test_iceberg_table.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "iceberg/table.h"

static struct arena *A;

static int setup(void **state)
{
    (void)state;
    A = arena_new();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    arena_free(A);
    return 0;
}

static struct iceberg_type ty(const char *s)
{
    struct iceberg_type t;
    assert_int_equal(iceberg_type_parse(s, &t, NULL), 0);
    return t;
}

/* id long (pk), amount decimal(9,2), qty int, score float */
static struct iceberg_schema *base(void)
{
    static const char *names[] = {"id", "amount", "qty", "score"};
    static const char *types[] = {"long", "decimal(9,2)", "int", "float"};
    struct iceberg_schema *s = arena_alloc(A, sizeof *s);
    s->n_fields = 4;
    s->fields = arena_alloc(A, 4 * sizeof *s->fields);
    for (int i = 0; i < 4; i++) {
        s->fields[i].id = i + 1;
        s->fields[i].name = names[i];
        s->fields[i].required = i == 0;
        s->fields[i].type = ty(types[i]);
    }
    s->n_identifier_ids = 1;
    s->identifier_ids = arena_alloc(A, sizeof(int));
    s->identifier_ids[0] = 1;
    return s;
}

static void test_add(void **state)
{
    (void)state;
    struct iceberg_schema *cur = base(), *out;
    struct iceberg_metadata *m = iceberg_metadata_new(A, "file:///t", cur);
    struct iceberg_type t = ty("string");
    struct loch_err err;
    /* A dropped column once held id 9: ids are never reused. */
    m->last_column_id = 9;
    assert_int_equal(iceberg_schema_add_column(A, m, cur, "note", &t, &out, &err), 0);
    assert_int_equal(out->n_fields, 5);
    assert_int_equal(out->fields[4].id, 10);
    assert_false(out->fields[4].required);
    assert_string_equal(out->fields[4].name, "note");
    assert_int_equal(cur->n_fields, 4); /* the input is untouched */
    /* Ids in cur above last-column-id win. */
    m->last_column_id = 2;
    struct iceberg_schema *out2;
    assert_int_equal(iceberg_schema_add_column(A, m, out, "x", &t, &out2, &err), 0);
    assert_int_equal(out2->fields[5].id, 11);
    assert_int_equal(out2->n_identifier_ids, 1);

    assert_int_equal(iceberg_schema_add_column(A, m, cur, "AMOUNT", &t, &out, &err), LOCH_EEXIST);
    assert_non_null(strstr(err.msg, "\"amount\""));
    assert_int_equal(iceberg_schema_add_column(A, m, cur, "", &t, &out, &err), LOCH_EINVAL);
}

static void test_drop(void **state)
{
    (void)state;
    struct iceberg_schema *cur = base(), *out;
    struct loch_err err;
    assert_int_equal(iceberg_schema_drop_column(A, cur, "qty", &out, &err), 0);
    assert_int_equal(out->n_fields, 3);
    assert_null(iceberg_schema_find(out, "qty"));
    assert_int_equal(iceberg_schema_find(out, "score")->id, 4); /* ids stay */

    assert_int_equal(iceberg_schema_drop_column(A, cur, "id", &out, &err), LOCH_EINVAL);
    assert_non_null(strstr(err.msg, "identifier"));
    assert_int_equal(iceberg_schema_drop_column(A, cur, "nope", &out, &err), LOCH_ENOENT);
    assert_non_null(strstr(err.msg, "\"nope\""));

    /* Down to one column: the last is refused. */
    cur->n_identifier_ids = 0;
    struct iceberg_schema *s = cur;
    const char *drop[] = {"amount", "qty", "score"};
    for (int i = 0; i < 3; i++)
        assert_int_equal(iceberg_schema_drop_column(A, s, drop[i], &s, &err), 0);
    assert_int_equal(s->n_fields, 1);
    assert_int_equal(iceberg_schema_drop_column(A, s, "id", &out, &err), LOCH_EINVAL);
    assert_non_null(strstr(err.msg, "last column"));
}

static void test_rename(void **state)
{
    (void)state;
    struct iceberg_schema *cur = base(), *out;
    struct loch_err err;
    assert_int_equal(iceberg_schema_rename_column(A, cur, "qty", "quantity", &out, &err), 0);
    assert_int_equal(iceberg_schema_find(out, "quantity")->id, 3);
    assert_null(iceberg_schema_find(out, "qty"));
    assert_string_equal(iceberg_schema_field(cur, 3)->name, "qty");
    /* Changing only the case of a name is fine; clashing with another is not. */
    assert_int_equal(iceberg_schema_rename_column(A, cur, "qty", "QTY", &out, &err), 0);
    assert_int_equal(iceberg_schema_rename_column(A, cur, "qty", "Score", &out, &err), LOCH_EEXIST);
    assert_non_null(strstr(err.msg, "\"score\""));
    assert_int_equal(iceberg_schema_rename_column(A, cur, "zzz", "y", &out, &err), LOCH_ENOENT);
    assert_int_equal(iceberg_schema_rename_column(A, cur, "qty", "", &out, &err), LOCH_EINVAL);
}

static void test_alter_type(void **state)
{
    (void)state;
    struct iceberg_schema *cur = base(), *out;
    struct loch_err err;
    struct iceberg_type t = ty("long");
    assert_int_equal(iceberg_schema_alter_type(A, cur, "qty", &t, &out, &err), 0);
    assert_int_equal(iceberg_schema_find(out, "qty")->type.id, ICEBERG_LONG);
    t = ty("double");
    assert_int_equal(iceberg_schema_alter_type(A, cur, "score", &t, &out, &err), 0);
    t = ty("decimal(18,2)");
    assert_int_equal(iceberg_schema_alter_type(A, cur, "amount", &t, &out, &err), 0);
    assert_int_equal(iceberg_schema_find(out, "amount")->type.precision, 18);
    t = ty("decimal(18,3)");
    assert_int_equal(iceberg_schema_alter_type(A, cur, "amount", &t, &out, &err), LOCH_EUNSUPPORTED);
    assert_string_equal(err.msg, "cannot change column \"amount\" from decimal(9,2) to decimal(18,3)");
    assert_non_null(strstr(err.hint, "int -> long"));
    t = ty("int");
    assert_int_equal(iceberg_schema_alter_type(A, cur, "id", &t, &out, &err), LOCH_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "from long to int"));
    t = ty("string");
    assert_int_equal(iceberg_schema_alter_type(A, cur, "qty", &t, &out, &err), LOCH_EUNSUPPORTED);
    assert_int_equal(iceberg_schema_alter_type(A, cur, "nope", &t, &out, &err), LOCH_ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add),
        cmocka_unit_test(test_drop),
        cmocka_unit_test(test_rename),
        cmocka_unit_test(test_alter_type),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
