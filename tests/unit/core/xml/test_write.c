/*
 * Tests for core/xml/write.c: a parsed element written back on its own,
 * with the namespaces it inherited or bound through prefixes declared on
 * it, escaping redone, and namespaced attributes kept.
 */
#include "core/xml/write.h"

#include <string.h>

#include "core/mem.h"
#include "sz_test.h"

/* Parses <in>, writes the first child of its root with <scope>. */
static char *rewrite(const char *in, const char *scope)
{
    sz_xml_tree_t *t = sz_xml_tree_parse(in, strlen(in), NULL);
    if (!t)
        return NULL;
    const sz_xml_node_t *root = sz_xml_tree_root(t);
    const sz_xml_node_t *c = sz_xml_child(root, NULL, NULL);
    sz_xb_t xb;
    sz_xb_init(&xb, 0);
    char *out = NULL;
    size_t len;
    if (c)
        sz_xml_write(&xb, c, scope);
    if (sz_xb_finish(&xb, &out, &len) < 0)
        out = NULL;
    sz_xml_tree_free(t);
    return out;
}

static void check(const char *in, const char *scope, const char *want)
{
    char *got = rewrite(in, scope);
    SZ_CHECK_STR(got, want);
    sz_free(got);
}

SZ_TEST(namespaces)
{
    /* A prefixed payload becomes a default-namespace one. */
    check("<iq xmlns='jabber:client' xmlns:v='vcard-temp'><v:vCard><v:FN>A</v:FN></v:vCard></iq>",
          NULL, "<vCard xmlns=\"vcard-temp\"><FN>A</FN></vCard>");
    /* Inherited default namespace is declared; nested changes too. */
    check("<q xmlns='jabber:iq:private'><s xmlns='storage:x'><a/><b xmlns='o:ns'><c/></b>"
          "<d xmlns=''/></s></q>",
          NULL, "<s xmlns=\"storage:x\"><a/><b xmlns=\"o:ns\"><c/></b><d xmlns=\"\"/></s>");
    /* Already in scope: no redeclaration. */
    check("<q xmlns='vcard-temp'><vCard/></q>", "vcard-temp", "<vCard/>");
}

SZ_TEST(text_and_attrs)
{
    check("<r xmlns='a'><e k='1 &amp; &lt;2&gt;' xml:lang='en' xmlns:p='urn:p' p:x='y'>"
          "t &amp; &lt;u&gt;<![CDATA[<raw>]]></e></r>",
          "a",
          "<e k=\"1 &amp; &lt;2&gt;\" xml:lang=\"en\" xmlns:n0=\"urn:p\" n0:x=\"y\">"
          "t &amp; &lt;u&gt;&lt;raw&gt;</e>");
}

int main(void)
{
    SZ_RUN(namespaces);
    SZ_RUN(text_and_attrs);
    return sz_test_done();
}
