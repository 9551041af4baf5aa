package dockerfiles

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"kmm.dev/kmm/internal/busybox"
)

// valuesFile is the chart's values.yaml, relative to this package; its build.osDefaults holds
// the recipes.
const valuesFile = "../../charts/kmm/values.yaml"

// families are the OS families build.osDefaults must define, no more and no fewer (kmm-render
// names a kernel's nodes' OS this way: nodes.OSFamily). Adding one means adding its rows to
// headerCases and kmodCases below.
var families = []string{"al2", "al2023", "ubuntu", "debian", "bottlerocket", "cos"}

// baseImages are the families' default base images, as kmm-render gets them (it replaces
// ${KMM_OS_RELEASE} and ${KMM_OS_VARIANT}).
var baseImages = map[string]string{
	"al2":          "amazonlinux:2",
	"al2023":       "amazonlinux:2023",
	"ubuntu":       "ubuntu:${KMM_OS_RELEASE}",
	"debian":       "debian:${KMM_OS_VARIANT}",
	"bottlerocket": "amazonlinux:2023",
	"cos":          "debian:trixie",
}

// bottlerocketRootSHA512 is the sha512 of Bottlerocket's root.json that its documentation
// gives, the recipe's default for BOTTLEROCKET_ROOT_SHA512.
const bottlerocketRootSHA512 = "2ff1fbf99b20dd7ff5d2c84243a8e3b51701183b1f524b7d470a6b7a9b0172fbb36a0949b7e586ab7ccb6e348eb77125d6ed9fd1a638f4381e4f3f084ff38596"

// fakeTools are the commands of testdata/bin. The recipes must not reach a real package manager
// or downloader: TestMain fails when one of these fakes is missing.
var fakeTools = []string{
	"amazon-linux-extras", "apt-cache", "apt-get", "cargo", "curl", "dnf", "sha512sum", "tar", "tuftool", "yum",
}

// osDefault is one family of build.osDefaults.
type osDefault struct {
	BaseImage string `json:"baseImage"`
	Headers   string `json:"headers"`
	Kmod      string `json:"kmod"`
}

// recipeCase runs one recipe of one family in a fresh root. Paths in want* fields and in args
// values are relative to the root, written $ROOT (the root's name has a single quote, so that
// the env file's quoting is exercised).
type recipeCase struct {
	name   string
	family string
	// args are the build args (the recipe's environment).
	args map[string]string
	// missing are the packages, amazon-linux-extras topics and cargo crates the fakes do not
	// have (FAKE_MISSING).
	missing []string
	// cc is CONFIG_CC_VERSION_TEXT in the .config of the headers the fake package managers
	// install (FAKE_CC_TEXT).
	cc string
	// web is what the fake curl and tuftool serve: https://<key>. Archives are fake archives
	// (see testdata/bin/tar).
	web map[string]string
	// sha512 is the hash the fake sha512sum prints.
	sha512 string
	// given are files the root holds before the run (a base image's contents), executable.
	given map[string]string

	// wantLog are the calls of the fakes, in order, with the root as $ROOT.
	wantLog []string
	// wantErr, when set, are the words the recipe's "error: " line on stderr must contain; it
	// must then fail and write no env file.
	wantErr []string
	// wantEnv is the env file's path (default $ROOT/etc/kmm-build.env), wantSrc and wantMake
	// what sourcing it sets KERNEL_SRC and MAKE_ARGS to.
	wantEnv, wantSrc, wantMake string
	// wantFiles are files the run leaves, with their content.
	wantFiles map[string]string
	// wantRun are commands the run leaves: each is run with the arguments "a b" and must print
	// the given text.
	wantRun map[string]string
	// wantGone are paths the run must not leave (downloads, caches, shadowing wrappers).
	wantGone []string
}

// Fake archives (testdata/bin/tar reads them).
const (
	cosHeaders6_1_100 = "f usr/src/linux-headers-6.1.100+/Makefile # kbuild\n" +
		"f usr/src/linux-headers-6.1.100+/include/generated/utsrelease.h #define UTS_RELEASE \"6.1.100+\"\n" +
		"f usr/src/linux-headers-6.1.100+/.config CONFIG_CC_VERSION_TEXT=\"Chromium OS 17.0_pre498229-r33 clang version 17.0.0\"\n"
	cosToolchain = "x bin/x86_64-cros-linux-gnu-clang echo bin-clang \"$@\"\n" +
		"x usr/bin/x86_64-cros-linux-gnu-clang echo usr-clang \"$@\"\n" +
		"x usr/bin/x86_64-cros-linux-gnu-ld.lld echo usr-ld.lld \"$@\"\n" +
		"x bin/tar echo toolchain-tar \"$@\"\n" +
		"f usr/lib64/libLLVM-17.so fake\n"
	cosToolchainEnv = "CC=\"x86_64-cros-linux-gnu-clang\"\nCXX=\"x86_64-cros-linux-gnu-clang++\"\n"
)

// bottlerocketKit is a fake kmod kit archive for kernel of variant-arch-v version.
func bottlerocketKit(variant, arch, version, kernel string) string {
	kit := variant + "-" + arch + "-kmod-kit-v" + version
	return "f " + kit + "/kernel-devel/Makefile # kbuild\n" +
		"f " + kit + "/kernel-devel/include/generated/utsrelease.h #define UTS_RELEASE \"" + kernel + "\"\n" +
		"x " + kit + "/toolchain/usr/bin/" + arch + "-bottlerocket-linux-musl-gcc echo musl-gcc \"$@\"\n"
}

