// SPDX-License-Identifier: GPL-2.0
/*
 * kmm_b: the dependency of the kmm example.
 *
 * It exports kmm_b_greet() for kmm_a and, when it loads, asks the firmware
 * loader for kmm_b.fw, so that an image's modprobe.firmwarePath can be tested.
 * A missing firmware file is reported but is not fatal.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/err.h>
#include <linux/firmware.h>
#include <linux/module.h>
#include <linux/platform_device.h>
#include <linux/string.h>

#include "kmm_b.h"

#define KMM_B_FIRMWARE "kmm_b.fw"
/* At most this many bytes of the firmware's first line are logged. */
#define KMM_B_FIRMWARE_LINE_MAX 80

static struct platform_device *kmm_b_pdev;
static atomic_t kmm_b_greetings = ATOMIC_INIT(0);

int kmm_b_greet(const char *who)
{
	int n = atomic_inc_return(&kmm_b_greetings);

	pr_info("greeting #%d from %s\n", n, who);
	return n;
}
EXPORT_SYMBOL_GPL(kmm_b_greet);

static void kmm_b_load_firmware(struct device *dev)
{
	const struct firmware *fw;
	const u8 *newline;
	size_t line;

	if (request_firmware(&fw, KMM_B_FIRMWARE, dev)) {
		pr_info("firmware %s missing\n", KMM_B_FIRMWARE);
		return;
	}

	line = min_t(size_t, fw->size, KMM_B_FIRMWARE_LINE_MAX);
	newline = memchr(fw->data, '\n', line);
	if (newline)
		line = newline - fw->data;

	/* %*pE escapes anything unprintable, in case the file is binary. */
	pr_info("firmware %s: %zu bytes: %*pE\n", KMM_B_FIRMWARE, fw->size,
		(int)line, fw->data);
	release_firmware(fw);
}

static int __init kmm_b_init(void)
{
	/* request_firmware() needs a device; a bare platform device will do. */
	kmm_b_pdev = platform_device_register_simple("kmm_b", PLATFORM_DEVID_NONE,
						     NULL, 0);
	if (IS_ERR(kmm_b_pdev))
		return PTR_ERR(kmm_b_pdev);

	pr_info("loaded\n");
	kmm_b_load_firmware(&kmm_b_pdev->dev);
	return 0;
}

static void __exit kmm_b_exit(void)
{
	platform_device_unregister(kmm_b_pdev);
	pr_info("unloaded\n");
}

module_init(kmm_b_init);
module_exit(kmm_b_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("KMM example: exports kmm_b_greet() and loads kmm_b.fw");
MODULE_VERSION("1.0.0");
MODULE_FIRMWARE(KMM_B_FIRMWARE);
