/*
 * core/stanza.c and core/xml/tree.c: stanza header and kind, refcounts,
 * lazy tree (children, text, attributes by name and namespace), to/from
 * rewrite without re-serialisation, stanza error table and builder.
 */
#include "core/stanza.h"

#include <errno.h>
#include <stdio.h>

#include "core/mem.h"
#include "core/xml/tree.h"
#include "sz_test.h"

#define HDR                                                                                      \
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "     \
    "to='example.com' version='1.0'>"

static int grab(void *ud, const char *span, size_t len, const sz_xml_head_t *h)
{
    sz_stanza_t **out = ud;
    if (!*out)
        *out = sz_stanza_new(span, len, h);
    return 0;
}

/* The first top-level element of HDR <xml>, as a stanza (NULL on error). */
static sz_stanza_t *parse(const char *xml)
{
    static const sz_xml_ops_t ops = {NULL, grab, NULL};
    sz_stanza_t *st = NULL;
    sz_xml_parser_t p;
    sz_xml_parser_init(&p, NULL, &ops, &st);
    if (sz_xml_parser_feed(&p, HDR, strlen(HDR)) < 0 || sz_xml_parser_feed(&p, xml, strlen(xml)) < 0) {
        sz_stanza_unref(st);
        st = NULL;
    }
    sz_xml_parser_free(&p);
    return st;
}

static char *attr_str(const sz_stanza_t *st, enum sz_xml_attr_idx w)
{
    static char buf[256];
    ssize_t n = sz_stanza_attr(st, w, buf, sizeof buf);
    return n < 0 ? NULL : buf;
}

SZ_TEST(header_and_kind)
{
    sz_stanza_t *st = parse("<message to='juliet@example.com/balcony' from='romeo@example.net' "
                            "type='chat' id='ktx72v49' xml:lang='en'><body>Art thou not Romeo, "
                            "and a Montague?</body></message>");
    SZ_CHECK(st != NULL);
    if (!st)
        return;
    size_t n;
    SZ_CHECK_INT(sz_stanza_kind(st), SZ_STANZA_MESSAGE);
    SZ_CHECK_INT(sz_stanza_ns_id(st), SZ_XML_NS_CLIENT);
    SZ_CHECK_STR(sz_stanza_ns(st, &n), "jabber:client");
    const char *name = sz_stanza_name(st, &n);
    SZ_CHECK(n == 7 && memcmp(name, "message", 7) == 0);
    SZ_CHECK_STR(attr_str(st, SZ_XML_A_TO), "juliet@example.com/balcony");
    SZ_CHECK_STR(attr_str(st, SZ_XML_A_FROM), "romeo@example.net");
    SZ_CHECK_STR(attr_str(st, SZ_XML_A_TYPE), "chat");
    SZ_CHECK_STR(attr_str(st, SZ_XML_A_ID), "ktx72v49");
    SZ_CHECK_STR(attr_str(st, SZ_XML_A_LANG), "en");
    const char *raw = sz_stanza_raw(st, &n);
    SZ_CHECK(strncmp(raw, "<message", 8) == 0 && raw[n] == '\0');
    SZ_CHECK(strcmp(raw + n - 10, "</message>") == 0);
    char small[4];
    SZ_CHECK_INT(sz_stanza_attr(st, SZ_XML_A_TO, small, sizeof small), -ENOSPC);
    /* refcounts */
    sz_stanza_t *r2 = sz_stanza_ref(st);
    SZ_CHECK(r2 == st);
    sz_stanza_unref(r2);
    sz_stanza_unref(st);

    st = parse("<presence/>");
    SZ_CHECK_INT(sz_stanza_kind(st), SZ_STANZA_PRESENCE);
    SZ_CHECK_INT(sz_stanza_attr(st, SZ_XML_A_TO, small, sizeof small), -ENOENT);
    SZ_CHECK(sz_stanza_attr_raw(st, SZ_XML_A_FROM, NULL, NULL) == NULL);
    sz_stanza_unref(st);
    st = parse("<iq type='get' id='1'/>");
    SZ_CHECK_INT(sz_stanza_kind(st), SZ_STANZA_IQ);
    sz_stanza_unref(st);
    st = parse("<r xmlns='urn:xmpp:sm:3'/>");
    SZ_CHECK_INT(sz_stanza_kind(st), SZ_STANZA_OTHER);
    SZ_CHECK_INT(sz_stanza_ns_id(st), SZ_XML_NS_SM);
    sz_stanza_unref(st);
    st = parse("<message xmlns='urn:not:content'/>");
    SZ_CHECK_INT(sz_stanza_kind(st), SZ_STANZA_OTHER);
    SZ_CHECK_STR(sz_stanza_ns(st, NULL), "urn:not:content");
    sz_stanza_unref(st);
    /* escaped attribute values */
    st = parse("<message to='a&amp;b@x' id='&#x31;&#10;2'/>");
    bool esc = false;
    SZ_CHECK(sz_stanza_attr_raw(st, SZ_XML_A_TO, &n, &esc) && esc && n == 9);
    SZ_CHECK_STR(attr_str(st, SZ_XML_A_TO), "a&b@x");
    SZ_CHECK_STR(attr_str(st, SZ_XML_A_ID), "1\n2");
    sz_stanza_unref(st);
    sz_stanza_unref(NULL);
}

