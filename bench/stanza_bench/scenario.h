/*
 * Scenario files for `stanza-bench run FILE`: one flat YAML mapping that
 * names the scenario and its parameters (bench/scenarios/ has examples;
 * bench/README-stanza-bench.md lists the keys). Each key is one table row
 * (type, range, the scenarios it applies to) in scenario.c, checked in one
 * place, in the style of core/conf.c: a bad file gives exactly one error,
 * "<file>:<line>: <key>: <message>", for the first problem in the file.
 * Main thread, before the run; no global state.
 */
#ifndef SB_SCENARIO_H
#define SB_SCENARIO_H

#include <stddef.h>

#include "bench/stanza_bench/sb.h"

/* Scenario files are small; a larger one is refused unread. */
#define SB_SCENARIO_MAX_BYTES (64 * 1024)

/** The scenario's name ("connect", "one2one", "roster-presence"). */
const char *sb_scenario_name(enum sb_scenario sc);

/** Parses a scenario name; returns the scenario or -1. */
int sb_scenario_parse_name(const char *name);

/**
 * Parses the scenario file text <text> (<len> bytes; <name> is the file
 * name for messages) over the values already in <cf> and <procs>
 * (defaults): each key present replaces its field. Strings are allocated
 * and stay owned by <cf> for the life of the process. Returns 0, or
 * -EINVAL with one line "<name>:<line>: <key>: <message>" in <err>; <cf>
 * and <procs> may then hold part of the file's values.
 */
int sb_scenario_parse(const char *name, const char *text, size_t len, sb_conf_t *cf,
                      unsigned *procs, char *err, size_t errlen);

/** Reads <path> and parses it as above; -errno when it cannot be read
 * ("<path>: cannot open: ..." in <err>). */
int sb_scenario_load(const char *path, sb_conf_t *cf, unsigned *procs, char *err, size_t errlen);

#endif