var headerCases = []recipeCase{
	// Amazon Linux 2.
	{
		name:   "5.10 with gcc10",
		family: "al2",
		args:   map[string]string{"KERNEL_VERSION": "5.10.225-213.878.amzn2.x86_64", "KMM_OS": "al2", "KMM_OS_RELEASE": "2", "KMM_ARCH": "x86_64"},
		cc:     "gcc10-gcc (GCC) 10.5.0 20230707 (Red Hat 10.5.0-1)",
		wantLog: []string{
			"amazon-linux-extras enable kernel-5.10",
			"yum clean metadata",
			"yum install -y --setopt=skip_missing_names_on_install=False make gcc kmod kernel-devel-5.10.225-213.878.amzn2.x86_64",
			"yum install -y --setopt=skip_missing_names_on_install=False gcc10",
			"yum clean all",
		},
		wantSrc:  "$ROOT/usr/src/kernels/5.10.225-213.878.amzn2.x86_64",
		wantMake: "CC=gcc10-gcc",
	},
	{
		name:   "5.4 with the default gcc",
		family: "al2",
		args:   map[string]string{"KERNEL_VERSION": "5.4.196-108.356.amzn2.x86_64", "KMM_OS_RELEASE": "2", "KMM_ARCH": "x86_64"},
		cc:     "gcc (GCC) 7.3.1 20180712 (Red Hat 7.3.1-17)",
		wantLog: []string{
			"amazon-linux-extras enable kernel-5.4",
			"yum clean metadata",
			"yum install -y --setopt=skip_missing_names_on_install=False make gcc kmod kernel-devel-5.4.196-108.356.amzn2.x86_64",
			"yum clean all",
		},
		wantSrc: "$ROOT/usr/src/kernels/5.4.196-108.356.amzn2.x86_64",
	},
	{
		name:   "4.14 from the core repositories",
		family: "al2",
		args:   map[string]string{"KERNEL_VERSION": "4.14.355-275.582.amzn2.aarch64", "KMM_ARCH": "aarch64"},
		wantLog: []string{
			"yum install -y --setopt=skip_missing_names_on_install=False make gcc kmod kernel-devel-4.14.355-275.582.amzn2.aarch64",
			"yum clean all",
		},
		wantSrc: "$ROOT/usr/src/kernels/4.14.355-275.582.amzn2.aarch64",
	},
	{
		name:    "kernel no longer in the repositories",
		family:  "al2",
		args:    map[string]string{"KERNEL_VERSION": "5.10.102-99.473.amzn2.x86_64"},
		missing: []string{"kernel-devel-5.10.102-99.473.amzn2.x86_64"},
		wantLog: []string{
			"amazon-linux-extras enable kernel-5.10",
			"yum clean metadata",
			"yum install -y --setopt=skip_missing_names_on_install=False make gcc kmod kernel-devel-5.10.102-99.473.amzn2.x86_64",
		},
		wantErr: []string{"kernel-devel-5.10.102-99.473.amzn2.x86_64", "AMI", "kmm-os-headers.sh"},
	},
	{
		name:    "not an Amazon Linux 2 kernel",
		family:  "al2",
		args:    map[string]string{"KERNEL_VERSION": "6.1.112-122.189.amzn2023.x86_64", "KMM_OS": "al2"},
		missing: []string{"kernel-6.1"},
		wantLog: []string{"amazon-linux-extras enable kernel-6.1"},
		wantErr: []string{"no topic kernel-6.1", "6.1.112-122.189.amzn2023.x86_64"},
	},
	{
		name:    "no KERNEL_VERSION",
		family:  "al2",
		args:    map[string]string{},
		wantErr: []string{"KERNEL_VERSION"},
	},

	// Amazon Linux 2023.
	{
		name:   "6.12 of the nodes' release, with gcc14",
		family: "al2023",
		args: map[string]string{"KERNEL_VERSION": "6.12.40-64.114.amzn2023.x86_64", "KMM_OS": "al2023",
			"KMM_OS_RELEASE": "2023.6.20241010", "KMM_ARCH": "x86_64"},
		cc: "gcc14-gcc (GCC) 14.2.1 20250110 (Red Hat 14.2.1-7)",
		wantLog: []string{
			"dnf install -y make gcc kmod",
			"dnf install -y --releasever=2023.6.20241010 kernel6.12-devel-6.12.40-64.114.amzn2023.x86_64",
			"dnf install -y gcc14",
			"dnf clean all",
		},
		wantSrc:  "$ROOT/usr/src/kernels/6.12.40-64.114.amzn2023.x86_64",
		wantMake: "CC=gcc14-gcc",
	},
	{
		name:   "6.1 without a release",
		family: "al2023",
		args:   map[string]string{"KERNEL_VERSION": "6.1.112-122.189.amzn2023.x86_64", "KMM_ARCH": "x86_64"},
		cc:     "gcc (GCC) 11.4.1 20230605 (Red Hat 11.4.1-2)",
		wantLog: []string{
			"dnf install -y make gcc kmod",
			"dnf install -y kernel-devel-6.1.112-122.189.amzn2023.x86_64",
			"dnf clean all",
		},
		wantSrc: "$ROOT/usr/src/kernels/6.1.112-122.189.amzn2023.x86_64",
	},
	{
		name:   "6.18 falls back to kernel-devel",
		family: "al2023",
		args: map[string]string{"KERNEL_VERSION": "6.18.2-10.85.amzn2023.aarch64", "KMM_OS_RELEASE": "2023.9.20251208",
			"KMM_ARCH": "aarch64"},
		missing: []string{"kernel6.18-devel-6.18.2-10.85.amzn2023.aarch64"},
		wantLog: []string{
			"dnf install -y make gcc kmod",
			"dnf install -y --releasever=2023.9.20251208 kernel6.18-devel-6.18.2-10.85.amzn2023.aarch64",
			"dnf install -y --releasever=2023.9.20251208 kernel-devel-6.18.2-10.85.amzn2023.aarch64",
			"dnf clean all",
		},
		wantSrc: "$ROOT/usr/src/kernels/6.18.2-10.85.amzn2023.aarch64",
	},
	{
		name:   "headers in no release, env file elsewhere",
		family: "al2023",
		args: map[string]string{"KERNEL_VERSION": "6.12.40-64.114.amzn2023.x86_64", "KMM_OS_RELEASE": "2023.5.20240624",
			"KMM_BUILD_ENV": "$ROOT/tmp/build.env"},
		missing: []string{"kernel6.12-devel-6.12.40-64.114.amzn2023.x86_64", "kernel-devel-6.12.40-64.114.amzn2023.x86_64"},
		wantLog: []string{
			"dnf install -y make gcc kmod",
			"dnf install -y --releasever=2023.5.20240624 kernel6.12-devel-6.12.40-64.114.amzn2023.x86_64",
			"dnf install -y --releasever=2023.5.20240624 kernel-devel-6.12.40-64.114.amzn2023.x86_64",
		},
		wantEnv: "$ROOT/tmp/build.env",
		wantErr: []string{"release 2023.5.20240624", "kernel6.12-devel-6.12.40-64.114.amzn2023.x86_64", "KMM_OS_RELEASE"},
	},
	{
		name:   "env file where KMM_BUILD_ENV says",
		family: "al2023",
		args: map[string]string{"KERNEL_VERSION": "6.1.112-122.189.amzn2023.x86_64", "KMM_OS_RELEASE": "2023.6.20241010",
			"KMM_BUILD_ENV": "$ROOT/tmp/build.env"},
		wantLog: []string{
			"dnf install -y make gcc kmod",
			"dnf install -y --releasever=2023.6.20241010 kernel-devel-6.1.112-122.189.amzn2023.x86_64",
			"dnf clean all",
		},
		wantEnv:  "$ROOT/tmp/build.env",
		wantSrc:  "$ROOT/usr/src/kernels/6.1.112-122.189.amzn2023.x86_64",
		wantGone: []string{"$ROOT/etc/kmm-build.env"},
	},

	// Ubuntu.
	{
		name:   "GKE 22.04 kernel with gcc-11",
		family: "ubuntu",
		args: map[string]string{"KERNEL_VERSION": "5.15.0-1034-gke", "KMM_OS": "ubuntu", "KMM_OS_RELEASE": "22.04",
			"KMM_BASE_IMAGE": "ubuntu:22.04", "KMM_ARCH": "x86_64"},
		cc: "x86_64-linux-gnu-gcc-11 (Ubuntu 11.4.0-1ubuntu1~22.04) 11.4.0",
		wantLog: []string{
			"apt-get update",
			"apt-cache show linux-headers-5.15.0-1034-gke",
			"apt-get install -y --no-install-recommends make gcc kmod linux-headers-5.15.0-1034-gke",
			"apt-get install -y --no-install-recommends gcc-11",
			"apt-get clean",
		},
		wantSrc:  "$ROOT/usr/src/linux-headers-5.15.0-1034-gke",
		wantMake: "CC=x86_64-linux-gnu-gcc-11",
	},
	{
		name:   "24.04 kernel with gcc-13",
		family: "ubuntu",
		args:   map[string]string{"KERNEL_VERSION": "6.8.0-51-generic", "KMM_OS_RELEASE": "24.04", "KMM_ARCH": "x86_64"},
		cc:     "x86_64-linux-gnu-gcc-13 (Ubuntu 13.3.0-6ubuntu2~24.04) 13.3.0",
		wantLog: []string{
			"apt-get update",
			"apt-cache show linux-headers-6.8.0-51-generic",
			"apt-get install -y --no-install-recommends make gcc kmod linux-headers-6.8.0-51-generic",
			"apt-get install -y --no-install-recommends gcc-13",
			"apt-get clean",
		},
		wantSrc:  "$ROOT/usr/src/linux-headers-6.8.0-51-generic",
		wantMake: "CC=x86_64-linux-gnu-gcc-13",
	},
	{
		name:   "compiler without a version",
		family: "ubuntu",
		args:   map[string]string{"KERNEL_VERSION": "6.8.0-1019-aws", "KMM_OS_RELEASE": "24.04"},
		cc:     "gcc (Ubuntu 13.2.0-23ubuntu4) 13.2.0",
		wantLog: []string{
			"apt-get update",
			"apt-cache show linux-headers-6.8.0-1019-aws",
			"apt-get install -y --no-install-recommends make gcc kmod linux-headers-6.8.0-1019-aws",
			"apt-get clean",
		},
		wantSrc: "$ROOT/usr/src/linux-headers-6.8.0-1019-aws",
	},
	{
		name:   "kernel of another release",
		family: "ubuntu",
		args: map[string]string{"KERNEL_VERSION": "5.15.0-105-generic", "KMM_OS_RELEASE": "24.04",
			"KMM_BASE_IMAGE": "ubuntu:24.04"},
		missing: []string{"linux-headers-5.15.0-105-generic"},
		wantLog: []string{"apt-get update", "apt-cache show linux-headers-5.15.0-105-generic"},
		wantErr: []string{"linux-headers-5.15.0-105-generic", "ubuntu:24.04", "KMM_BASE_IMAGE"},
	},

	// Debian.
	{
		name:   "bookworm cloud kernel",
		family: "debian",
		args: map[string]string{"KERNEL_VERSION": "6.1.0-28-cloud-amd64", "KMM_OS": "debian", "KMM_OS_RELEASE": "12",
			"KMM_OS_VARIANT": "bookworm", "KMM_ARCH": "x86_64"},
		cc: "gcc-12 (Debian 12.2.0-14) 12.2.0",
		wantLog: []string{
			"apt-get update",
			"apt-cache show linux-headers-6.1.0-28-cloud-amd64",
			"apt-get install -y --no-install-recommends make gcc kmod linux-headers-6.1.0-28-cloud-amd64",
			"apt-get clean",
		},
		wantSrc:  "$ROOT/usr/src/linux-headers-6.1.0-28-cloud-amd64",
		wantGone: []string{"$ROOT/etc/apt/sources.list.d/kmm-backports.list"},
	},
	{
		name:   "backports kernel",
		family: "debian",
		args:   map[string]string{"KERNEL_VERSION": "6.12.12+bpo-cloud-arm64", "KMM_OS_RELEASE": "12", "KMM_OS_VARIANT": "bookworm"},
		wantLog: []string{
			"apt-get update",
			"apt-cache show linux-headers-6.12.12+bpo-cloud-arm64",
			"apt-get install -y --no-install-recommends make gcc kmod linux-headers-6.12.12+bpo-cloud-arm64",
			"apt-get clean",
		},
		wantSrc: "$ROOT/usr/src/linux-headers-6.12.12+bpo-cloud-arm64",
		wantFiles: map[string]string{
			"$ROOT/etc/apt/sources.list.d/kmm-backports.list": "deb http://deb.debian.org/debian bookworm-backports main\n",
		},
	},
	{
		name:    "backports kernel without a codename",
		family:  "debian",
		args:    map[string]string{"KERNEL_VERSION": "6.12.12+bpo-cloud-amd64"},
		wantErr: []string{"KMM_OS_VARIANT", "backports"},
	},
	{
		name:    "old ABI gone from the archive",
		family:  "debian",
		args:    map[string]string{"KERNEL_VERSION": "6.1.0-25-cloud-amd64", "KMM_OS_VARIANT": "bookworm", "KMM_BASE_IMAGE": "debian:bookworm"},
		missing: []string{"linux-headers-6.1.0-25-cloud-amd64"},
		wantLog: []string{"apt-get update", "apt-cache show linux-headers-6.1.0-25-cloud-amd64"},
		wantErr: []string{"linux-headers-6.1.0-25-cloud-amd64", "snapshot.debian.org", "kmm-os-headers.sh"},
	},

	{
		name:   "headers in the base image already",
		family: "debian",
		args:   map[string]string{"KERNEL_VERSION": "6.1.0-28-cloud-amd64", "KMM_OS_VARIANT": "bookworm"},
		given: map[string]string{
			"$ROOT/usr/src/linux-headers-6.1.0-28-cloud-amd64/Makefile": "# kbuild\n",
			"$ROOT/usr/bin/make": "#!/bin/sh\n", "$ROOT/usr/bin/gcc": "#!/bin/sh\n", "$ROOT/sbin/modprobe": "#!/bin/sh\n",
		},
		wantLog: nil,
		wantSrc: "$ROOT/usr/src/linux-headers-6.1.0-28-cloud-amd64",
	},
	{
		name:   "headers in the base image, gcc not",
		family: "debian",
		args:   map[string]string{"KERNEL_VERSION": "6.1.0-28-cloud-amd64", "KMM_OS_VARIANT": "bookworm"},
		given: map[string]string{
			"$ROOT/usr/src/linux-headers-6.1.0-28-cloud-amd64/Makefile": "# kbuild\n",
			"$ROOT/usr/bin/make": "#!/bin/sh\n", "$ROOT/sbin/modprobe": "#!/bin/sh\n",
		},
		wantLog: []string{
			"apt-get update",
			"apt-cache show linux-headers-6.1.0-28-cloud-amd64",
			"apt-get install -y --no-install-recommends make gcc kmod linux-headers-6.1.0-28-cloud-amd64",
			"apt-get clean",
		},
		wantSrc: "$ROOT/usr/src/linux-headers-6.1.0-28-cloud-amd64",
	},

	// Bottlerocket.
	{
		name:   "aws-k8s-1.31 x86_64 with the documented root.json",
		family: "bottlerocket",
		args: map[string]string{"KERNEL_VERSION": "6.1.119", "KMM_OS": "bottlerocket", "KMM_OS_RELEASE": "1.26.1",
			"KMM_OS_VARIANT": "aws-k8s-1.31", "KMM_ARCH": "x86_64"},
		sha512: bottlerocketRootSHA512,
		web: map[string]string{
			"cache.bottlerocket.aws/root.json":                                             `{"signed":{"_type":"root"}}`,
			"updates.bottlerocket.aws/targets/aws-k8s-1.31-x86_64-kmod-kit-v1.26.1.tar.xz": bottlerocketKit("aws-k8s-1.31", "x86_64", "1.26.1", "6.1.119"),
		},
		wantLog: []string{
			"dnf install -y make gcc gcc-c++ cmake cargo kmod tar xz",
			"cargo install --locked --root $ROOT/usr/local tuftool",
			"curl -fsSL -o $ROOT/var/tmp/kmm-bottlerocket/root.json https://cache.bottlerocket.aws/root.json",
			"sha512sum $ROOT/var/tmp/kmm-bottlerocket/root.json",
			"tuftool download $ROOT/var/tmp/kmm-bottlerocket/kit --target-name aws-k8s-1.31-x86_64-kmod-kit-v1.26.1.tar.xz " +
				"--root $ROOT/var/tmp/kmm-bottlerocket/root.json --metadata-url https://updates.bottlerocket.aws/2020-07-07/aws-k8s-1.31/x86_64/ " +
				"--targets-url https://updates.bottlerocket.aws/targets/",
			"tar -xJf $ROOT/var/tmp/kmm-bottlerocket/kit/aws-k8s-1.31-x86_64-kmod-kit-v1.26.1.tar.xz -C $ROOT/opt/bottlerocket",
			"dnf clean all",
		},
		wantSrc:  "$ROOT/opt/bottlerocket/aws-k8s-1.31-x86_64-kmod-kit-v1.26.1/kernel-devel",
		wantMake: "CROSS_COMPILE=$ROOT/opt/bottlerocket/aws-k8s-1.31-x86_64-kmod-kit-v1.26.1/toolchain/usr/bin/x86_64-bottlerocket-linux-musl-",
		wantRun: map[string]string{
			"$ROOT/opt/bottlerocket/aws-k8s-1.31-x86_64-kmod-kit-v1.26.1/toolchain/usr/bin/x86_64-bottlerocket-linux-musl-gcc": "musl-gcc a b\n",
		},
		wantGone: []string{"$ROOT/var/tmp/kmm-bottlerocket"},
	},
	{
		name:   "aarch64 with BOTTLEROCKET_ROOT_SHA512",
		family: "bottlerocket",
		args: map[string]string{"KERNEL_VERSION": "6.12.21", "KMM_OS_RELEASE": "1.36.0", "KMM_OS_VARIANT": "aws-k8s-1.32",
			"KMM_ARCH": "aarch64", "BOTTLEROCKET_ROOT_SHA512": "a1b2c3"},
		sha512: "a1b2c3",
		web: map[string]string{
			"cache.bottlerocket.aws/root.json":                                              `{"signed":{"_type":"root","version":2}}`,
			"updates.bottlerocket.aws/targets/aws-k8s-1.32-aarch64-kmod-kit-v1.36.0.tar.xz": bottlerocketKit("aws-k8s-1.32", "aarch64", "1.36.0", "6.12.21"),
		},
		wantLog: []string{
			"dnf install -y make gcc gcc-c++ cmake cargo kmod tar xz",
			"cargo install --locked --root $ROOT/usr/local tuftool",
			"curl -fsSL -o $ROOT/var/tmp/kmm-bottlerocket/root.json https://cache.bottlerocket.aws/root.json",
			"sha512sum $ROOT/var/tmp/kmm-bottlerocket/root.json",
			"tuftool download $ROOT/var/tmp/kmm-bottlerocket/kit --target-name aws-k8s-1.32-aarch64-kmod-kit-v1.36.0.tar.xz " +
				"--root $ROOT/var/tmp/kmm-bottlerocket/root.json --metadata-url https://updates.bottlerocket.aws/2020-07-07/aws-k8s-1.32/aarch64/ " +
				"--targets-url https://updates.bottlerocket.aws/targets/",
			"tar -xJf $ROOT/var/tmp/kmm-bottlerocket/kit/aws-k8s-1.32-aarch64-kmod-kit-v1.36.0.tar.xz -C $ROOT/opt/bottlerocket",
			"dnf clean all",
		},
		wantSrc:  "$ROOT/opt/bottlerocket/aws-k8s-1.32-aarch64-kmod-kit-v1.36.0/kernel-devel",
		wantMake: "CROSS_COMPILE=$ROOT/opt/bottlerocket/aws-k8s-1.32-aarch64-kmod-kit-v1.36.0/toolchain/usr/bin/aarch64-bottlerocket-linux-musl-",
	},
	{
		name:   "root.json with another hash",
		family: "bottlerocket",
		args: map[string]string{"KERNEL_VERSION": "6.1.119", "KMM_OS_RELEASE": "1.26.1", "KMM_OS_VARIANT": "aws-k8s-1.31",
			"KMM_ARCH": "x86_64"},
		sha512: "0badc0de",
		web:    map[string]string{"cache.bottlerocket.aws/root.json": `{"signed":{"_type":"root","version":3}}`},
		wantLog: []string{
			"dnf install -y make gcc gcc-c++ cmake cargo kmod tar xz",
			"cargo install --locked --root $ROOT/usr/local tuftool",
			"curl -fsSL -o $ROOT/var/tmp/kmm-bottlerocket/root.json https://cache.bottlerocket.aws/root.json",
			"sha512sum $ROOT/var/tmp/kmm-bottlerocket/root.json",
		},
		wantErr: []string{"0badc0de", bottlerocketRootSHA512, "BOTTLEROCKET_ROOT_SHA512", "rotated"},
	},
	{
		name:   "no kit for the version",
		family: "bottlerocket",
		args: map[string]string{"KERNEL_VERSION": "6.1.119", "KMM_OS_RELEASE": "1.26.9", "KMM_OS_VARIANT": "aws-k8s-1.31",
			"KMM_ARCH": "x86_64"},
		sha512: bottlerocketRootSHA512,
		web:    map[string]string{"cache.bottlerocket.aws/root.json": `{}`},
		wantLog: []string{
			"dnf install -y make gcc gcc-c++ cmake cargo kmod tar xz",
			"cargo install --locked --root $ROOT/usr/local tuftool",
			"curl -fsSL -o $ROOT/var/tmp/kmm-bottlerocket/root.json https://cache.bottlerocket.aws/root.json",
			"sha512sum $ROOT/var/tmp/kmm-bottlerocket/root.json",
			"tuftool download $ROOT/var/tmp/kmm-bottlerocket/kit --target-name aws-k8s-1.31-x86_64-kmod-kit-v1.26.9.tar.xz " +
				"--root $ROOT/var/tmp/kmm-bottlerocket/root.json --metadata-url https://updates.bottlerocket.aws/2020-07-07/aws-k8s-1.31/x86_64/ " +
				"--targets-url https://updates.bottlerocket.aws/targets/",
		},
		wantErr: []string{"aws-k8s-1.31-x86_64-kmod-kit-v1.26.9.tar.xz", "1.26.9", "aws-k8s-1.31"},
	},
	{
		name:   "tuftool does not build",
		family: "bottlerocket",
		args: map[string]string{"KERNEL_VERSION": "6.1.119", "KMM_OS_RELEASE": "1.26.1", "KMM_OS_VARIANT": "aws-k8s-1.31",
			"KMM_ARCH": "x86_64"},
		missing: []string{"tuftool"},
		wantLog: []string{
			"dnf install -y make gcc gcc-c++ cmake cargo kmod tar xz",
			"cargo install --locked --root $ROOT/usr/local tuftool",
		},
		wantErr: []string{"tuftool", "kmm-os-headers.sh"},
	},
	{
		name:    "no version or variant",
		family:  "bottlerocket",
		args:    map[string]string{"KERNEL_VERSION": "6.1.119", "KMM_ARCH": "x86_64"},
		wantErr: []string{"KMM_OS_RELEASE", "KMM_OS_VARIANT", "osImage"},
	},

	// Container-Optimized OS.
	{
		name:   "6.1.100+ with the toolchain beside the headers",
		family: "cos",
		args:   map[string]string{"KERNEL_VERSION": "6.1.100", "KMM_OS": "cos", "COS_BUILD_ID": "17800.218.20", "KMM_ARCH": "x86_64"},
		web: map[string]string{
			"storage.googleapis.com/cos-tools/17800.218.20/kernel-headers.tgz": cosHeaders6_1_100,
			"storage.googleapis.com/cos-tools/17800.218.20/toolchain_env":      cosToolchainEnv,
			"storage.googleapis.com/cos-tools/17800.218.20/toolchain.tar.xz":   cosToolchain,
		},
		wantLog: []string{
			"apt-get update",
			"apt-get install -y --no-install-recommends ca-certificates curl xz-utils make kmod libelf1t64",
			"curl -fsSL -o $ROOT/opt/cos/download/kernel-headers.tgz https://storage.googleapis.com/cos-tools/17800.218.20/kernel-headers.tgz",
			"tar -xzf $ROOT/opt/cos/download/kernel-headers.tgz -C $ROOT/opt/cos/headers",
			"curl -fsSL -o $ROOT/opt/cos/download/toolchain_env https://storage.googleapis.com/cos-tools/17800.218.20/toolchain_env",
			"curl -fsSL -o $ROOT/opt/cos/download/toolchain.tar.xz https://storage.googleapis.com/cos-tools/17800.218.20/toolchain.tar.xz",
			"tar -xJf $ROOT/opt/cos/download/toolchain.tar.xz -C $ROOT/opt/cos/toolchain --exclude=./usr/lib64/rustlib* --exclude=./usr/lib64/librustc*",
			"apt-get clean",
		},
		wantSrc:  "$ROOT/opt/cos/headers/usr/src/linux-headers-6.1.100+",
		wantMake: "LLVM=1 LLVM_IAS=1 CC=x86_64-cros-linux-gnu-clang",
		wantRun: map[string]string{
			// bin/ wins over usr/bin/, as on PATH.
			"$ROOT/usr/local/bin/x86_64-cros-linux-gnu-clang":  "bin-clang a b\n",
			"$ROOT/usr/local/bin/x86_64-cros-linux-gnu-ld.lld": "usr-ld.lld a b\n",
		},
		// tar is on PATH already: the toolchain's does not shadow it.
		wantGone: []string{"$ROOT/usr/local/bin/tar", "$ROOT/opt/cos/download"},
	},
	{
		name:   "toolchain named by toolchain.tar.xz.gcs",
		family: "cos",
		args:   map[string]string{"KERNEL_VERSION": "6.1.100", "COS_BUILD_ID": "17800.218.33"},
		web: map[string]string{
			"storage.googleapis.com/cos-tools/17800.218.33/kernel-headers.tgz":              cosHeaders6_1_100,
			"storage.googleapis.com/cos-tools/17800.218.33/toolchain_env":                   cosToolchainEnv,
			"storage.googleapis.com/cos-tools/17800.218.33/toolchain.tar.xz.gcs":            "bucket: cos-sdk\npath: 2024/06/x86_64-cos-linux-gnu-2024.06.05.tar.xz\n",
			"storage.googleapis.com/cos-sdk/2024/06/x86_64-cos-linux-gnu-2024.06.05.tar.xz": cosToolchain,
		},
		wantLog: []string{
			"apt-get update",
			"apt-get install -y --no-install-recommends ca-certificates curl xz-utils make kmod libelf1t64",
			"curl -fsSL -o $ROOT/opt/cos/download/kernel-headers.tgz https://storage.googleapis.com/cos-tools/17800.218.33/kernel-headers.tgz",
			"tar -xzf $ROOT/opt/cos/download/kernel-headers.tgz -C $ROOT/opt/cos/headers",
			"curl -fsSL -o $ROOT/opt/cos/download/toolchain_env https://storage.googleapis.com/cos-tools/17800.218.33/toolchain_env",
			"curl -fsSL -o $ROOT/opt/cos/download/toolchain.tar.xz https://storage.googleapis.com/cos-tools/17800.218.33/toolchain.tar.xz",
			"curl -fsSL -o $ROOT/opt/cos/download/toolchain.gcs https://storage.googleapis.com/cos-tools/17800.218.33/toolchain.tar.xz.gcs",
			"curl -fsSL -o $ROOT/opt/cos/download/toolchain.tar.xz https://storage.googleapis.com/cos-sdk/2024/06/x86_64-cos-linux-gnu-2024.06.05.tar.xz",
			"tar -xJf $ROOT/opt/cos/download/toolchain.tar.xz -C $ROOT/opt/cos/toolchain --exclude=./usr/lib64/rustlib* --exclude=./usr/lib64/librustc*",
			"apt-get clean",
		},
		wantSrc:  "$ROOT/opt/cos/headers/usr/src/linux-headers-6.1.100+",
		wantMake: "LLVM=1 LLVM_IAS=1 CC=x86_64-cros-linux-gnu-clang",
	},
	{
		name:    "no COS_BUILD_ID",
		family:  "cos",
		args:    map[string]string{"KERNEL_VERSION": "6.1.100", "KMM_OS": "cos", "KMM_ARCH": "x86_64"},
		wantErr: []string{"COS_BUILD_ID", "BUILD_ID in /etc/os-release", "release notes"},
	},
	{
		name:    "not a build id",
		family:  "cos",
		args:    map[string]string{"KERNEL_VERSION": "6.1.100", "COS_BUILD_ID": "cos-113-18244-151-14"},
		wantErr: []string{"cos-113-18244-151-14", "17800.218.20"},
	},
	{
		name:   "no headers for the build id",
		family: "cos",
		args:   map[string]string{"KERNEL_VERSION": "6.1.100", "COS_BUILD_ID": "17800.999.1"},
		wantLog: []string{
			"apt-get update",
			"apt-get install -y --no-install-recommends ca-certificates curl xz-utils make kmod libelf1t64",
			"curl -fsSL -o $ROOT/opt/cos/download/kernel-headers.tgz https://storage.googleapis.com/cos-tools/17800.999.1/kernel-headers.tgz",
		},
		wantErr: []string{"17800.999.1", "COS_BUILD_ID"},
	},
	{
		name:   "headers of another kernel",
		family: "cos",
		args:   map[string]string{"KERNEL_VERSION": "6.1.90", "COS_BUILD_ID": "17800.218.20"},
		web: map[string]string{
			"storage.googleapis.com/cos-tools/17800.218.20/kernel-headers.tgz": cosHeaders6_1_100,
		},
		wantLog: []string{
			"apt-get update",
			"apt-get install -y --no-install-recommends ca-certificates curl xz-utils make kmod libelf1t64",
			"curl -fsSL -o $ROOT/opt/cos/download/kernel-headers.tgz https://storage.googleapis.com/cos-tools/17800.218.20/kernel-headers.tgz",
			"tar -xzf $ROOT/opt/cos/download/kernel-headers.tgz -C $ROOT/opt/cos/headers",
		},
		wantErr: []string{"linux-headers-6.1.100+", "not for kernel 6.1.90", "COS_BUILD_ID"},
	},
	{
		name:   "toolchain of another architecture",
		family: "cos",
		args:   map[string]string{"KERNEL_VERSION": "6.1.100", "COS_BUILD_ID": "17800.218.20", "KMM_ARCH": "aarch64"},
		web: map[string]string{
			"storage.googleapis.com/cos-tools/17800.218.20/kernel-headers.tgz": cosHeaders6_1_100,
			"storage.googleapis.com/cos-tools/17800.218.20/toolchain_env":      cosToolchainEnv,
		},
		wantLog: []string{
			"apt-get update",
			"apt-get install -y --no-install-recommends ca-certificates curl xz-utils make kmod libelf1t64",
			"curl -fsSL -o $ROOT/opt/cos/download/kernel-headers.tgz https://storage.googleapis.com/cos-tools/17800.218.20/kernel-headers.tgz",
			"tar -xzf $ROOT/opt/cos/download/kernel-headers.tgz -C $ROOT/opt/cos/headers",
			"curl -fsSL -o $ROOT/opt/cos/download/toolchain_env https://storage.googleapis.com/cos-tools/17800.218.20/toolchain_env",
		},
		wantErr: []string{"x86_64-cros-linux-gnu-clang", "KMM_ARCH aarch64"},
	},
}

