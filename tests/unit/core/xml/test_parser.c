/*
 * core/xml/parser.c: stream framing, zero copy, limits, and each
 * conformance rule with its exact RFC 6120 §4.9.3 condition. Every
 * document below is also parsed split at every byte, and must give the
 * same callbacks and the same result as when fed whole.
 */
#include "core/xml/parser.h"

#include <errno.h>
#include <time.h>

#include "sz_test.h"
#include "tests/unit/core/xml/xml_rec.h"

#define HDR                                                                                      \
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "     \
    "to='example.com' version='1.0'>"

/* Result of parsing <doc> whole; checks that every single split agrees. */
static enum sz_stream_err parse_doc(const char *doc, const sz_xml_limits_t *lim, int line)
{
    size_t len = strlen(doc);
    char *whole = rec_parse(doc, len, NULL, 0, lim);
    for (size_t cut = 1; cut < len; cut++) {
        char *split = rec_parse(doc, len, &cut, 1, lim);
        if (strcmp(whole, split) != 0) {
            printf("# line %d: split at %zu differs:\n# whole: %s\n# split: %s\n", line, cut,
                   whole, split);
            sz_t_cur_failed = 1;
            free(split);
            break;
        }
        free(split);
    }
    enum sz_stream_err e = SZ_STREAM_OK;
    const char *er = strstr(whole, "ERR ");
    if (er) {
        const char *nl = strchr(er, '\n');
        e = sz_stream_err_from_name(er + 4, (unsigned)(nl - er - 4));
    }
    free(whole);
    return e;
}

#define EXPECT(doc, cond) SZ_CHECK_STR(sz_stream_err_name(parse_doc(doc, NULL, __LINE__)), \
                                       sz_stream_err_name(cond))
#define EXPECT_OK(doc) SZ_CHECK_INT(parse_doc(doc, NULL, __LINE__), SZ_STREAM_OK)

SZ_TEST(size_and_names)
{
    SZ_CHECK(sizeof(sz_xml_parser_t) <= 64);
    SZ_CHECK_STR(sz_stream_err_name(SZ_STREAM_NOT_WELL_FORMED), "not-well-formed");
    SZ_CHECK_STR(sz_stream_err_name(SZ_STREAM_RESTRICTED_XML), "restricted-xml");
    SZ_CHECK_STR(sz_stream_err_name(SZ_STREAM_UNSUPPORTED_VERSION), "unsupported-version");
    SZ_CHECK_STR(sz_stream_err_name(SZ_STREAM_BAD_NAMESPACE_PREFIX), "bad-namespace-prefix");
    SZ_CHECK_INT(SZ_STREAM_ERR_COUNT, 26); /* 25 conditions + OK */
    for (int e = 1; e < SZ_STREAM_ERR_COUNT; e++) {
        const char *n = sz_stream_err_name((enum sz_stream_err)e);
        SZ_CHECK_INT(sz_stream_err_from_name(n, (unsigned)strlen(n)), e);
    }
    SZ_CHECK_STR(sz_stream_err_name((enum sz_stream_err)99), "undefined-condition");
    size_t l;
    SZ_CHECK_STR(sz_xml_ns_uri(SZ_XML_NS_CLIENT, &l), "jabber:client");
    SZ_CHECK_INT(l, 13);
    SZ_CHECK_INT(sz_xml_ns_lookup("urn:xmpp:sm:3", 13), SZ_XML_NS_SM);
    SZ_CHECK_INT(sz_xml_ns_lookup("urn:x", 5), SZ_XML_NS_OTHER);
    SZ_CHECK_INT(sz_xml_ns_lookup("", 0), SZ_XML_NS_NONE);
}