SZ_TEST(tree)
{
    sz_stanza_t *st = parse(
        "<iq type='result' id='roster_1' to='juliet@example.com/balcony'>"
        "<query xmlns='jabber:iq:roster' ver='ver11'>"
        "<item jid='romeo@example.net' name='Romeo &amp; co' subscription='both'>"
        "<group>Friends</group></item>"
        "<item jid='mercutio@example.com' name='Mercutio' subscription='from'/>"
        "</query></iq>");
    SZ_CHECK(st != NULL);
    if (!st)
        return;
    const sz_xml_node_t *root = sz_stanza_tree(st);
    SZ_CHECK(root != NULL);
    if (!root) {
        sz_stanza_unref(st);
        return;
    }
    SZ_CHECK(sz_stanza_tree(st) == root); /* built once */
    SZ_CHECK_STR(root->name, "iq");
    SZ_CHECK_STR(root->ns, "jabber:client");
    SZ_CHECK_STR(sz_xml_attr(root, "type", NULL, NULL), "result");
    const sz_xml_node_t *q = sz_xml_child(root, "query", "jabber:iq:roster");
    SZ_CHECK(q != NULL);
    SZ_CHECK(sz_xml_child(root, "query", "jabber:client") == NULL);
    SZ_CHECK(sz_xml_child(root, "query", NULL) == q);
    SZ_CHECK(q->parent == root);
    SZ_CHECK_STR(sz_xml_attr(q, "ver", NULL, NULL), "ver11");
    const sz_xml_node_t *it = sz_xml_child(q, "item", "jabber:iq:roster");
    SZ_CHECK_STR(sz_xml_attr(it, "name", NULL, NULL), "Romeo & co");
    SZ_CHECK(sz_xml_attr(it, "name", "jabber:iq:roster", NULL) == NULL); /* unprefixed: no ns */
    SZ_CHECK_STR(sz_xml_text(sz_xml_child(it, "group", NULL), NULL), "Friends");
    const sz_xml_node_t *it2 = sz_xml_next(it, "item", NULL);
    SZ_CHECK(it2 != NULL && strcmp(sz_xml_attr(it2, "jid", NULL, NULL), "mercutio@example.com") == 0);
    SZ_CHECK(sz_xml_next(it2, "item", NULL) == NULL);
    sz_stanza_unref(st);

    /* mixed content, CDATA, references, prefixed attributes, xml:lang */
    st = parse("<message xml:lang='en'><body>a&lt;b<![CDATA[ <c> ]]>d\r\ne</body>"
               "<x xmlns='urn:x' xmlns:p='urn:p' p:k='v' k='w'><p:y>1<z/>2</p:y></x>"
               "<stream:error/></message>");
    root = sz_stanza_tree(st);
    SZ_CHECK(root != NULL);
    if (root) {
        SZ_CHECK_STR(sz_xml_attr(root, "lang", "http://www.w3.org/XML/1998/namespace", NULL),
                     "en");
        size_t n;
        SZ_CHECK_STR(sz_xml_text(sz_xml_child(root, "body", "jabber:client"), &n),
                     "a<b <c> d\ne");
        SZ_CHECK_INT(n, 11);
        const sz_xml_node_t *x = sz_xml_child(root, "x", "urn:x");
        SZ_CHECK_STR(sz_xml_attr(x, "k", "urn:p", NULL), "v");
        SZ_CHECK_STR(sz_xml_attr(x, "k", NULL, NULL), "w");
        const sz_xml_node_t *y = sz_xml_child(x, "y", "urn:p");
        SZ_CHECK(y != NULL);
        SZ_CHECK_STR(sz_xml_text(y, NULL), "12");
        SZ_CHECK(y && y->children && y->children->kind == SZ_XML_TEXT);
        SZ_CHECK_STR(sz_xml_child(y, NULL, NULL)->name, "z");
        SZ_CHECK_STR(sz_xml_child(y, "z", "")  == NULL ? "none" : "found", "none"); /* ns urn:x */
        SZ_CHECK(sz_xml_child(root, "error", "http://etherx.jabber.org/streams") != NULL);
    }
    sz_stanza_unref(st);

    /* the tree builder refuses what is not one element */
    const char *bad[] = {"", "text", "<a>", "<a></b", "<a/><b/>", "<a><!-- x --></a>",
                         "<p:a/>", "<a b='1/>", "<a>&bogus;</a>"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sz_xml_tree_t *t = sz_xml_tree_parse(bad[i], strlen(bad[i]), NULL);
        if (t && i != 8)
            printf("# accepted: %s\n", bad[i]);
        SZ_CHECK(t == NULL || i == 8);
        sz_xml_tree_free(t);
    }
}