// kmodCases run the families' kmod recipes.
var kmodCases = []recipeCase{
	{family: "al2", wantLog: []string{"yum install -y kmod", "yum clean all"}},
	{family: "al2023", wantLog: []string{"dnf install -y kmod", "dnf clean all"}},
	{family: "bottlerocket", wantLog: []string{"dnf install -y kmod", "dnf clean all"}},
	{family: "ubuntu", wantLog: []string{"apt-get update", "apt-get install -y --no-install-recommends kmod", "apt-get clean"}},
	{family: "debian", wantLog: []string{"apt-get update", "apt-get install -y --no-install-recommends kmod", "apt-get clean"}},
	{name: "modprobe in the base image already", family: "debian",
		given:   map[string]string{"$ROOT/sbin/modprobe": "#!/bin/sh\necho base modprobe\n"},
		wantRun: map[string]string{"$ROOT/sbin/modprobe": "base modprobe\n"}},
	{family: "cos", wantLog: []string{"apt-get update", "apt-get install -y --no-install-recommends kmod", "apt-get clean"}},
}

// fakeBin holds the fake commands, made executable once by TestMain: writing an executable
// while parallel tests fork can make its exec fail with "text file busy", so the runs only use
// this folder.
var fakeBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "kmm-recipe-fakes-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	for _, name := range fakeTools {
		data, err := os.ReadFile(filepath.Join("testdata", "bin", name))
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, name), data, 0o755)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "fake command:", err)
			return 1
		}
	}
	fakeBin = dir
	recipeShells, shellsErr = findShells(dir)
	return m.Run()
}