SZ_TEST(stream_header)
{
    const char *doc = "<?xml version='1.0' encoding='UTF-8'?>\n"
                      "<s:stream xmlns='jabber:server' xmlns:s='http://etherx.jabber.org/streams' "
                      "xmlns:db='jabber:server:dialback' from='a.example' to='b.example' "
                      "id='x&amp;1' version='1.0' xml:lang='en'>";
    xml_rec_t r = {0};
    sz_xml_parser_t p;
    sz_xml_parser_init(&p, NULL, &rec_ops, &r);
    SZ_CHECK_INT(sz_xml_parser_feed(&p, doc, strlen(doc)), strlen(doc));
    SZ_CHECK_INT(r.headers, 1);
    SZ_CHECK(strstr(r.log, "HEADER dflt=3 spfx=s dbpfx=db name=stream prefix=s "
                           "ns=http://etherx.jabber.org/streams ns_id=5 nattrs=8 empty=0 esc=4 "
                           "to=[b.example] from=[a.example] id=[x&amp;1] lang=[en] version=[1.0]") != NULL);
    /* a dialback element resolves through the header's db prefix */
    const char *db = "<db:result from='a.example' to='b.example'>key</db:result>";
    SZ_CHECK_INT(sz_xml_parser_feed(&p, db, strlen(db)), strlen(db));
    SZ_CHECK(strstr(r.log, "ELEM name=result prefix=db ns=jabber:server:dialback ns_id=6") != NULL);
    const char *feat = "<s:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></s:features>";
    SZ_CHECK_INT(sz_xml_parser_feed(&p, feat, strlen(feat)), strlen(feat));
    SZ_CHECK(strstr(r.log, "ELEM name=features prefix=s ns=http://etherx.jabber.org/streams") != NULL);
    SZ_CHECK_INT(sz_xml_parser_feed(&p, "</s:stream>", 11), 11);
    SZ_CHECK_INT(r.ends, 1);
    sz_xml_parser_free(&p);
    free(r.log);
}

SZ_TEST(header_rules)
{
    EXPECT_OK(HDR);
    EXPECT_OK("<?xml version='1.0'?>" HDR);
    EXPECT_OK("<?xml version=\"1.0\" encoding=\"utf-8\" standalone='yes' ?>" HDR);
    /* content namespace is optional (RFC 6120 §4.8.2) */
    EXPECT_OK("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>");
    EXPECT(HDR "<?xml version='1.0'?>", SZ_STREAM_RESTRICTED_XML);
    EXPECT(" <?xml version='1.0'?>" HDR, SZ_STREAM_RESTRICTED_XML);
    EXPECT("<?xml version='1.0' encoding='ISO-8859-1'?>" HDR, SZ_STREAM_UNSUPPORTED_ENCODING);
    EXPECT("<?xml version='2.0'?>" HDR, SZ_STREAM_NOT_WELL_FORMED);
    EXPECT("<?xml encoding='UTF-8'?>" HDR, SZ_STREAM_NOT_WELL_FORMED);
    EXPECT("<?xml-stylesheet href='a'?>" HDR, SZ_STREAM_RESTRICTED_XML);
    EXPECT("<!DOCTYPE stream>" HDR, SZ_STREAM_RESTRICTED_XML);
    EXPECT("<!-- hi -->" HDR, SZ_STREAM_RESTRICTED_XML);
    EXPECT("hello" HDR, SZ_STREAM_NOT_WELL_FORMED);
    EXPECT("<stream:stream xmlns='jabber:client' xmlns:stream='urn:wrong'>",
           SZ_STREAM_INVALID_NAMESPACE);
    EXPECT("<stream xmlns='http://etherx.jabber.org/streams'>", SZ_STREAM_INVALID_NAMESPACE);
    EXPECT("<stream:stream xmlns='jabber:other' xmlns:stream='http://etherx.jabber.org/streams'>",
           SZ_STREAM_INVALID_NAMESPACE);
    EXPECT("<stream:flux xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
           SZ_STREAM_BAD_FORMAT);
    EXPECT("<stream:stream xmlns='jabber:client'>", SZ_STREAM_NOT_WELL_FORMED); /* unbound */
    EXPECT("<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns:x='urn:x'>",
           SZ_STREAM_POLICY_VIOLATION);
    EXPECT("<averyveryveryverylongprefix:stream "
           "xmlns:averyveryveryverylongprefix='http://etherx.jabber.org/streams'>",
           SZ_STREAM_POLICY_VIOLATION);
    /* a c2s listener accepts jabber:client only */
    const char *srv = "<stream:stream xmlns='jabber:server' "
                      "xmlns:stream='http://etherx.jabber.org/streams'>";
    xml_rec_t r = {0};
    sz_xml_parser_t p;
    sz_xml_parser_init(&p, NULL, &rec_ops, &r);
    sz_xml_parser_set_content_ns(&p, 1u << SZ_XML_NS_CLIENT);
    SZ_CHECK_INT(sz_xml_parser_feed(&p, srv, strlen(srv)), -SZ_STREAM_INVALID_NAMESPACE);
    SZ_CHECK_INT(sz_xml_parser_error(&p), SZ_STREAM_INVALID_NAMESPACE);
    /* sticky until reset */
    SZ_CHECK_INT(sz_xml_parser_feed(&p, " ", 1), -SZ_STREAM_INVALID_NAMESPACE);
    sz_xml_parser_reset(&p);
    SZ_CHECK_INT(sz_xml_parser_feed(&p, HDR, strlen(HDR)), strlen(HDR));
    sz_xml_parser_free(&p);
    free(r.log);
    /* empty stream header: header then end */
    char *log = rec_parse("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>", 64,
                          NULL, 0, NULL);
    SZ_CHECK(strstr(log, "empty=1") && strstr(log, "END\n"));
    free(log);
}

