/*
 * Tests for core/mod/mod_last.c through the router: which status a logout
 * records (XEP-0012 §3: the status of the last unavailable presence),
 * with several resources, a resource that comes back, several <status/>
 * elements and a long one; and who may read it. The wire protocol and the
 * seconds are checked end to end in tests/integ/test_account_data.py.
 */
#include "im_test.h"

#define A  "alice@" IM_DOMAIN
#define B  "bob@" IM_DOMAIN
#define C  "carol@" IM_DOMAIN
#define NS "xmlns=\"jabber:iq:last\""

static fs_t a1, a2, b1, c1, c2;

/* Alice asks about herself from a session that is not available, so the
 * answer comes from the stored record. */
static void check_own(const char *needle)
{
    fs_bind(&a2, A "/probe");
    fs_send(&a2, "<iq from='" A "/probe' type='get' id='q'><query " NS "/></iq>");
    CHECK_GOT(&a2, "id=\"q\"", "type=\"result\"", "seconds=\"", needle);
    fs_unbind(&a2);
}

SZ_TEST(status_of_the_last_session)
{
    fs_bind(&a1, A "/pc");
    fs_send(&a1, "<presence from='" A "/pc'/>");
    fs_bind(&a2, A "/phone");
    fs_send(&a2, "<presence from='" A "/phone'/>");
    /* The pc says goodbye but stays bound; the phone ends without a word:
     * not the last session, nothing recorded; then the pc ends. */
    fs_send(&a1, "<presence from='" A "/pc' type='unavailable'><status>bye from pc</status>"
                 "</presence>");
    fs_unbind(&a2);
    fs_unbind(&a1);
    check_own(">bye from pc</query>");
}

SZ_TEST(available_again_forgets)
{
    fs_bind(&a1, A "/pc");
    fs_send(&a1, "<presence from='" A "/pc'/>");
    fs_send(&a1, "<presence from='" A "/pc' type='unavailable'><status>brb</status></presence>");
    fs_send(&a1, "<presence from='" A "/pc'/>");
    fs_unbind(&a1); /* a dropped connection: no status */
    check_own("/>");
    CHECK_NOT(&a2, "brb");
}

SZ_TEST(status_choice_and_length)
{
    fs_bind(&a1, A "/pc");
    fs_send(&a1, "<presence from='" A "/pc'/>");
    fs_send(&a1, "<presence from='" A "/pc' type='unavailable'>"
                 "<status xml:lang='de'>Tschüss</status><status>Bye</status></presence>");
    fs_unbind(&a1);
    check_own(">Bye</query>");
    /* 1023 ASCII bytes then a 2-byte character: cut before it. */
    char status[1100];
    memset(status, 'x', 1023);
    memcpy(status + 1023, "é and more", sizeof("é and more"));
    fs_bind(&a1, A "/pc");
    fs_send(&a1, "<presence from='" A "/pc'/>");
    fs_send(&a1, "<presence from='" A "/pc' type='unavailable'><status>%s</status></presence>",
            status);
    fs_unbind(&a1);
    status[1023] = '\0';
    char want[1200];
    snprintf(want, sizeof(want), ">%s</query>", status);
    check_own(want);
}

SZ_TEST(who_may_read)
{
    /* Bob has no subscription: forbidden, online or not. */
    fs_bind(&b1, B "/pc");
    fs_send(&b1, "<iq from='" B "/pc' to='" A "' type='get' id='b'><query " NS "/></iq>");
    CHECK_GOT(&b1, "id=\"b\"", "type=\"error\"", "<forbidden");
    fs_bind(&a1, A "/pc");
    fs_send(&a1, "<presence from='" A "/pc'/>");
    fs_clear(&b1);
    fs_send(&b1, "<iq from='" B "/pc' to='" A "' type='get' id='b2'><query " NS "/></iq>");
    CHECK_GOT(&b1, "id=\"b2\"", "type=\"error\"", "<forbidden");
    /* Bob subscribes, Alice approves: Bob may see her, 0 while online. */
    fs_send(&b1, "<presence from='" B "/pc' to='" A "' type='subscribe'/>");
    fs_send(&a1, "<presence from='" A "/pc' to='" B "' type='subscribed'/>");
    fs_clear(&b1);
    fs_send(&b1, "<iq from='" B "/pc' to='" A "' type='get' id='b3'><query " NS "/></iq>");
    CHECK_GOT(&b1, "id=\"b3\"", "type=\"result\"", "seconds=\"0\"");
    fs_send(&a1, "<presence from='" A "/pc' type='unavailable'><status>off</status></presence>");
    fs_unbind(&a1);
    fs_clear(&b1);
    fs_send(&b1, "<iq from='" B "/pc' to='" A "' type='get' id='b4'><query " NS "/></iq>");
    CHECK_GOT(&b1, "id=\"b4\"", "type=\"result\"", ">off</query>");
    fs_unbind(&b1);
}

/* A session that ends while another is bound is no logout: nothing is
 * recorded (Carol never logged out: item-not-found). */
SZ_TEST(no_record_while_a_session_remains)
{
    fs_bind(&c1, C "/pc");
    fs_send(&c1, "<presence from='" C "/pc'/>");
    fs_bind(&c2, C "/phone");
    fs_send(&c1, "<presence from='" C "/pc' type='unavailable'><status>gone</status></presence>");
    fs_unbind(&c1);
    fs_send(&c2, "<iq from='" C "/phone' type='get' id='c'><query " NS "/></iq>");
    CHECK_GOT(&c2, "id=\"c\"", "type=\"error\"", "<item-not-found");
    fs_unbind(&c2);
}

static void body(void)
{
    SZ_RUN(status_of_the_last_session);
    SZ_RUN(available_again_forgets);
    SZ_RUN(status_choice_and_length);
    SZ_RUN(who_may_read);
    SZ_RUN(no_record_while_a_session_remains);
}

int main(void)
{
    static const char *const users[] = {A, B, C, NULL};
    return im_main("last", users, body);
}
