/*
 * Unit tests for core/xml/builder.c: element nesting and self-closing,
 * escaping of attributes and text, rejection of what XML 1.0 cannot carry,
 * sticky errors, raw inclusion, growth, and the open-stream variant.
 */
#include <errno.h>
#include <string.h>

#include "sz_test.h"

#include "core/mem.h"
#include "core/xml/builder.h"

/* Finish <xb> and compare with <want>; returns 1 on match. */
static int done_as(sz_xb_t *xb, const char *want)
{
    char *out;
    size_t len;
    int rc = sz_xb_finish(xb, &out, &len);
    if (rc != 0) {
        printf("# finish failed: %d\n", rc);
        return 0;
    }
    int good = len == strlen(want) && strcmp(out, want) == 0;
    if (!good)
        printf("# got      %s\n# expected %s\n", out, want);
    sz_free(out);
    return good;
}

SZ_TEST(nesting)
{
    sz_xb_t xb;
    sz_xb_init(&xb, 0);
    SZ_CHECK_INT(sz_xb_start(&xb, "iq", NULL), 0);
    SZ_CHECK_INT(sz_xb_attr(&xb, "type", "result"), 0);
    SZ_CHECK_INT(sz_xb_attr(&xb, "id", "r1"), 0);
    SZ_CHECK_INT(sz_xb_attr_n(&xb, "to", "juliet@example.com/balconyXXX", 26), 0);
    SZ_CHECK_INT(sz_xb_start(&xb, "query", "jabber:iq:roster"), 0);
    SZ_CHECK_INT(sz_xb_attr(&xb, "ver", "v1"), 0);
    SZ_CHECK_INT(sz_xb_start(&xb, "item", NULL), 0);
    SZ_CHECK_INT(sz_xb_attr(&xb, "jid", "romeo@example.net"), 0);
    SZ_CHECK_INT(sz_xb_leaf(&xb, "group", NULL, "Friends", 7), 0);
    SZ_CHECK_INT(sz_xb_depth(&xb), 3);
    SZ_CHECK_INT(sz_xb_end(&xb), 0);
    SZ_CHECK_INT(sz_xb_empty(&xb, "item", NULL), 0);
    SZ_CHECK_INT(sz_xb_end(&xb), 0);
    SZ_CHECK_INT(sz_xb_end(&xb), 0);
    SZ_CHECK_INT(sz_xb_depth(&xb), 0);
    SZ_CHECK(done_as(&xb, "<iq type=\"result\" id=\"r1\" to=\"juliet@example.com/balcony\">"
                          "<query xmlns=\"jabber:iq:roster\" ver=\"v1\">"
                          "<item jid=\"romeo@example.net\"><group>Friends</group></item>"
                          "<item/></query></iq>"));
}

SZ_TEST(stream_error)
{
    /* RFC 6120 §4.9: the shape c2s sends before closing a stream */
    sz_xb_t xb;
    sz_xb_init(&xb, 16);
    sz_xb_start(&xb, "stream:error", NULL);
    sz_xb_empty(&xb, "not-well-formed", "urn:ietf:params:xml:ns:xmpp-streams");
    sz_xb_leaf(&xb, "text", "urn:ietf:params:xml:ns:xmpp-streams", "bad <xml> & \"quotes\"", 20);
    sz_xb_end(&xb);
    SZ_CHECK(done_as(&xb, "<stream:error>"
                          "<not-well-formed xmlns=\"urn:ietf:params:xml:ns:xmpp-streams\"/>"
                          "<text xmlns=\"urn:ietf:params:xml:ns:xmpp-streams\">"
                          "bad &lt;xml&gt; &amp; \"quotes\"</text></stream:error>"));
}

SZ_TEST(escaping)
{
    sz_xb_t xb;
    sz_xb_init(&xb, 0);
    sz_xb_start(&xb, "a", NULL);
    SZ_CHECK_INT(sz_xb_attr(&xb, "v", "<&>\"'\t\n\r x"), 0);
    SZ_CHECK_INT(sz_xb_text(&xb, "<&>\"'\t\n\r x", 10), 0);
    sz_xb_end(&xb);
    SZ_CHECK(done_as(&xb, "<a v=\"&lt;&amp;&gt;&quot;&apos;&#9;&#10;&#13; x\">"
                          "&lt;&amp;&gt;\"'\t\n&#13; x</a>"));

    /* non-ASCII passes through; empty text still opens the element */
    sz_xb_init(&xb, 0);
    sz_xb_start(&xb, "body", NULL);
    SZ_CHECK_INT(sz_xb_text(&xb, "", 0), 0);
    sz_xb_end(&xb);
    sz_xb_start(&xb, "b", NULL);
    SZ_CHECK_INT(sz_xb_text(&xb, "fu\xc3\x9f \xe2\x99\x9a \xf0\x9f\x98\x80", 13), 0);
    sz_xb_end(&xb);
    SZ_CHECK(done_as(&xb, "<body></body><b>fu\xc3\x9f \xe2\x99\x9a \xf0\x9f\x98\x80</b>"));
}

