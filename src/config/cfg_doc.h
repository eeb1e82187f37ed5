/* cfg_doc.h - the configuration reference (docs/CONFIG.md), generated from
 * the key tables so it always says what the loader does. `meridian check
 * --reference` prints it; a unit test compares it with the file. */
#ifndef MERIDIAN_CFG_DOC_H
#define MERIDIAN_CFG_DOC_H

#include <stdio.h>

/* The example shown in the reference; the unit tests load it. It uses
 * ${MERIDIAN_TOKEN}. */
extern const char cfg_doc_example[];
/* What `meridian check` prints for it. */
extern const char cfg_doc_example_summary[];

void cfg_doc_reference(FILE *f);

#endif