SZ_TEST(stanzas_and_zero_copy)
{
    const char *doc = HDR "<message to='juliet@example.com' from='romeo@example.net/orchard' "
                          "type='chat' id='m1' xml:lang='en'><body>Wherefore art thou?</body>"
                          "</message>\n \t<presence/><iq type='get' id='r1'><query "
                          "xmlns='jabber:iq:roster'/></iq></stream:stream>";
    xml_rec_t r = {0};
    sz_xml_parser_t p;
    sz_xml_parser_init(&p, NULL, &rec_ops, &r);
    size_t len = strlen(doc);
    rec_feed(&p, &r, doc, len, NULL, 0);
    SZ_CHECK_INT(r.elements, 3);
    SZ_CHECK_INT(r.ends, 1);
    SZ_CHECK_INT(r.copied, 0); /* whole chunk: every span points into it */
    SZ_CHECK_INT(sz_xml_parser_ws_bytes(&p), 3);
    SZ_CHECK(strstr(r.log, "ELEM name=message prefix= ns=jabber:client ns_id=2 nattrs=5 empty=0 "
                           "esc=0 to=[juliet@example.com] from=[romeo@example.net/orchard] "
                           "id=[m1] type=[chat] lang=[en] span=[<message") != NULL);
    SZ_CHECK(strstr(r.log, "ELEM name=presence prefix= ns=jabber:client ns_id=2 nattrs=0 empty=1") !=
             NULL);
    SZ_CHECK(strstr(r.log, "ELEM name=iq") != NULL);
    SZ_CHECK(!sz_xml_parser_busy(&p));
    sz_xml_parser_free(&p);
    free(r.log);

    /* a stanza cut by a chunk end is copied once, and freed when complete */
    memset(&r, 0, sizeof r);
    sz_xml_parser_init(&p, NULL, &rec_ops, &r);
    size_t cuts[2] = {strlen(HDR) + 20, strlen(HDR) + 40};
    r.chunk = doc;
    SZ_CHECK_INT(sz_xml_parser_feed(&p, doc, cuts[0]), cuts[0]);
    SZ_CHECK(sz_xml_parser_busy(&p));
    SZ_CHECK(sz_xml_parser_heap_bytes(&p) > 0);
    SZ_CHECK_INT(sz_xml_parser_feed(&p, doc + cuts[0], cuts[1] - cuts[0]), cuts[1] - cuts[0]);
    r.chunk = doc + cuts[1];
    r.chunk_len = len - cuts[1];
    SZ_CHECK_INT(sz_xml_parser_feed(&p, doc + cuts[1], len - cuts[1]), len - cuts[1]);
    SZ_CHECK_INT(r.elements, 3);
    SZ_CHECK_INT(r.copied, 2); /* header (whole) counted as in place is not: see chunk */
    SZ_CHECK(!sz_xml_parser_busy(&p));
    SZ_CHECK_INT(sz_xml_parser_heap_bytes(&p), 0);
    sz_xml_parser_free(&p);
    free(r.log);
}