SZ_TEST(rewrite)
{
    sz_stanza_t *st = parse("<message to='juliet@example.com' id='a1' type=\"chat\">"
                            "<body>hi</body></message>");
    /* c2s stamps from (absent): added after the name */
    sz_stanza_t *r = sz_stanza_rewrite(st, NULL, 0, "romeo@example.net/orchard", 25);
    size_t n;
    SZ_CHECK_STR(sz_stanza_raw(r, &n), "<message from='romeo@example.net/orchard' "
                                       "to='juliet@example.com' id='a1' type=\"chat\">"
                                       "<body>hi</body></message>");
    SZ_CHECK_STR(attr_str(r, SZ_XML_A_FROM), "romeo@example.net/orchard");
    SZ_CHECK_STR(attr_str(r, SZ_XML_A_TO), "juliet@example.com");
    SZ_CHECK_STR(attr_str(r, SZ_XML_A_ID), "a1");
    SZ_CHECK_STR(attr_str(r, SZ_XML_A_TYPE), "chat");
    SZ_CHECK_INT(sz_stanza_kind(r), SZ_STANZA_MESSAGE);
    /* the original is untouched */
    SZ_CHECK(sz_stanza_attr_raw(st, SZ_XML_A_FROM, NULL, NULL) == NULL);
    /* replace both, with characters that need escaping, either quote */
    sz_stanza_t *r2 = sz_stanza_rewrite(r, "o'hara@x/\"q\"", 12, "a&b<c>\td", 8);
    SZ_CHECK_STR(sz_stanza_raw(r2, NULL), "<message from='a&amp;b&lt;c&gt;&#9;d' "
                                          "to='o&apos;hara@x/&quot;q&quot;' id='a1' "
                                          "type=\"chat\"><body>hi</body></message>");
    SZ_CHECK_STR(attr_str(r2, SZ_XML_A_TO), "o'hara@x/\"q\"");
    SZ_CHECK_STR(attr_str(r2, SZ_XML_A_FROM), "a&b<c>\td");
    SZ_CHECK_STR(attr_str(r2, SZ_XML_A_TYPE), "chat");
    /* the rewritten stanza is still well-formed: the tree reads it */
    const sz_xml_node_t *root = sz_stanza_tree(r2);
    SZ_CHECK(root != NULL);
    if (root) {
        SZ_CHECK_STR(sz_xml_attr(root, "to", NULL, NULL), "o'hara@x/\"q\"");
        SZ_CHECK_STR(sz_xml_text(sz_xml_child(root, "body", NULL), NULL), "hi");
    }
    /* empty element, both added */
    sz_stanza_t *p = parse("<presence/>");
    sz_stanza_t *p2 = sz_stanza_rewrite(p, "a@b", 3, "c@d/e", 5);
    SZ_CHECK_STR(sz_stanza_raw(p2, NULL), "<presence to='a@b' from='c@d/e'/>");
    SZ_CHECK_STR(attr_str(p2, SZ_XML_A_TO), "a@b");
    SZ_CHECK_STR(attr_str(p2, SZ_XML_A_FROM), "c@d/e");
    SZ_CHECK(sz_stanza_tree(p2) != NULL);
    /* every escaped character at once, including line ends */
    sz_stanza_t *p4 = sz_stanza_rewrite(p2, "\n\r\t<>&'\"", 8, NULL, 0);
    SZ_CHECK_STR(sz_stanza_raw(p4, NULL), "<presence to='&#10;&#13;&#9;&lt;&gt;&amp;&apos;&quot;' "
                                          "from='c@d/e'/>");
    SZ_CHECK_STR(attr_str(p4, SZ_XML_A_TO), "\n\r\t<>&'\"");
    SZ_CHECK_STR(attr_str(p4, SZ_XML_A_FROM), "c@d/e");
    sz_stanza_unref(p4);
    /* shorter replacement, attributes after it shift back */
    sz_stanza_t *p3 = sz_stanza_rewrite(r2, "x", 1, NULL, 0);
    SZ_CHECK_STR(attr_str(p3, SZ_XML_A_TO), "x");
    SZ_CHECK_STR(attr_str(p3, SZ_XML_A_ID), "a1");
    SZ_CHECK_STR(attr_str(p3, SZ_XML_A_FROM), "a&b<c>\td");
    sz_stanza_unref(st);
    sz_stanza_unref(r);
    sz_stanza_unref(r2);
    sz_stanza_unref(p);
    sz_stanza_unref(p2);
    sz_stanza_unref(p3);
}

