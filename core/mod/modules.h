/*
 * The feature modules (DESIGN §3a): one file per XMPP feature in this
 * folder, each reached only through the router's hook table
 * (core/hooks.h). The list of modules is modules.c; adding a XEP is one
 * new file and one line there.
 */
#ifndef SZ_CORE_MOD_MODULES_H
#define SZ_CORE_MOD_MODULES_H

#include "core/conf.h"
#include "storage/store.h"

/* What a module gets at registration. Both outlive the node. */
typedef struct sz_mod_env {
    const sz_conf_t *conf;
    sz_store_t *store; /* NULL: no storage (tests of the router alone) */
    /* SCRAM key derivation (net/scram.h's sz_scram_derive_all, which the
     * modules' library cannot link itself: DESIGN §7), or NULL. */
    int (*derive)(const char *password, size_t len, uint32_t iterations, sz_scram_creds_t *out);
} sz_mod_env_t;

/**
 * Main thread, before reactors start. Registers every module of the list
 * in the hook table, then freezes the table. <env> must outlive the node.
 */
void sz_mods_register(const sz_mod_env_t *env);

/* One registration function per module, called by sz_mods_register() in
 * list order (which is the order their hooks run). */
void sz_mod_ping_register(const sz_mod_env_t *env);
void sz_mod_disco_register(const sz_mod_env_t *env);
void sz_mod_version_register(const sz_mod_env_t *env);
void sz_mod_register_register(const sz_mod_env_t *env);
/* XEP-0191: its hooks run before the IM modules' (blocked stanzas stop
 * there); it uses the roster's cache for presence. */
void sz_mod_blocking_register(const sz_mod_env_t *env);
/* The roster module first: the other two use its cache and slots. */
void sz_mod_roster_register(const sz_mod_env_t *env);
void sz_mod_subscription_register(const sz_mod_env_t *env);
void sz_mod_presence_register(const sz_mod_env_t *env);
void sz_mod_vcard_register(const sz_mod_env_t *env);
void sz_mod_private_register(const sz_mod_env_t *env);
void sz_mod_last_register(const sz_mod_env_t *env);
void sz_mod_carbons_register(const sz_mod_env_t *env);
void sz_mod_csi_register(const sz_mod_env_t *env);
void sz_mod_offline_register(const sz_mod_env_t *env);

#endif
