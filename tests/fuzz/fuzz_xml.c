/*
 * libFuzzer target for core/xml/parser.c. Input: one control byte, one
 * split byte, then the stream bytes. The control byte may prepend a stream
 * header (so that the fuzzer starts inside a stream) and pick tight limits.
 * The stream is parsed whole, then split at positions derived from the
 * input; all runs must report the same callbacks and the same result.
 * Every element reported must also build a tree (tree.c trusts the
 * parser's checks, so a failure there is a parser bug).
 */
#include <stdint.h>
#include <stdlib.h>

#include "core/stanza.h"
#include "core/xml/parser.h"
#include "tests/unit/core/xml/xml_rec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR                                                                                      \
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "     \
    "xmlns:db='jabber:server:dialback' to='example.com' version='1.0'>"

static int tree_elem(void *ud, const char *span, size_t len, const sz_xml_head_t *h)
{
    (void)ud;
    sz_stanza_t *st = sz_stanza_new(span, len, h);
    if (!sz_stanza_tree(st))
        abort();
    sz_stanza_unref(st);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t ctl = data[0], sp = data[1];
    data += 2;
    size -= 2;
    size_t hl = (ctl & 1) ? strlen(HDR) : 0;
    size_t len = hl + size;
    char *doc = malloc(len ? len : 1);
    memcpy(doc, HDR, hl);
    memcpy(doc + hl, data, size);
    sz_xml_limits_t tight = {256, 4, 4}, *lim = (ctl & 2) ? &tight : NULL;

    char *whole = rec_parse(doc, len, NULL, 0, lim);
    if (len > 1) {
        size_t cuts[3];
        cuts[0] = 1 + (sp * 131u + ctl) % (len - 1);
        char *s1 = rec_parse(doc, len, cuts, 1, lim);
        if (strcmp(whole, s1) != 0)
            abort();
        free(s1);
        /* three cuts, sorted */
        cuts[1] = 1 + (sp * 7919u + 17) % (len - 1);
        cuts[2] = 1 + ((size_t)sp * sp + ctl * 31u) % (len - 1);
        for (int i = 0; i < 3; i++)
            for (int j = i + 1; j < 3; j++)
                if (cuts[j] < cuts[i]) {
                    size_t t = cuts[i];
                    cuts[i] = cuts[j];
                    cuts[j] = t;
                }
        char *s3 = rec_parse(doc, len, cuts, 3, lim);
        if (strcmp(whole, s3) != 0)
            abort();
        free(s3);
        /* byte by byte for short inputs */
        if (len < 512) {
            size_t one[511];
            for (size_t i = 0; i + 1 < len; i++)
                one[i] = i + 1;
            char *sb = rec_parse(doc, len, one, len - 1, lim);
            if (strcmp(whole, sb) != 0)
                abort();
            free(sb);
        }
    }
    free(whole);

    static const sz_xml_ops_t ops = {NULL, tree_elem, NULL};
    sz_xml_parser_t p;
    sz_xml_parser_init(&p, lim, &ops, NULL);
    sz_xml_parser_feed(&p, doc, len);
    sz_xml_parser_free(&p);
    free(doc);
    return 0;
}