SZ_TEST(stanza_errors)
{
    SZ_CHECK_INT(SZ_STANZA_ERR_COUNT - 1, 22);
    SZ_CHECK_STR(sz_stanza_err_name(SZ_STANZA_ERR_ITEM_NOT_FOUND), "item-not-found");
    SZ_CHECK_STR(sz_stanza_err_name(SZ_STANZA_ERR_UNEXPECTED_REQUEST), "unexpected-request");
    SZ_CHECK_STR(sz_stanza_err_name((enum sz_stanza_err)0), "undefined-condition");
    SZ_CHECK_STR(sz_stanza_err_type_name(sz_stanza_err_default_type(SZ_STANZA_ERR_FORBIDDEN)),
                 "auth");
    SZ_CHECK_STR(sz_stanza_err_type_name(sz_stanza_err_default_type(
                     SZ_STANZA_ERR_SERVICE_UNAVAILABLE)),
                 "cancel");
    SZ_CHECK_STR(sz_stanza_err_type_name(sz_stanza_err_default_type(SZ_STANZA_ERR_BAD_REQUEST)),
                 "modify");
    SZ_CHECK_STR(sz_stanza_err_type_name(sz_stanza_err_default_type(
                     SZ_STANZA_ERR_RESOURCE_CONSTRAINT)),
                 "wait");
    for (int e = 1; e < SZ_STANZA_ERR_COUNT; e++)
        SZ_CHECK(strcmp(sz_stanza_err_name((enum sz_stanza_err)e), "undefined-condition") != 0 ||
                 e == SZ_STANZA_ERR_UNDEFINED_CONDITION);
}

