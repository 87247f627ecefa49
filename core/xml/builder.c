/*
 * XML builder: one growable output buffer plus a stack of open elements.
 *
 * The stack stores (offset, length) of each element's name as already
 * written in the output, so closing a tag copies the name from there and
 * names are never stored twice. The output only grows, so those offsets
 * stay valid. A start tag is left unterminated ("<a b=\"1\"") until its
 * first content or its end, which is how "<a/>" is produced.
 *
 * Used by the thread that owns the builder only. Independent of the parser.
 */
#include "core/xml/builder.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/mem.h"

#define NO_TAG SIZE_MAX

void sz_xb_init(sz_xb_t *xb, size_t hint)
{
    xb->_cap = hint ? hint : 256;
    xb->_buf = sz_malloc(xb->_cap);
    xb->_len = 0;
    xb->_open = NULL;
    xb->_depth = 0;
    xb->_open_cap = 0;
    xb->_tag = NO_TAG;
    xb->_err = 0;
}

void sz_xb_free(sz_xb_t *xb)
{
    sz_free(xb->_buf);
    sz_free(xb->_open);
    xb->_buf = NULL;
    xb->_open = NULL;
    xb->_len = xb->_cap = 0;
    xb->_depth = xb->_open_cap = 0;
    xb->_tag = NO_TAG;
}

static int fail(sz_xb_t *xb, int err)
{
    if (!xb->_err)
        xb->_err = err;
    return xb->_err;
}

/* Make room for <n> more bytes plus a NUL for sz_xb_finish(). */
static void reserve(sz_xb_t *xb, size_t n)
{
    if (n + 1 <= xb->_cap - xb->_len)
        return;
    size_t cap = xb->_cap ? xb->_cap : 256;
    while (cap - xb->_len < n + 1)
        cap *= 2;
    xb->_buf = sz_realloc(xb->_buf, cap);
    xb->_cap = cap;
}

static void put(sz_xb_t *xb, const char *s, size_t n)
{
    reserve(xb, n);
    memcpy(xb->_buf + xb->_len, s, n);
    xb->_len += n;
}

static void putc_(sz_xb_t *xb, char c)
{
    reserve(xb, 1);
    xb->_buf[xb->_len++] = c;
}

/* Terminate a start tag still taking attributes: content follows. */
static void close_tag(sz_xb_t *xb)
{
    if (xb->_tag != NO_TAG) {
        putc_(xb, '>');
        xb->_tag = NO_TAG;
    }
}

/* A simplified XML Name (XML 1.0 §2.3): ASCII letters, digits, '_', '-',
 * '.', ':' and any non-ASCII byte (names are server constants; full
 * NameStartChar tables are not worth carrying), not starting with a digit,
 * '-' or '.'. */
static bool valid_name(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > UINT32_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)n[i];
        bool letter =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || c >= 0x80;
        bool other = (c >= '0' && c <= '9') || c == '-' || c == '.';
        if (!letter && !(other && i > 0))
            return false;
    }
    return true;
}

/*
 * Validate <s>/<len> as UTF-8 made of XML 1.0 Chars (§2.2):
 * #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF].
 * Overlong forms and surrogates are malformed UTF-8 and rejected too.
 */
static bool valid_chars(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80) {
            if (c < 0x20 && c != 0x9 && c != 0xA && c != 0xD)
                return false;
            i++;
            continue;
        }
        uint32_t cp, min;
        size_t k;
        if (c >= 0xC2 && c <= 0xDF)
            k = 1, cp = c & 0x1F, min = 0x80;
        else if (c >= 0xE0 && c <= 0xEF)
            k = 2, cp = c & 0x0F, min = 0x800;
        else if (c >= 0xF0 && c <= 0xF4)
            k = 3, cp = c & 0x07, min = 0x10000;
        else
            return false;
        if (len - i - 1 < k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0xFFFE ||
            cp == 0xFFFF)
            return false;
        i += k + 1;
    }
    return true;
}

/* Escaped copy; runs of plain bytes are copied in one go. In attribute
 * values the quotes and whitespace controls are escaped as well. */
static void put_escaped(sz_xb_t *xb, const char *s, size_t len, bool attr)
{
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        const char *rep;
        switch (s[i]) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '\r':
            rep = "&#13;";
            break; /* line-end normalization would eat it */
        case '"':
            rep = attr ? "&quot;" : NULL;
            break;
        case '\'':
            rep = attr ? "&apos;" : NULL;
            break;
        case '\t':
            rep = attr ? "&#9;" : NULL;
            break; /* attribute-value normalization */
        case '\n':
            rep = attr ? "&#10;" : NULL;
            break;
        default:
            rep = NULL;
            break;
        }
        if (!rep)
            continue;
        put(xb, s + run, i - run);
        put(xb, rep, strlen(rep));
        run = i + 1;
    }
    put(xb, s + run, len - run);
}

static void put_attr(sz_xb_t *xb, const char *name, size_t nlen, const char *v, size_t vlen)
{
    putc_(xb, ' ');
    put(xb, name, nlen);
    put(xb, "=\"", 2);
    put_escaped(xb, v, vlen, true);
    putc_(xb, '"');
}