// recipeShells are the shells the recipes run with, each proven to run the fakes of fakeBin
// (findShells); shellsErr says why there are none.
var (
	recipeShells []shell
	shellsErr    error
)

// findShells returns dash (or /bin/sh without it) and busybox sh (internal/busybox: one that
// looks commands up on PATH before its applets), after proving that each runs every fake of
// fakeDir rather than a command or applet of the same name.
func findShells(fakeDir string) ([]shell, error) {
	first := shell{name: "sh", argv: []string{"/bin/sh"}}
	if dash, err := exec.LookPath("dash"); err == nil {
		first = shell{name: "dash", argv: []string{dash}}
	}
	bb, err := busybox.Find()
	if err != nil {
		return nil, fmt.Errorf("the recipes are run with busybox sh too: %w", err)
	}
	out := []shell{first, {name: "busybox", argv: []string{bb.Path, "sh"}}}
	for _, sh := range out {
		if err := busybox.Resolves(sh.argv, fakeDir+":/usr/bin:/bin", fakeDir, fakeTools); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readOSDefaults reads build.osDefaults of the chart's values.yaml.
func readOSDefaults(t *testing.T) map[string]osDefault {
	t.Helper()
	data, err := os.ReadFile(valuesFile)
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		Build struct {
			OSDefaults map[string]map[string]any `json:"osDefaults"`
		} `json:"build"`
	}
	if err := yaml.Unmarshal(data, &values); err != nil {
		t.Fatalf("%s: %v", valuesFile, err)
	}
	out := map[string]osDefault{}
	for family, fields := range values.Build.OSDefaults {
		var d osDefault
		for key, v := range fields {
			s, ok := v.(string)
			if !ok {
				t.Errorf("build.osDefaults.%s.%s is a %T, want a string", family, key, v)
			}
			switch key {
			case "baseImage":
				d.BaseImage = s
			case "headers":
				d.Headers = s
			case "kmod":
				d.Kmod = s
			default:
				t.Errorf("build.osDefaults.%s.%s: unknown key (kmm-render reads baseImage, headers and kmod)", family, key)
			}
		}
		out[family] = d
	}
	return out
}

// TestOSDefaults checks that build.osDefaults has exactly the families of the families slice,
// each with its base image, and recipes; and that each family has rows in this test's tables.
func TestOSDefaults(t *testing.T) {
	defaults := readOSDefaults(t)
	got := slices.Sorted(maps.Keys(defaults))
	want := slices.Sorted(slices.Values(families))
	if !slices.Equal(got, want) {
		t.Errorf("build.osDefaults has the families %v, want %v: a new family needs its entry in families, "+
			"baseImages, headerCases and kmodCases (test/dockerfiles)", got, want)
	}
	for _, family := range families {
		d, ok := defaults[family]
		if !ok {
			continue
		}
		if d.BaseImage != baseImages[family] {
			t.Errorf("build.osDefaults.%s.baseImage is %q, want %q", family, d.BaseImage, baseImages[family])
		}
		// kmm-render replaces these two variables; the result must be a pinned reference.
		img := strings.NewReplacer("${KMM_OS_RELEASE}", "22.04", "${KMM_OS_VARIANT}", "bookworm").Replace(d.BaseImage)
		if err := checkImageRef(img); err != nil {
			t.Errorf("build.osDefaults.%s.baseImage: %v", family, err)
		}
		for name, script := range map[string]string{"headers": d.Headers, "kmod": d.Kmod} {
			if strings.TrimSpace(script) == "" {
				t.Errorf("build.osDefaults.%s.%s is empty", family, name)
			}
			// hack/chartdoc reads "# --" lines of values.yaml as documentation.
			for _, line := range strings.Split(script, "\n") {
				if strings.HasPrefix(strings.TrimSpace(line), "# --") {
					t.Errorf("build.osDefaults.%s.%s: the line %q looks like a chartdoc comment", family, name, line)
				}
			}
		}
		if !slices.ContainsFunc(headerCases, func(c recipeCase) bool { return c.family == family && c.wantErr == nil }) {
			t.Errorf("headerCases has no successful row for %s", family)
		}
		if !slices.ContainsFunc(headerCases, func(c recipeCase) bool { return c.family == family && c.wantErr != nil }) {
			t.Errorf("headerCases has no failing row for %s", family)
		}
		if !slices.ContainsFunc(kmodCases, func(c recipeCase) bool { return c.family == family }) {
			t.Errorf("kmodCases has no row for %s", family)
		}
	}
	for _, c := range slices.Concat(headerCases, kmodCases) {
		if !slices.Contains(families, c.family) {
			t.Errorf("row %s/%s: no family %s in families", c.family, c.name, c.family)
		}
	}
}

// TestRecipesShellcheck runs shellcheck -s sh on every recipe and on the fake commands.
func TestRecipesShellcheck(t *testing.T) {
	shellcheck, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Fatal("shellcheck is not installed: apt-get install shellcheck (make apt-deps)")
	}
	dir := t.TempDir()
	var files []string
	defaults := readOSDefaults(t)
	for _, family := range slices.Sorted(maps.Keys(defaults)) {
		for name, script := range map[string]string{"headers": defaults[family].Headers, "kmod": defaults[family].Kmod} {
			f := filepath.Join(dir, family+"-"+name+".sh")
			if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
	}
	sort.Strings(files)
	for _, name := range fakeTools {
		files = append(files, filepath.Join("testdata", "bin", name))
	}
	out, err := exec.Command(shellcheck, append([]string{"-s", "sh"}, files...)...).CombinedOutput()
	if err != nil {
		t.Errorf("shellcheck -s sh (build.osDefaults.<family>.<recipe> is in <family>-<recipe>.sh): %v\n%s", err, out)
	}
}

func TestHeadersRecipes(t *testing.T) {
	defaults := readOSDefaults(t)
	for _, c := range headerCases {
		t.Run(c.family+"/"+c.name, func(t *testing.T) {
			d, ok := defaults[c.family]
			if !ok {
				t.Fatalf("no build.osDefaults.%s", c.family)
			}
			forShells(t, func(t *testing.T, sh shell) { runRecipe(t, sh, d.Headers, c, true) })
		})
	}
}

func TestKmodRecipes(t *testing.T) {
	defaults := readOSDefaults(t)
	for _, c := range kmodCases {
		t.Run(strings.TrimSuffix(c.family+"/"+c.name, "/"), func(t *testing.T) {
			d, ok := defaults[c.family]
			if !ok {
				t.Fatalf("no build.osDefaults.%s", c.family)
			}
			if c.wantRun == nil {
				c.wantRun = map[string]string{"$ROOT/usr/sbin/modprobe": "fake modprobe\n"}
			}
			forShells(t, func(t *testing.T, sh shell) { runRecipe(t, sh, d.Kmod, c, false) })
		})
	}
}

// shell is one interpreter the recipes run with, as `<argv> -eu <script>`.
type shell struct {
	name string
	argv []string
}

// forShells runs f as a parallel subtest per shell of recipeShells.
func forShells(t *testing.T, f func(t *testing.T, sh shell)) {
	t.Helper()
	if shellsErr != nil {
		t.Fatal(shellsErr)
	}
	for _, sh := range recipeShells {
		t.Run(sh.name, func(t *testing.T) {
			t.Parallel()
			f(t, sh)
		})
	}
}

// runRecipe runs script under sh in a fresh root with the fakes first on PATH, and checks the
// outcome against c. headers says whether it is a headers recipe (which writes the env file).
func runRecipe(t *testing.T, sh shell, script string, c recipeCase, headers bool) {
	tmp := t.TempDir()
	root := filepath.Join(tmp, "root'q")
	web := filepath.Join(tmp, "web")
	logFile := filepath.Join(tmp, "calls.log")
	scriptFile := filepath.Join(tmp, "recipe.sh")
	for _, dir := range []string{root, web, filepath.Join(tmp, "home")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(scriptFile, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(logFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for key, content := range c.web {
		f := filepath.Join(web, filepath.FromSlash(key))
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	abs := func(p string) string { return strings.ReplaceAll(p, "$ROOT", root) }
	for p, content := range c.given {
		f := abs(p)
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}

	env := []string{
		"PATH=" + fakeBin + ":/usr/bin:/bin",
		"HOME=" + filepath.Join(tmp, "home"),
		"TMPDIR=" + tmp,
		"LC_ALL=C",
		"KMM_ROOT=" + root,
		"FAKE_LOG=" + logFile,
		"FAKE_WEB=" + web,
		"FAKE_MISSING=" + strings.Join(c.missing, " "),
		"FAKE_CC_TEXT=" + c.cc,
		"FAKE_SHA512=" + c.sha512,
	}
	for _, name := range slices.Sorted(maps.Keys(c.args)) {
		env = append(env, name+"="+abs(c.args[name]))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sh.argv[0], append(sh.argv[1:], "-eu", scriptFile)...)
	cmd.Env = env
	cmd.Dir = tmp
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	output := fmt.Sprintf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())

	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	calls := strings.Split(strings.TrimSuffix(strings.ReplaceAll(string(data), root, "$ROOT"), "\n"), "\n")
	if len(calls) == 1 && calls[0] == "" {
		calls = nil
	}
	if !slices.Equal(calls, c.wantLog) {
		t.Errorf("calls of the fakes:\n  %s\nwant:\n  %s\n%s", strings.Join(calls, "\n  "), strings.Join(c.wantLog, "\n  "), output)
	}

	envFile := filepath.Join(root, "etc", "kmm-build.env")
	if c.wantEnv != "" {
		envFile = abs(c.wantEnv)
	}
	if c.wantErr != nil {
		if runErr == nil {
			t.Fatalf("the recipe succeeded, want it to fail with an error naming %q\n%s", c.wantErr, output)
		}
		var line string
		for _, l := range strings.Split(stderr.String(), "\n") {
			if strings.HasPrefix(l, "error: ") {
				line = strings.ReplaceAll(l, root, "$ROOT")
			}
		}
		if line == "" {
			t.Errorf("the recipe failed (%v) without an \"error: \" line on stderr\n%s", runErr, output)
		}
		for _, w := range c.wantErr {
			if !strings.Contains(line, w) {
				t.Errorf("the error line does not name %q: %s", w, line)
			}
		}
		if _, err := os.Stat(envFile); err == nil {
			t.Errorf("the failed recipe left %s", envFile)
		}
		return
	}
	if runErr != nil {
		t.Fatalf("the recipe failed: %v\n%s", runErr, output)
	}

	if headers {
		checkEnvFile(t, envFile, abs(c.wantSrc), abs(c.wantMake))
	}
	for p, want := range c.wantFiles {
		got, err := os.ReadFile(abs(p))
		if err != nil {
			t.Errorf("the run left no %s: %v", p, err)
		} else if string(got) != want {
			t.Errorf("%s holds %q, want %q", p, got, want)
		}
	}
	for p, want := range c.wantRun {
		out, err := exec.Command(abs(p), "a", "b").CombinedOutput()
		if err != nil || string(out) != want {
			t.Errorf("%s a b: %v, printed %q, want %q", p, err, out, want)
		}
	}
	for _, p := range c.wantGone {
		if _, err := os.Lstat(abs(p)); err == nil {
			t.Errorf("the run left %s", p)
		}
	}
}

// checkEnvFile checks the headers recipe's env file: two assignments, KERNEL_SRC and
// MAKE_ARGS, which sourcing with sh sets to src and makeArgs.
func checkEnvFile(t *testing.T, file, src, makeArgs string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("the recipe wrote no env file: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "KERNEL_SRC=") || !strings.HasPrefix(lines[1], "MAKE_ARGS=") {
		t.Errorf("%s:\n%s\nwant the two lines KERNEL_SRC=... and MAKE_ARGS=...", file, data)
	}
	// What the Dockerfile's RUN sees: the file sourced by sh, with nothing else in the environment.
	cmd := exec.Command("/bin/sh", "-c", `. "$1" && printf '%s\n%s' "$KERNEL_SRC" "$MAKE_ARGS"`, "sh", file)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sourcing %s: %v\n%s", file, err, out)
	}
	gotSrc, gotMake, _ := strings.Cut(string(out), "\n")
	if gotSrc != src {
		t.Errorf("KERNEL_SRC is %q, want %q\n%s", gotSrc, src, data)
	}
	if gotMake != makeArgs {
		t.Errorf("MAKE_ARGS is %q, want %q\n%s", gotMake, makeArgs, data)
	}
}