/* Decimal unsignedInt attributes (XEP-0198 'h'). */
SZ_TEST(attr_u32)
{
    static const struct {
        const char *h;
        bool ok;
        uint32_t v;
    } cases[] = {
        {"0", true, 0},          {"4294967295", true, 4294967295u}, {"007", true, 7},
        {"4294967296", false, 0}, {"", false, 0}, {"-1", false, 0}, {" 1", false, 0},
        {"1e3", false, 0},       {"99999999999", false, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char xml[96];
        int n = snprintf(xml, sizeof(xml), "<a xmlns='urn:xmpp:sm:3' h='%s'/>", cases[i].h);
        sz_stanza_t *st = sz_stanza_from_xml(xml, (size_t)n);
        SZ_CHECK(st != NULL);
        if (!st)
            continue;
        const sz_xml_node_t *root = sz_stanza_tree(st);
        uint32_t v = 12345;
        bool ok = root && sz_xml_attr_u32(root, "h", &v);
        SZ_CHECK(ok == cases[i].ok);
        if (ok && cases[i].ok)
            SZ_CHECK(v == cases[i].v);
        SZ_CHECK(!root || !sz_xml_attr_u32(root, "missing", &v));
        sz_stanza_unref(st);
    }
}

/* Every condition of RFC 6120 §8.3.3 with the type its examples use,
 * written out here rather than taken from core/stanza.c. */
static const struct {
    enum sz_stanza_err e;
    const char *name, *type;
} rfc_stanza_errs[] = {
    {SZ_STANZA_ERR_BAD_REQUEST, "bad-request", "modify"},
    {SZ_STANZA_ERR_CONFLICT, "conflict", "cancel"},
    {SZ_STANZA_ERR_FEATURE_NOT_IMPLEMENTED, "feature-not-implemented", "cancel"},
    {SZ_STANZA_ERR_FORBIDDEN, "forbidden", "auth"},
    {SZ_STANZA_ERR_GONE, "gone", "cancel"},
    {SZ_STANZA_ERR_INTERNAL_SERVER_ERROR, "internal-server-error", "cancel"},
    {SZ_STANZA_ERR_ITEM_NOT_FOUND, "item-not-found", "cancel"},
    {SZ_STANZA_ERR_JID_MALFORMED, "jid-malformed", "modify"},
    {SZ_STANZA_ERR_NOT_ACCEPTABLE, "not-acceptable", "modify"},
    {SZ_STANZA_ERR_NOT_ALLOWED, "not-allowed", "cancel"},
    {SZ_STANZA_ERR_NOT_AUTHORIZED, "not-authorized", "auth"},
    {SZ_STANZA_ERR_POLICY_VIOLATION, "policy-violation", "modify"},
    {SZ_STANZA_ERR_RECIPIENT_UNAVAILABLE, "recipient-unavailable", "wait"},
    {SZ_STANZA_ERR_REDIRECT, "redirect", "modify"},
    {SZ_STANZA_ERR_REGISTRATION_REQUIRED, "registration-required", "auth"},
    {SZ_STANZA_ERR_REMOTE_SERVER_NOT_FOUND, "remote-server-not-found", "cancel"},
    {SZ_STANZA_ERR_REMOTE_SERVER_TIMEOUT, "remote-server-timeout", "wait"},
    {SZ_STANZA_ERR_RESOURCE_CONSTRAINT, "resource-constraint", "wait"},
    {SZ_STANZA_ERR_SERVICE_UNAVAILABLE, "service-unavailable", "cancel"},
    {SZ_STANZA_ERR_SUBSCRIPTION_REQUIRED, "subscription-required", "auth"},
    {SZ_STANZA_ERR_UNDEFINED_CONDITION, "undefined-condition", "modify"},
    {SZ_STANZA_ERR_UNEXPECTED_REQUEST, "unexpected-request", "wait"},
};

/* <iq> holding sz_stanza_err_build(<e>, <t>), compared with the error
 * element <type>/<name> should give. */
static void check_err_build(enum sz_stanza_err e, enum sz_stanza_err_type t, const char *type,
                            const char *name)
{
    sz_xb_t xb;
    sz_xb_init(&xb, 0);
    sz_xb_start(&xb, "iq", NULL);
    SZ_CHECK_INT(sz_stanza_err_build(&xb, e, t), 0);
    sz_xb_end(&xb);
    char *xml = NULL, want[256];
    size_t len;
    SZ_CHECK_INT(sz_xb_finish(&xb, &xml, &len), 0);
    snprintf(want, sizeof(want),
             "<iq><error type=\"%s\"><%s xmlns=\"urn:ietf:params:xml:ns:xmpp-stanzas\"/>"
             "</error></iq>",
             type, name);
    SZ_CHECK_STR(xml, want);
    sz_free(xml);
}

/* sz_stanza_err_build: every condition with its RFC name, default type
 * and namespace, and as parsed back; an explicit type wins; a value that
 * is no condition becomes undefined-condition; a builder error sticks. */
SZ_TEST(stanza_err_build)
{
    size_t n = sizeof(rfc_stanza_errs) / sizeof(rfc_stanza_errs[0]);
    SZ_CHECK_INT(n, SZ_STANZA_ERR_COUNT - 1);
    for (size_t i = 0; i < n; i++) {
        check_err_build(rfc_stanza_errs[i].e, SZ_STANZA_ERRT_DEFAULT, rfc_stanza_errs[i].type,
                        rfc_stanza_errs[i].name);
        SZ_CHECK_STR(sz_stanza_err_name(rfc_stanza_errs[i].e), rfc_stanza_errs[i].name);
    }
    /* Explicit types, including one the RFC does not pair with the
     * condition, and one out of range (the default then). */
    check_err_build(SZ_STANZA_ERR_FEATURE_NOT_IMPLEMENTED, SZ_STANZA_ERRT_MODIFY, "modify",
                    "feature-not-implemented");
    check_err_build(SZ_STANZA_ERR_BAD_REQUEST, SZ_STANZA_ERRT_CONTINUE, "continue", "bad-request");
    check_err_build(SZ_STANZA_ERR_FORBIDDEN, SZ_STANZA_ERRT_AUTH, "auth", "forbidden");
    check_err_build(SZ_STANZA_ERR_GONE, (enum sz_stanza_err_type)9, "cancel", "gone");
    check_err_build(SZ_STANZA_ERR_CONFLICT, (enum sz_stanza_err_type)5, "cancel", "conflict");
    /* Out of range: undefined-condition with its default type. */
    check_err_build((enum sz_stanza_err)0, SZ_STANZA_ERRT_DEFAULT, "modify", "undefined-condition");
    check_err_build(SZ_STANZA_ERR_COUNT, SZ_STANZA_ERRT_DEFAULT, "modify", "undefined-condition");
    check_err_build((enum sz_stanza_err)200, SZ_STANZA_ERRT_WAIT, "wait", "undefined-condition");
    /* Parsed back: one <error> child, the condition in its namespace. */
    sz_xb_t xb;
    sz_xb_init(&xb, 0);
    sz_xb_start(&xb, "message", NULL);
    sz_xb_attr(&xb, "type", "error");
    sz_stanza_err_build(&xb, SZ_STANZA_ERR_ITEM_NOT_FOUND, SZ_STANZA_ERRT_DEFAULT);
    sz_xb_end(&xb);
    char *xml = NULL;
    size_t len;
    SZ_CHECK_INT(sz_xb_finish(&xb, &xml, &len), 0);
    sz_stanza_t *st = xml ? sz_stanza_from_xml(xml, len) : NULL;
    const sz_xml_node_t *root = st ? sz_stanza_tree(st) : NULL;
    const sz_xml_node_t *err = root ? sz_xml_child(root, "error", "jabber:client") : NULL;
    SZ_CHECK(err != NULL);
    SZ_CHECK(err && sz_xml_child(err, "item-not-found", SZ_NS_STANZAS) != NULL);
    sz_stanza_unref(st);
    sz_free(xml);
    /* Sticky builder errors come back, nothing is added. */
    sz_xb_init(&xb, 0);
    SZ_CHECK_INT(sz_stanza_err_build(&xb, SZ_STANZA_ERR_CONFLICT, SZ_STANZA_ERRT_DEFAULT), 0);
    SZ_CHECK_INT(sz_xb_end(&xb), -EINVAL); /* nothing left open */
    SZ_CHECK_INT(sz_stanza_err_build(&xb, SZ_STANZA_ERR_CONFLICT, SZ_STANZA_ERRT_DEFAULT), -EINVAL);
    sz_xb_free(&xb);
}

int main(void)
{
    SZ_RUN(header_and_kind);
    SZ_RUN(attr_u32);
    SZ_RUN(tree);
    SZ_RUN(rewrite);
    SZ_RUN(stanza_errors);
    SZ_RUN(stanza_err_build);
    sz_xml_scratch_free();
    return sz_test_done();
}