int sz_xb_start(sz_xb_t *xb, const char *name, const char *xmlns)
{
    if (xb->_err)
        return xb->_err;
    if (!valid_name(name) || (xmlns && !valid_chars(xmlns, strlen(xmlns))))
        return fail(xb, -EINVAL);
    close_tag(xb);
    if (xb->_depth == xb->_open_cap) {
        xb->_open_cap = xb->_open_cap ? 2 * xb->_open_cap : 8;
        xb->_open = sz_realloc(xb->_open, xb->_open_cap * sizeof *xb->_open);
    }
    size_t nlen = strlen(name);
    xb->_tag = xb->_len;
    putc_(xb, '<');
    xb->_open[xb->_depth].off = (uint32_t)xb->_len;
    xb->_open[xb->_depth].len = (uint32_t)nlen;
    xb->_depth++;
    put(xb, name, nlen);
    if (xmlns)
        put_attr(xb, "xmlns", 5, xmlns, strlen(xmlns));
    /* Offsets are 32-bit: builders make stanzas, far below 4 GiB. */
    if (xb->_len > UINT32_MAX)
        return fail(xb, -E2BIG);
    return 0;
}

/* True when the open start tag already has attribute <name>. Values are
 * escaped, so ` name="` can only occur as an attribute's own start. */
static bool has_attr(const sz_xb_t *xb, const char *name, size_t nlen)
{
    const char *p = xb->_buf + xb->_tag, *end = xb->_buf + xb->_len;
    while ((p = memchr(p, ' ', (size_t)(end - p))) != NULL) {
        p++;
        if ((size_t)(end - p) > nlen + 1 && memcmp(p, name, nlen) == 0 && p[nlen] == '=' &&
            p[nlen + 1] == '"')
            return true;
    }
    return false;
}

int sz_xb_attr_n(sz_xb_t *xb, const char *name, const char *value, size_t len)
{
    if (xb->_err)
        return xb->_err;
    if (xb->_tag == NO_TAG || !valid_name(name) || !valid_chars(value, len))
        return fail(xb, -EINVAL);
    size_t nlen = strlen(name);
    if (has_attr(xb, name, nlen))
        return fail(xb, -EINVAL);
    put_attr(xb, name, nlen, value, len);
    return 0;
}

int sz_xb_attr(sz_xb_t *xb, const char *name, const char *value)
{
    return sz_xb_attr_n(xb, name, value, strlen(value));
}

int sz_xb_text(sz_xb_t *xb, const char *s, size_t len)
{
    if (xb->_err)
        return xb->_err;
    if (!valid_chars(s, len))
        return fail(xb, -EINVAL);
    close_tag(xb);
    put_escaped(xb, s, len, false);
    return 0;
}

int sz_xb_raw(sz_xb_t *xb, const char *s, size_t len)
{
    if (xb->_err)
        return xb->_err;
    close_tag(xb);
    put(xb, s, len);
    return 0;
}

int sz_xb_end(sz_xb_t *xb)
{
    if (xb->_err)
        return xb->_err;
    if (xb->_depth == 0)
        return fail(xb, -EINVAL);
    struct sz_xb_open o = xb->_open[--xb->_depth];
    if (xb->_tag != NO_TAG) {
        put(xb, "/>", 2);
        xb->_tag = NO_TAG;
        return 0;
    }
    reserve(xb, o.len + 3); /* before taking pointers into _buf */
    put(xb, "</", 2);
    put(xb, xb->_buf + o.off, o.len);
    putc_(xb, '>');
    return 0;
}

int sz_xb_empty(sz_xb_t *xb, const char *name, const char *xmlns)
{
    int rc = sz_xb_start(xb, name, xmlns);
    return rc ? rc : sz_xb_end(xb);
}

int sz_xb_leaf(sz_xb_t *xb, const char *name, const char *xmlns, const char *text, size_t len)
{
    int rc = sz_xb_start(xb, name, xmlns);
    if (!rc)
        rc = sz_xb_text(xb, text, len);
    return rc ? rc : sz_xb_end(xb);
}

size_t sz_xb_len(const sz_xb_t *xb)
{
    return xb->_len;
}

unsigned sz_xb_depth(const sz_xb_t *xb)
{
    return xb->_depth;
}

static int take(sz_xb_t *xb, char **out, size_t *len, bool allow_open)
{
    int rc = xb->_err;
    if (!rc && xb->_depth > 0 && !allow_open)
        rc = -EINVAL;
    *out = NULL;
    if (!rc) {
        close_tag(xb);
        reserve(xb, 0);
        xb->_buf[xb->_len] = '\0';
        *out = xb->_buf;
        *len = xb->_len;
        xb->_buf = NULL; /* now the caller's */
    }
    sz_xb_free(xb);
    xb->_err = 0;
    return rc;
}

int sz_xb_finish(sz_xb_t *xb, char **out, size_t *len)
{
    return take(xb, out, len, false);
}

int sz_xb_finish_open(sz_xb_t *xb, char **out, size_t *len)
{
    return take(xb, out, len, true);
}
