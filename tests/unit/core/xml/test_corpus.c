/*
 * Real XMPP traffic (the .xml files of tests/fixtures/xml, written from RFC 6120/6121
 * and XEP examples) through the parser: each stream parses without error,
 * and gives identical callbacks when split at every byte position, and
 * at many random sets of positions. Every top-level element also becomes
 * a stanza whose lazy tree builds.
 */
#include "core/xml/parser.h"

#include <dirent.h>

#include "core/stanza.h"
#include "sz_test.h"
#include "tests/unit/core/xml/xml_rec.h"

#define FIXTURES SZ_SOURCE_ROOT "/tests/fixtures/xml"

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = sz_malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    b[*len] = '\0';
    fclose(f);
    return b;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

struct trees {
    unsigned built, failed;
};

static int tree_elem(void *ud, const char *span, size_t len, const sz_xml_head_t *h)
{
    struct trees *t = ud;
    sz_stanza_t *st = sz_stanza_new(span, len, h);
    if (sz_stanza_tree(st))
        t->built++;
    else
        t->failed++;
    sz_stanza_unref(st);
    return 0;
}

static void check_file(const char *name, const char *doc, size_t len)
{
    char *whole = rec_parse(doc, len, NULL, 0, NULL);
    int ok = strstr(whole, "ERR") == NULL && strstr(whole, "HEADER") != NULL &&
             strstr(whole, "ELEM") != NULL && strstr(whole, "END\nOK busy=0") != NULL;
    if (!ok)
        printf("# %s: %s\n", name, whole);
    SZ_CHECK(ok);

    /* every single split position */
    size_t bad = 0;
    for (size_t cut = 1; cut < len; cut++) {
        char *s = rec_parse(doc, len, &cut, 1, NULL);
        if (strcmp(s, whole) != 0 && !bad++)
            printf("# %s: split at %zu differs\n", name, cut);
        free(s);
    }
    /* random multi-way splits (fixed seed: reproducible) */
    unsigned seed = 12345;
    for (int round = 0; round < 200; round++) {
        size_t cuts[12];
        size_t n = 1 + (size_t)(rand_r(&seed) % 12);
        for (size_t k = 0; k < n; k++)
            cuts[k] = 1 + (size_t)rand_r(&seed) % (len - 1);
        qsort(cuts, n, sizeof *cuts, cmp_size);
        char *s = rec_parse(doc, len, cuts, n, NULL);
        if (strcmp(s, whole) != 0 && !bad++)
            printf("# %s: random split round %d differs\n", name, round);
        free(s);
    }
    SZ_CHECK_INT(bad, 0);
    free(whole);

    /* stanzas and their trees */
    static const sz_xml_ops_t ops = {NULL, tree_elem, NULL};
    struct trees t = {0};
    sz_xml_parser_t p;
    sz_xml_parser_init(&p, NULL, &ops, &t);
    SZ_CHECK_INT(sz_xml_parser_feed(&p, doc, len), len);
    sz_xml_parser_free(&p);
    SZ_CHECK(t.built > 0);
    SZ_CHECK_INT(t.failed, 0);
    printf("# %s: %zu bytes, %u elements\n", name, len, t.built);
}

SZ_TEST(fixtures)
{
    DIR *d = opendir(FIXTURES);
    SZ_CHECK(d != NULL);
    if (!d)
        return;
    char *names[256];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256) {
        size_t l = strlen(e->d_name);
        if (l > 4 && strcmp(e->d_name + l - 4, ".xml") == 0)
            names[n++] = sz_strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    SZ_CHECK(n >= 10);
    for (size_t i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", FIXTURES, names[i]);
        size_t len;
        char *doc = read_file(path, &len);
        SZ_CHECK(doc != NULL);
        if (doc)
            check_file(names[i], doc, len);
        free(doc);
        free(names[i]);
    }
}

int main(void)
{
    SZ_RUN(fixtures);
    sz_xml_scratch_free();
    return sz_test_done();
}
