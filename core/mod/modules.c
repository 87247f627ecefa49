/*
 * The module list. Order matters only where two modules hook the same
 * point: earlier ones see the stanza first.
 */
#include "core/mod/modules.h"

#include "core/hooks.h"

typedef void (*register_fn)(const sz_mod_env_t *env);

static const register_fn modules[] = {
    sz_mod_disco_register,   /* XEP-0030 */
    sz_mod_ping_register,    /* XEP-0199 */
    sz_mod_version_register, /* XEP-0092 */
    sz_mod_register_register, /* XEP-0077 */
    sz_mod_blocking_register, /* XEP-0191: before every module that sends, stores or answers */
    sz_mod_roster_register,  /* RFC 6121 §2 rosters, XEP-0237 versioning */
    sz_mod_subscription_register, /* RFC 6121 §3 subscriptions, §3.4 pre-approval */
    sz_mod_presence_register, /* RFC 6121 §4 presence to contacts */
    sz_mod_vcard_register,   /* XEP-0054 */
    sz_mod_private_register, /* XEP-0049 */
    sz_mod_last_register,    /* XEP-0012 (uses the roster cache) */
    sz_mod_offline_register, /* XEP-0160 */
    sz_mod_carbons_register, /* XEP-0280 */
    sz_mod_csi_register,     /* XEP-0352; last: it holds what the others deliver */
};

void sz_mods_register(const sz_mod_env_t *env)
{
    for (size_t i = 0; i < sizeof(modules) / sizeof(modules[0]); i++)
        modules[i](env);
    sz_hooks_freeze();
}
