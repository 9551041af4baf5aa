// SPDX-License-Identifier: GPL-2.0
/*
 * kmm_a: the module KMM loads (modprobe.moduleName), with two parameters.
 *
 * It calls kmm_b_greet(), exported by kmm_b, so kmm_b must be loaded first.
 * No MODULE_SOFTDEP: the load order is KMM's modulesLoadingOrder's job.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/moduleparam.h>

#include "kmm_b.h"

static int answer;
module_param(answer, int, 0444);
MODULE_PARM_DESC(answer, "A number that is logged on load (default 0)");

static char *greeting = "hello";
module_param(greeting, charp, 0444);
MODULE_PARM_DESC(greeting, "A word that is logged on load (default \"hello\")");

static int __init kmm_a_init(void)
{
	int n = kmm_b_greet(KBUILD_MODNAME);

	pr_info("%s, kmm_b (greeting #%d)\n", greeting, n);
	pr_info("loaded answer=%d\n", answer);
	return 0;
}

static void __exit kmm_a_exit(void)
{
	pr_info("unloaded\n");
}

module_init(kmm_a_init);
module_exit(kmm_a_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("KMM example: parameters answer and greeting, needs kmm_b");
MODULE_VERSION("1.0.0");
