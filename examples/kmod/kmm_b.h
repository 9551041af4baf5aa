/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Interface that kmm_b exports to kmm_a. Because kmm_a calls kmm_b_greet(),
 * kmm_a.ko has an undefined symbol that only kmm_b.ko provides: kmm_b must be
 * loaded first (KMM's modprobe.modulesLoadingOrder: [kmm_a, kmm_b]).
 */
#ifndef KMM_B_H
#define KMM_B_H

/*
 * kmm_b_greet - log a greeting on behalf of another module.
 * @who: name of the caller, printed as is.
 *
 * Returns how many greetings kmm_b has logged so far, this one included.
 */
int kmm_b_greet(const char *who);

#endif /* KMM_B_H */