SZ_TEST(stop_and_reset_in_callback)
{
    /* STARTTLS: stop right after the element; the rest is not ours */
    const char *doc = HDR "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\x16\x03\x01garbage";
    xml_rec_t r = {0};
    r.stop_on_element = 1;
    sz_xml_parser_t p;
    sz_xml_parser_init(&p, NULL, &rec_ops, &r);
    size_t want = strlen(HDR) + strlen("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    SZ_CHECK_INT(sz_xml_parser_feed(&p, doc, strlen(doc)), want);
    SZ_CHECK(strstr(r.log, "ns_id=7") != NULL);
    /* restart: a new header (with a declaration) after reset */
    sz_xml_parser_reset(&p);
    const char *again = "<?xml version='1.0'?>" HDR "<presence/>";
    r.stop_on_element = 0;
    SZ_CHECK_INT(sz_xml_parser_feed(&p, again, strlen(again)), strlen(again));
    SZ_CHECK_INT(r.headers, 2);
    SZ_CHECK_INT(r.elements, 2);
    sz_xml_parser_free(&p);
    free(r.log);
}

static int reset_on_elem(void *ud, const char *span, size_t len, const sz_xml_head_t *h)
{
    sz_xml_parser_t *p = ud;
    (void)span, (void)len, (void)h;
    sz_xml_parser_reset(p);
    return 0;
}

SZ_TEST(reset_inside_callback)
{
    static const sz_xml_ops_t ops = {NULL, reset_on_elem, NULL};
    sz_xml_parser_t p;
    sz_xml_parser_init(&p, NULL, &ops, &p);
    p._ud = &p;
    /* after <success/> the same chunk carries the restarted stream */
    const char *doc = HDR "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"
                          "<?xml version='1.0'?>" HDR;
    SZ_CHECK_INT(sz_xml_parser_feed(&p, doc, strlen(doc)), strlen(doc));
    SZ_CHECK_INT(sz_xml_parser_error(&p), SZ_STREAM_OK);
    /* and split inside the element */
    sz_xml_parser_reset(&p);
    size_t k = strlen(HDR) + 10;
    SZ_CHECK_INT(sz_xml_parser_feed(&p, doc, k), k);
    SZ_CHECK_INT(sz_xml_parser_feed(&p, doc + k, strlen(doc) - k), strlen(doc) - k);
    SZ_CHECK_INT(sz_xml_parser_error(&p), SZ_STREAM_OK);
    sz_xml_parser_free(&p);
}

SZ_TEST(restricted_xml)
{
    EXPECT(HDR "<!-- c -->", SZ_STREAM_RESTRICTED_XML);
    EXPECT(HDR "<message><!-- c --></message>", SZ_STREAM_RESTRICTED_XML);
    EXPECT(HDR "<message><?pi x?></message>", SZ_STREAM_RESTRICTED_XML);
    EXPECT(HDR "<?pi x?>", SZ_STREAM_RESTRICTED_XML);
    EXPECT(HDR "<!DOCTYPE x>", SZ_STREAM_RESTRICTED_XML);
    EXPECT(HDR "<!ENTITY x 'y'>", SZ_STREAM_RESTRICTED_XML);
    EXPECT(HDR "<message><!ENTITY x 'y'></message>", SZ_STREAM_RESTRICTED_XML);
    EXPECT(HDR "<message><body>&nbsp;</body></message>", SZ_STREAM_RESTRICTED_XML);
    EXPECT(HDR "<message to='&foo;'/>", SZ_STREAM_RESTRICTED_XML);
    EXPECT(HDR "<message><body>&averyveryveryveryverylongentityname;</body></message>",
           SZ_STREAM_RESTRICTED_XML);
}

SZ_TEST(entities_and_references)
{
    EXPECT_OK(HDR "<message><body>&lt;&gt;&amp;&apos;&quot;&#65;&#x42;&#x1F600;&#9;</body>"
                  "</message>");
    EXPECT_OK(HDR "<message id='&lt;&#x10FFFF;'/>");
    EXPECT(HDR "<message><body>&#0;</body></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><body>&#x1;</body></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><body>&#xD800;</body></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><body>&#xFFFE;</body></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><body>&#x110000;</body></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><body>&#;</body></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><body>&#x;</body></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><body>&#12a;</body></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><body>a & b</body></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><body>&;</body></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><body>&amp</body></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><body>&1a;</body></message>", SZ_STREAM_NOT_WELL_FORMED);

    char out[64];
    const char *v = "a&lt;b&#10;c\r\nd\te&#x20AC;f&amp;amp;";
    SZ_CHECK_INT(sz_xml_unescape(v, strlen(v), out, sizeof out, true), 18);
    SZ_CHECK_STR(out, "a<b\nc d e\xE2\x82\xAC" "f&amp;");
    SZ_CHECK_INT(sz_xml_unescape(v, strlen(v), out, sizeof out, false), 18);
    SZ_CHECK_STR(out, "a<b\nc\nd\te\xE2\x82\xAC" "f&amp;");
    SZ_CHECK_INT(sz_xml_unescape("a\rb", 3, out, sizeof out, false), 3);
    SZ_CHECK_STR(out, "a\nb");
    SZ_CHECK_INT(sz_xml_unescape(v, strlen(v), out, 5, true), -ENOSPC);
    SZ_CHECK_INT(sz_xml_unescape("&bad;", 5, out, sizeof out, true), -EINVAL);
}

SZ_TEST(cdata_and_text)
{
    EXPECT_OK(HDR "<message><body><![CDATA[<b>&amp; ]] ]>]]></body></message>");
    EXPECT_OK(HDR "<message><body>a > b ]] c</body></message>");
    EXPECT(HDR "<message><body>a ]]> b</body></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><body><![CDATA[x]]></body></message>", SZ_STREAM_OK);
    EXPECT(HDR "<message><body><![CDATX[x]]></body></message>", SZ_STREAM_RESTRICTED_XML);
    EXPECT(HDR "<message><body>\x01</body></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><body><![CDATA[\x1b]]></body></message>", SZ_STREAM_NOT_WELL_FORMED);
    /* XMPP allows only whitespace between stanzas */
    EXPECT(HDR "hello<presence/>", SZ_STREAM_BAD_FORMAT);
    EXPECT(HDR "<presence/></stream:stream><presence/>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT_OK(HDR "<presence/></stream:stream> \n");
}

SZ_TEST(utf8)
{
    EXPECT_OK(HDR "<message><body>caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xEF\xBF\xBD</body>"
                  "</message>");
    EXPECT(HDR "<message><body>\xC0\x80</body></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><body>\xC1\xBF</body></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><body>\xE0\x80\x80</body></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><body>\xF0\x80\x80\x80</body></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><body>\xED\xA0\x80</body></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><body>\xF4\x90\x80\x80</body></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><body>\xF5\x80\x80\x80</body></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><body>\x80</body></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><body>\xC3(</body></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><body>\xEF\xBF\xBE</body></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><body>\xEF\xBF\xBF</body></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message id='\xED\xBF\xBF'/>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message id='\x7f\xc2\x85'/>", SZ_STREAM_OK); /* C1 controls are Chars */
    EXPECT(HDR "<message id='\x02'/>", SZ_STREAM_NOT_WELL_FORMED);
}

SZ_TEST(names)
{
    EXPECT_OK(HDR "<message><_x-y.z9 a.b-c_='1'/><\xC3\xA9l\xC2\xB7t/></message>");
    EXPECT_OK(HDR "<message><\xF0\x90\x80\x80/></message>");
    EXPECT(HDR "<message><1a/></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><-a/></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><\xC2\xB7/></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><a\xC3\x97/></message>", SZ_STREAM_NOT_WELL_FORMED); /* U+00D7 */
    EXPECT(HDR "<message><a:b:c xmlns:a='u'/></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><:a/></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><a:/></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><a:1b xmlns:a='u'/></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message>< a/></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message 1='x'/>", SZ_STREAM_NOT_WELL_FORMED);
}

SZ_TEST(tags_and_attributes)
{
    EXPECT_OK(HDR "<message a = 'x' b=\"y'\" c='\"'  ></message  >");
    EXPECT(HDR "<message></presence>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><body></message></body>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><body></stream:stream>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "</message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message a='1'b='2'/>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message a=1/>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message a/>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message a='<'/>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message a='1' a='2'/>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message / >", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message></message x>", SZ_STREAM_NOT_WELL_FORMED);
    /* unclosed at the end of input is not an error yet, just busy */
    char *log = rec_parse(HDR "<message><body>", strlen(HDR) + 15, NULL, 0, NULL);
    SZ_CHECK(strstr(log, "OK busy=1") != NULL);
    free(log);
}

SZ_TEST(namespaces)
{
    EXPECT_OK(HDR "<message><x xmlns='urn:a'><y xmlns:p='urn:b' p:a='1' a='2'><p:z/></y></x>"
                  "</message>");
    /* a declaration later in the same tag binds an earlier use */
    EXPECT_OK(HDR "<message p:a='1' xmlns:p='urn:b'/>");
    EXPECT_OK(HDR "<message xml:lang='en'><body xml:lang='fr'/></message>");
    EXPECT_OK(HDR "<message xmlns:xml='http://www.w3.org/XML/1998/namespace'/>");
    EXPECT_OK(HDR "<x xmlns=''/>"); /* undeclaring the default namespace */
    EXPECT(HDR "<message><p:x/></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message p:a='1'/>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message><x xmlns:p='urn:b'/><p:y/></message>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message xmlns:p=''/>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message xmlns:xmlns='urn:x'/>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message xmlns:xml='urn:x'/>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message xmlns:p='http://www.w3.org/XML/1998/namespace'/>",
           SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message xmlns='http://www.w3.org/2000/xmlns/'/>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<xmlns:message/>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message xmlns='a' xmlns='b'/>", SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message xmlns:p='a' xmlns:p='a'/>", SZ_STREAM_NOT_WELL_FORMED);
    /* duplicates after namespace resolution */
    EXPECT(HDR "<message xmlns:p='urn:x' xmlns:q='urn:x' p:a='1' q:a='2'/>",
           SZ_STREAM_NOT_WELL_FORMED);
    EXPECT(HDR "<message xmlns:p='urn:x' xmlns:q='urn&#x3a;x' p:a='1' q:a='2'/>",
           SZ_STREAM_NOT_WELL_FORMED);
    EXPECT_OK(HDR "<message xmlns:p='urn:x' xmlns:q='urn:y' p:a='1' q:a='2' a='3'/>");
    /* many attributes go through the hash path */
    EXPECT(HDR "<m xmlns:p='u' xmlns:q='u' a1='' a2='' a3='' a4='' a5='' a6='' a7='' a8='' "
               "a9='' p:z='' q:z=''/>",
           SZ_STREAM_NOT_WELL_FORMED);
    EXPECT_OK(HDR "<m xmlns:p='u' xmlns:q='v' a1='' a2='' a3='' a4='' a5='' a6='' a7='' a8='' "
                  "a9='' p:z='' q:z=''/>");
    /* escaped namespace names are decoded before comparison */
    char *log = rec_parse(HDR "<x xmlns='jabber&#x3a;client'/>", strlen(HDR) + 31, NULL, 0, NULL);
    SZ_CHECK(strstr(log, "ns=jabber:client ns_id=2") != NULL);
    free(log);
    /* the stream prefix is in scope for top-level elements only by name */
    log = rec_parse(HDR "<stream:error><x xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                        "</stream:error>",
                    strlen(HDR) + 77, NULL, 0, NULL);
    SZ_CHECK(strstr(log, "ELEM name=error prefix=stream ns=http://etherx.jabber.org/streams") != NULL);
    free(log);
}

SZ_TEST(limits)
{
    /* the header counts too: 4 attributes, under 128 bytes */
    sz_xml_limits_t lim = {128, 3, 4};
    char buf[512], body[128];
    /* exactly max_stanza_bytes is fine, one more is a policy violation */
    memset(body, 'b', 96);
    body[96] = '\0';
    snprintf(buf, sizeof buf, HDR "<message><body>%s</body></message>", body);
    SZ_CHECK_INT(strlen(buf) - strlen(HDR), 128);
    SZ_CHECK_INT(parse_doc(buf, &lim, __LINE__), SZ_STREAM_OK);
    strcat(body, "b");
    snprintf(buf, sizeof buf, HDR "<message><body>%s</body></message>", body);
    SZ_CHECK_INT(parse_doc(buf, &lim, __LINE__), SZ_STREAM_POLICY_VIOLATION);
    /* depth */
    SZ_CHECK_INT(parse_doc(HDR "<a><b><c/></b></a>", &lim, __LINE__), SZ_STREAM_OK);
    SZ_CHECK_INT(parse_doc(HDR "<a><b><c><d/></c></b></a>", &lim, __LINE__),
                 SZ_STREAM_POLICY_VIOLATION);
    /* attributes */
    SZ_CHECK_INT(parse_doc(HDR "<a b='' c='' d='' e=''/>", &lim, __LINE__), SZ_STREAM_OK);
    SZ_CHECK_INT(parse_doc(HDR "<a b='' c='' d='' e='' f=''/>", &lim, __LINE__),
                 SZ_STREAM_POLICY_VIOLATION);
    SZ_CHECK_INT(parse_doc(HDR "<a><b b='' c='' d='' e='' xmlns='x'/></a>", &lim, __LINE__),
                 SZ_STREAM_POLICY_VIOLATION);
    /* namespace declarations in scope at once count against max_attrs */
    SZ_CHECK_INT(parse_doc(HDR "<a xmlns:p='1' xmlns:q='2'><b xmlns:r='3' xmlns:s='4'/></a>", &lim,
                           __LINE__),
                 SZ_STREAM_OK);
    SZ_CHECK_INT(parse_doc(HDR "<a xmlns:p='1' xmlns:q='2'><b xmlns:r='3'><c xmlns:s='4' "
                               "xmlns:t='5'/></b></a>",
                           &lim, __LINE__),
                 SZ_STREAM_POLICY_VIOLATION);
    /* default depth limit is 64 */
    char deep[2048] = HDR;
    for (int i = 0; i < 65; i++)
        strcat(deep, "<a>");
    SZ_CHECK_INT(parse_doc(deep, NULL, __LINE__), SZ_STREAM_POLICY_VIOLATION);

    /* limits change between stanzas */
    xml_rec_t r = {0};
    sz_xml_parser_t p;
    sz_xml_parser_init(&p, NULL, &rec_ops, &r);
    const char *st = "<message><body>0123456789012345678901234567890123456789</body></message>";
    SZ_CHECK_INT(sz_xml_parser_feed(&p, HDR, strlen(HDR)), strlen(HDR));
    SZ_CHECK_INT(sz_xml_parser_feed(&p, st, strlen(st)), strlen(st));
    lim.max_stanza_bytes = 32;
    sz_xml_parser_set_limits(&p, &lim);
    SZ_CHECK_INT(sz_xml_parser_feed(&p, "<presence/>", 11), 11);
    SZ_CHECK_INT(sz_xml_parser_feed(&p, st, strlen(st)), -SZ_STREAM_POLICY_VIOLATION);
    sz_xml_parser_free(&p);
    free(r.log);

    /* a huge stanza fed a byte at a time: linear time, one buffer */
    sz_xml_parser_init(&p, NULL, &rec_ops, &r);
    memset(&r, 0, sizeof r);
    SZ_CHECK_INT(sz_xml_parser_feed(&p, HDR, strlen(HDR)), strlen(HDR));
    size_t n = 200 * 1024;
    char *big = sz_malloc(n + 64);
    strcpy(big, "<message><body>");
    size_t o = strlen(big);
    memset(big + o, 'x', n - 40);
    o += n - 40;
    strcpy(big + o, "</body></message>");
    o += 17;
    clock_t t0 = clock();
    size_t peak = 0;
    for (size_t i = 0; i < o; i++) {
        if (sz_xml_parser_feed(&p, big + i, 1) != 1)
            break;
        size_t hb = sz_xml_parser_heap_bytes(&p);
        peak = hb > peak ? hb : peak;
    }
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    SZ_CHECK_INT(r.elements, 1);
    SZ_CHECK(secs < 3.0);
    SZ_CHECK(peak < o + o / 2 + 1024); /* growth by half at most, no worst-case buffer */
    SZ_CHECK_INT(sz_xml_parser_heap_bytes(&p), 0);
    printf("# 200 KiB stanza byte by byte: %.3f s, peak parser heap %zu bytes\n", secs, peak);
    sz_xml_parser_free(&p);
    free(r.log);
    free(big);
}

SZ_TEST(every_split_of_a_stream)
{
    /* A short stream with every construct, cut at every pair of offsets. */
    const char *doc = "<?xml version='1.0'?>" HDR
                      " <message xmlns:p='urn:p' p:a='&amp;' to='a&#x40;b'><body>\xC3\xA9&lt;"
                      "<![CDATA[x]]y]]>\xF0\x9F\x98\x80</body><p:x/></message>\n"
                      "</stream:stream>";
    size_t len = strlen(doc);
    char *whole = rec_parse(doc, len, NULL, 0, NULL);
    SZ_CHECK(strstr(whole, "ERR") == NULL);
    int bad = 0;
    for (size_t a = 1; a < len && !bad; a += 3) {
        for (size_t b = a + 1; b < len && !bad; b++) {
            size_t cuts[2] = {a, b};
            char *s = rec_parse(doc, len, cuts, 2, NULL);
            if (strcmp(s, whole) != 0) {
                printf("# cuts %zu,%zu differ\n", a, b);
                bad = 1;
            }
            free(s);
        }
    }
    SZ_CHECK(!bad);
    free(whole);
}

int main(void)
{
    SZ_RUN(size_and_names);
    SZ_RUN(stream_header);
    SZ_RUN(header_rules);
    SZ_RUN(stanzas_and_zero_copy);
    SZ_RUN(stop_and_reset_in_callback);
    SZ_RUN(reset_inside_callback);
    SZ_RUN(restricted_xml);
    SZ_RUN(entities_and_references);
    SZ_RUN(cdata_and_text);
    SZ_RUN(utf8);
    SZ_RUN(names);
    SZ_RUN(tags_and_attributes);
    SZ_RUN(namespaces);
    SZ_RUN(limits);
    SZ_RUN(every_split_of_a_stream);
    sz_xml_scratch_free();
    return sz_test_done();
}
