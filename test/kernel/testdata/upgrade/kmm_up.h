/* SPDX-License-Identifier: GPL-2.0 */
#ifndef KMM_UP_H
#define KMM_UP_H

/* The version of the loaded kmm_up; kmm_up_holder calls it. */
const char *kmm_up_version(void);

#endif