/* Each bad input must fail with -EINVAL, and the error must stick. */
static int rejects_text(const char *s, size_t len)
{
    sz_xb_t xb;
    char *out;
    size_t n;
    sz_xb_init(&xb, 0);
    sz_xb_start(&xb, "a", NULL);
    int r1 = sz_xb_text(&xb, s, len);
    sz_xb_end(&xb);
    int r2 = sz_xb_finish(&xb, &out, &n);
    return r1 == -EINVAL && r2 == -EINVAL && out == NULL;
}

static int rejects_attr(const char *s, size_t len)
{
    sz_xb_t xb;
    char *out;
    size_t n;
    sz_xb_init(&xb, 0);
    sz_xb_start(&xb, "a", NULL);
    int r1 = sz_xb_attr_n(&xb, "v", s, len);
    int r2 = sz_xb_end(&xb);
    int r3 = sz_xb_finish(&xb, &out, &n);
    return r1 == -EINVAL && r2 == -EINVAL && r3 == -EINVAL && out == NULL;
}

SZ_TEST(xml10_chars)
{
    SZ_CHECK(rejects_text("a\0b", 3));
    SZ_CHECK(rejects_text("\x01", 1));
    SZ_CHECK(rejects_text("\x1f", 1));
    SZ_CHECK(rejects_text("\xef\xbf\xbe", 3));     /* U+FFFE */
    SZ_CHECK(rejects_text("\xef\xbf\xbf", 3));     /* U+FFFF */
    SZ_CHECK(rejects_text("\xed\xa0\x80", 3));     /* surrogate */
    SZ_CHECK(rejects_text("\xc0\xbc", 2));         /* overlong '<' */
    SZ_CHECK(rejects_text("\xe0\x80\xbc", 3));     /* overlong '<' */
    SZ_CHECK(rejects_text("\xc3", 1));             /* truncated */
    SZ_CHECK(rejects_text("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    SZ_CHECK(rejects_text("\x80", 1));
    SZ_CHECK(rejects_attr("\x0b", 1));
    SZ_CHECK(rejects_attr("\xef\xbf\xbf", 3));
    SZ_CHECK(rejects_attr("ok\xff", 3));
    /* the allowed edges */
    sz_xb_t xb;
    sz_xb_init(&xb, 0);
    sz_xb_start(&xb, "a", NULL);
    SZ_CHECK_INT(sz_xb_text(&xb, "\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbd\xf4\x8f\xbf\xbf", 13), 0);
    sz_xb_end(&xb);
    SZ_CHECK(done_as(&xb, "<a>\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbd\xf4\x8f\xbf\xbf</a>"));
}

SZ_TEST(misuse)
{
    sz_xb_t xb;
    char *out;
    size_t n;

    /* attribute after content */
    sz_xb_init(&xb, 0);
    sz_xb_start(&xb, "a", NULL);
    sz_xb_text(&xb, "x", 1);
    SZ_CHECK_INT(sz_xb_attr(&xb, "b", "c"), -EINVAL);
    SZ_CHECK_INT(sz_xb_end(&xb), -EINVAL); /* sticky */
    SZ_CHECK_INT(sz_xb_finish(&xb, &out, &n), -EINVAL);
    SZ_CHECK(out == NULL);

    /* attribute at top level, end with nothing open, unbalanced finish */
    sz_xb_init(&xb, 0);
    SZ_CHECK_INT(sz_xb_attr(&xb, "b", "c"), -EINVAL);
    sz_xb_free(&xb);
    sz_xb_init(&xb, 0);
    SZ_CHECK_INT(sz_xb_end(&xb), -EINVAL);
    sz_xb_free(&xb);
    sz_xb_init(&xb, 0);
    sz_xb_start(&xb, "a", NULL);
    SZ_CHECK_INT(sz_xb_finish(&xb, &out, &n), -EINVAL);

    /* duplicate attributes, including xmlns given at start */
    sz_xb_init(&xb, 0);
    sz_xb_start(&xb, "a", "urn:x");
    SZ_CHECK_INT(sz_xb_attr(&xb, "id", "1"), 0);
    SZ_CHECK_INT(sz_xb_attr(&xb, "d", "2"), 0); /* "id" ends in "d": not a duplicate */
    SZ_CHECK_INT(sz_xb_attr(&xb, "xmlns", "urn:y"), -EINVAL);
    sz_xb_free(&xb);
    sz_xb_init(&xb, 0);
    sz_xb_start(&xb, "a", NULL);
    SZ_CHECK_INT(sz_xb_attr(&xb, "t", " x=\"1"), 0);
    SZ_CHECK_INT(sz_xb_attr(&xb, "x", "2"), 0); /* " x=" inside a value is not an attribute */
    SZ_CHECK_INT(sz_xb_attr(&xb, "t", "3"), -EINVAL);
    sz_xb_free(&xb);

    /* bad names */
    const char *names[] = {"", "1a", "-a", ".a", "a b", "a>", "a/", "a\"", "a=b", "a&"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        sz_xb_init(&xb, 0);
        SZ_CHECK_INT(sz_xb_start(&xb, names[i], NULL), -EINVAL);
        sz_xb_free(&xb);
        sz_xb_init(&xb, 0);
        sz_xb_start(&xb, "a", NULL);
        SZ_CHECK_INT(sz_xb_attr(&xb, names[i], "v"), -EINVAL);
        sz_xb_free(&xb);
    }
    sz_xb_init(&xb, 0);
    SZ_CHECK_INT(sz_xb_start(&xb, "a", "urn:\x01"), -EINVAL);
    sz_xb_free(&xb);

    /* good names with prefixes, digits, dashes, dots, non-ASCII */
    sz_xb_init(&xb, 0);
    SZ_CHECK_INT(sz_xb_empty(&xb, "stream:features", NULL), 0);
    SZ_CHECK_INT(sz_xb_empty(&xb, "_a-1.b", NULL), 0);
    SZ_CHECK_INT(sz_xb_empty(&xb, "\xc3\xa9t\xc3\xa9", NULL), 0);
    SZ_CHECK(done_as(&xb, "<stream:features/><_a-1.b/><\xc3\xa9t\xc3\xa9/>"));

    /* a builder is reusable after finish, and free after finish is fine */
    sz_xb_init(&xb, 0);
    sz_xb_empty(&xb, "a", NULL);
    SZ_CHECK(done_as(&xb, "<a/>"));
    sz_xb_free(&xb);
}

SZ_TEST(raw)
{
    /* a stored stanza wrapped for offline delivery or a carbon */
    const char *stanza = "<message from='a@b' to='c@d'><body>hi &amp; bye</body></message>";
    sz_xb_t xb;
    sz_xb_init(&xb, 0);
    sz_xb_start(&xb, "message", NULL);
    sz_xb_attr(&xb, "to", "c@d/r");
    sz_xb_start(&xb, "forwarded", "urn:xmpp:forward:0");
    SZ_CHECK_INT(sz_xb_raw(&xb, stanza, strlen(stanza)), 0);
    sz_xb_end(&xb);
    sz_xb_end(&xb);
    SZ_CHECK(done_as(&xb, "<message to=\"c@d/r\"><forwarded xmlns=\"urn:xmpp:forward:0\">"
                          "<message from='a@b' to='c@d'><body>hi &amp; bye</body></message>"
                          "</forwarded></message>"));
    /* raw at top level: a sequence of stanzas */
    sz_xb_init(&xb, 0);
    sz_xb_raw(&xb, "<a/>", 4);
    sz_xb_raw(&xb, "<b/>", 4);
    SZ_CHECK(done_as(&xb, "<a/><b/>"));
}

SZ_TEST(open_stream)
{
    sz_xb_t xb;
    char *out;
    size_t n;
    sz_xb_init(&xb, 0);
    sz_xb_start(&xb, "stream:stream", "jabber:client");
    sz_xb_attr(&xb, "xmlns:stream", "http://etherx.jabber.org/streams");
    sz_xb_attr(&xb, "from", "example.com");
    sz_xb_attr(&xb, "version", "1.0");
    SZ_CHECK_INT(sz_xb_finish_open(&xb, &out, &n), 0);
    SZ_CHECK_STR(out, "<stream:stream xmlns=\"jabber:client\" "
                      "xmlns:stream=\"http://etherx.jabber.org/streams\" from=\"example.com\" "
                      "version=\"1.0\">");
    SZ_CHECK_INT(n, strlen(out));
    sz_free(out);
}

SZ_TEST(growth)
{
    /* deep nesting and long content force both buffers to grow many times */
    sz_xb_t xb;
    char *out;
    size_t n;
    char name[16];
    sz_xb_init(&xb, 1);
    for (int i = 0; i < 500; i++) {
        snprintf(name, sizeof name, "e%d", i);
        SZ_CHECK_INT(sz_xb_start(&xb, name, NULL), 0);
    }
    char *big = sz_malloc(100000);
    memset(big, '&', 100000);
    SZ_CHECK_INT(sz_xb_text(&xb, big, 100000), 0);
    for (int i = 0; i < 500; i++)
        SZ_CHECK_INT(sz_xb_end(&xb), 0);
    SZ_CHECK_INT(sz_xb_finish(&xb, &out, &n), 0);
    SZ_CHECK(strncmp(out, "<e0><e1><e2>", 12) == 0);
    SZ_CHECK(strcmp(out + n - 10, "</e1></e0>") == 0);
    SZ_CHECK(strstr(out, "<e499>&amp;&amp;") != NULL);
    SZ_CHECK(strstr(out, "&amp;</e499></e498>") != NULL);
    /* 500 opens + 500 closes + 100000 * "&amp;" */
    size_t want = 0;
    for (int i = 0; i < 500; i++)
        want += 2 * (size_t)snprintf(name, sizeof name, "e%d", i) + 5;
    SZ_CHECK_INT(n, want + 500000);
    sz_free(out);
    sz_free(big);
}

int main(void)
{
    SZ_RUN(nesting);
    SZ_RUN(stream_error);
    SZ_RUN(escaping);
    SZ_RUN(xml10_chars);
    SZ_RUN(misuse);
    SZ_RUN(raw);
    SZ_RUN(open_stream);
    SZ_RUN(growth);
    return sz_test_done();
}
