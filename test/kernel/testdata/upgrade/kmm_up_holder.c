// SPDX-License-Identifier: GPL-2.0
/*
 * kmm_up_holder: holds kmm_up. It calls kmm_up_version(), exported by kmm_up,
 * so the kernel lists it in /sys/module/kmm_up/holders and counts it in
 * /sys/module/kmm_up/refcnt until it is removed: kmm_up cannot be unloaded
 * meanwhile.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>

#include "kmm_up.h"

static int __init kmm_up_holder_init(void)
{
	pr_info("holding kmm_up version %s\n", kmm_up_version());
	return 0;
}

static void __exit kmm_up_holder_exit(void)
{
	pr_info("released kmm_up\n");
}

module_init(kmm_up_holder_init);
module_exit(kmm_up_holder_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmm kernel test: holds kmm_up");
