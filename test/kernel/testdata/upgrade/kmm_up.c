// SPDX-License-Identifier: GPL-2.0
/*
 * kmm_up: the module test/kernel upgrades while another module holds it.
 *
 * Its version comes from kmm_up_version.h, which the test writes before each
 * build: a file of the module's folder, so that the two builds differ in
 * srcversion (modpost sums the sources in the module's folder) as well as in
 * MODULE_VERSION.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>

#include "kmm_up.h"
#include "kmm_up_version.h"

const char *kmm_up_version(void)
{
	return KMM_UP_VERSION;
}
EXPORT_SYMBOL_GPL(kmm_up_version);

static int __init kmm_up_init(void)
{
	pr_info("version %s loaded\n", KMM_UP_VERSION);
	return 0;
}

static void __exit kmm_up_exit(void)
{
	pr_info("version %s unloaded\n", KMM_UP_VERSION);
}

module_init(kmm_up_init);
module_exit(kmm_up_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmm kernel test: the module upgraded under a holder");
MODULE_VERSION(KMM_UP_VERSION);
