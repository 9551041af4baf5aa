package scripts_test

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// configMapVolume lays out files the way the kubelet mounts a ConfigMap or a
// Secret: the data in a timestamped dot folder, ..data pointing to it, and one
// symbolic link per key.
func configMapVolume(s *sandbox, rel string, files map[string]string) {
	const stamp = "..2024_01_02_03_04_05.123456789"
	for k, v := range files {
		s.write(filepath.Join(rel, stamp, k), v)
		s.symlink(filepath.Join("..data", k), filepath.Join(rel, k))
	}
	s.symlink(stamp, filepath.Join(rel, "..data"))
}

// buildSandbox has a build ConfigMap, a Secret and a signing key pair.
func buildSandbox(t *testing.T, sh shell) *sandbox {
	s := newSandbox(t, sh)
	configMapVolume(s, "context", map[string]string{
		"dockerfile": "FROM scratch\n",
		"Makefile":   "all:\n",
		"a b.c":      "int x;\n",
	})
	configMapVolume(s, "secrets/gh-token", map[string]string{"token": "t0k", "user": "me"})
	s.write("key.pem", "SECRET-KEY-MATERIAL\n")
	s.write("cert.pem", "CERT\n")
	s.env["KMM_CONTEXT"] = s.path("context")
	s.env["KMM_WORK"] = s.path("work")
	s.env["KMM_SECRETS_DIR"] = s.path("secrets")
	s.env["KMM_SIGN_KEY"] = s.path("key.pem")
	s.env["KMM_SIGN_CERT"] = s.path("cert.pem")
	return s
}

func TestBuild(t *testing.T) {
	t.Parallel()
	const (
		img      = "reg.example/kmm/a:6.1.0"
		unsigned = "reg.example/kmm/a:6.1.0-kmm_unsigned"
		signImg  = "quay.io/edge-infrastructure/kernel-module-management-signimage:latest"
	)
	firstBuild := func(s *sandbox, extra ...string) []string {
		ctx := s.path("work/context")
		return append(call("buildctl-daemonless.sh", "build", "--progress=plain", "--frontend", "dockerfile.v0",
			"--local", "context="+ctx, "--local", "dockerfile="+ctx), extra...)
	}
	signBuild := func(s *sandbox) []string {
		dir := s.path("work/sign")
		return call("buildctl-daemonless.sh", "build", "--progress=plain", "--frontend", "dockerfile.v0",
			"--local", "context="+dir, "--local", "dockerfile="+dir,
			"--opt", "context:unsigned=docker-image://"+unsigned,
			"--opt", "build-arg:SIGN_IMAGE="+signImg,
			"--opt", "build-arg:KMM_DIR_NAME=/modules",
			"--secret", "id=kmm-sign-key,src="+s.path("key.pem"),
			"--secret", "id=kmm-sign-cert,src="+s.path("cert.pem"),
			"--output", "type=image,name="+img+",push=true")
	}
	cases := []struct {
		name      string
		env       map[string]string
		setup     func(s *sandbox)
		wantCode  int
		wantCalls func(s *sandbox) [][]string
		wantFlags []string // BUILDKITD_FLAGS seen by each build
		wantOut   []string
		check     func(t *testing.T, s *sandbox)
	}{{
		name: "registry",
		env: map[string]string{
			"KMM_OUTPUT": "registry", "KMM_IMAGE": img,
			"KMM_BUILD_ARGS": lines("KERNEL_VERSION=6.1.0", "", `MSG=a "b" 'c'`, "EMPTY="),
			"KMM_SECRETS":    lines("gh-token"),
		},
		wantCalls: func(s *sandbox) [][]string {
			return [][]string{firstBuild(s,
				"--opt", "build-arg:KERNEL_VERSION=6.1.0", "--opt", `build-arg:MSG=a "b" 'c'`, "--opt", "build-arg:EMPTY=",
				"--secret", "id=gh-token.token,src="+s.path("secrets/gh-token/token"),
				"--secret", "id=gh-token.user,src="+s.path("secrets/gh-token/user"),
				"--output", "type=image,name="+img+",push=true")}
		},
		wantFlags: []string{"<unset>"},
		wantOut:   []string{"kmm: building " + img + " for kernel 6.1.0"},
		check: func(t *testing.T, s *sandbox) {
			entries, err := os.ReadDir(s.path("work/context"))
			require.NoError(t, err)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
				assert.True(t, e.Type().IsRegular(), "%s is not a regular file", e.Name())
			}
			sort.Strings(names)
			assert.Equal(t, []string{"Dockerfile", "Makefile", "a b.c"}, names)
			assert.Equal(t, "FROM scratch\n", s.read("work/context/Dockerfile"))
			assert.Equal(t, "int x;\n", s.read("work/context/a b.c"))
			assert.False(t, s.exists("work/buildkitd.toml"))
			assert.False(t, s.exists("work/sign"))
		},
	}, {
		name: "registry and sign",
		env: map[string]string{
			"KMM_OUTPUT": "registry", "KMM_IMAGE": img, "KMM_UNSIGNED_IMAGE": unsigned, "KMM_SIGN": "true",
			"KMM_SIGN_IMAGE": signImg, "KMM_DIR_NAME": "/modules",
			"KMM_FILES_TO_SIGN": lines("/modules/lib/modules/6.1.0/a.ko", "", "/modules/x y/*.ko"),
		},
		wantCalls: func(s *sandbox) [][]string {
			return [][]string{
				firstBuild(s, "--output", "type=image,name="+unsigned+",push=true"),
				signBuild(s),
			}
		},
		wantFlags: []string{"<unset>", "<unset>"},
		wantOut:   []string{"kmm: building " + unsigned + " for kernel (KERNEL_VERSION not set)", "kmm: signing " + unsigned + " into " + img},
		check: func(t *testing.T, s *sandbox) {
			entries, err := os.ReadDir(s.path("work/sign"))
			require.NoError(t, err)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			assert.ElementsMatch(t, []string{"Dockerfile", "sign.sh", "files-to-sign"}, names)
			for file, source := range map[string]string{"Dockerfile": "sign.Dockerfile", "sign.sh": "sign.sh"} {
				want, err := os.ReadFile(filepath.Join(filesDir, source))
				require.NoError(t, err)
				assert.Equal(t, string(want), s.read("work/sign/"+file), file)
			}
			assert.Equal(t, "/modules/lib/modules/6.1.0/a.ko\n/modules/x y/*.ko\n", s.read("work/sign/files-to-sign"))
		},
	}, {
		name: "registry and sign every module",
		env: map[string]string{
			"KMM_OUTPUT": "registry", "KMM_IMAGE": img, "KMM_UNSIGNED_IMAGE": unsigned, "KMM_SIGN": "true",
			"KMM_SIGN_IMAGE": signImg, "KMM_DIR_NAME": "/modules",
		},
		wantCalls: func(s *sandbox) [][]string {
			return [][]string{
				firstBuild(s, "--output", "type=image,name="+unsigned+",push=true"),
				signBuild(s),
			}
		},
		check: func(t *testing.T, s *sandbox) {
			assert.Equal(t, "", s.read("work/sign/files-to-sign"))
		},
	}, {
		name: "sign a prebuilt image",
		env: map[string]string{
			"KMM_BUILD": "false", "KMM_OUTPUT": "registry", "KMM_IMAGE": img, "KMM_UNSIGNED_IMAGE": unsigned, "KMM_SIGN": "true",
			"KMM_SIGN_IMAGE": signImg, "KMM_DIR_NAME": "/modules",
		},
		setup: func(s *sandbox) {
			require.NoError(s.t, os.RemoveAll(s.path("context")), "no build context is mounted")
		},
		wantCalls: func(s *sandbox) [][]string { return [][]string{signBuild(s)} },
		wantOut:   []string{"kmm: no build: signing the prebuilt " + unsigned},
	}, {
		name:      "no build and nothing to sign",
		env:       map[string]string{"KMM_BUILD": "false", "KMM_OUTPUT": "registry", "KMM_IMAGE": img},
		wantCode:  1,
		wantCalls: func(*sandbox) [][]string { return nil },
		wantOut:   []string{"kmm: KMM_BUILD is false and KMM_SIGN is not true"},
	}, {
		name: "local",
		env: map[string]string{
			"KMM_OUTPUT": "local", "KMM_LOCAL_DIR": "/kmm/build/rootfs", "KMM_SIGN": "true",
			"KMM_BUILD_ARGS": lines("KERNEL_VERSION=6.1.0"),
		},
		wantCalls: func(s *sandbox) [][]string {
			return [][]string{firstBuild(s, "--opt", "build-arg:KERNEL_VERSION=6.1.0", "--output", "type=local,dest=/kmm/build/rootfs")}
		},
		wantOut: []string{"kmm: building /kmm/build/rootfs for kernel 6.1.0"},
		check: func(t *testing.T, s *sandbox) {
			assert.False(t, s.exists("work/sign"))
		},
	}, {
		name: "insecure registries",
		env: map[string]string{
			"KMM_OUTPUT": "registry", "KMM_IMAGE": img, "KMM_INSECURE_REGISTRIES": lines("reg.local:5000", "", "10.0.0.1"),
			"BUILDKITD_FLAGS": "--oci-worker-no-process-sandbox",
		},
		wantCalls: func(s *sandbox) [][]string {
			return [][]string{firstBuild(s, "--output", "type=image,name="+img+",push=true")}
		},
		check: func(t *testing.T, s *sandbox) {
			assert.Equal(t, "[registry.\"reg.local:5000\"]\n  http = true\n  insecure = true\n"+
				"[registry.\"10.0.0.1\"]\n  http = true\n  insecure = true\n", s.read("work/buildkitd.toml"))
			assert.Equal(t, "--oci-worker-no-process-sandbox --config="+s.path("work/buildkitd.toml")+"\n", s.read("calls.log.flags"))
		},
	}, {
		name: "insecure base images: the Dockerfile's registries, each once",
		env:  map[string]string{"KMM_OUTPUT": "registry", "KMM_IMAGE": img, "KMM_INSECURE_BASE_IMAGES": "true", "KMM_INSECURE_REGISTRIES": lines("reg.local:5000")},
		setup: func(s *sandbox) {
			configMapVolume(s, "context2", map[string]string{"dockerfile": "FROM reg.local:5000/base:1 AS builder\n" +
				"RUN make\nfrom --platform=linux/amd64 localhost/tools:2\nFROM ubuntu:24.04\nFROM mirror.example.com/x/y:3\n"})
			s.env["KMM_CONTEXT"] = s.path("context2")
		},
		check: func(t *testing.T, s *sandbox) {
			assert.Equal(t, "[registry.\"reg.local:5000\"]\n  http = true\n  insecure = true\n"+
				"[registry.\"localhost\"]\n  http = true\n  insecure = true\n"+
				"[registry.\"mirror.example.com\"]\n  http = true\n  insecure = true\n", s.read("work/buildkitd.toml"))
		},
	}, {
		name: "insecure registries without other flags",
		env: map[string]string{
			"KMM_OUTPUT": "registry", "KMM_IMAGE": img, "KMM_INSECURE_REGISTRIES": lines("reg.local"),
		},
		check: func(t *testing.T, s *sandbox) {
			assert.Equal(t, "--config="+s.path("work/buildkitd.toml")+"\n", s.read("calls.log.flags"))
		},
	}, {
		name: "OS build defaults become context files",
		env: map[string]string{
			"KMM_OUTPUT": "registry", "KMM_IMAGE": img,
			"KMM_BUILD_ARGS": lines("KMM_OS=al2023", "KERNEL_VERSION=6.1.0"),
			"KMM_OS_HEADERS": "set -eu\ndnf install -y \"kernel-devel-$KERNEL_VERSION\"",
			"KMM_OS_KMOD":    "dnf install -y kmod",
		},
		check: func(t *testing.T, s *sandbox) {
			assert.Equal(t, "set -eu\ndnf install -y \"kernel-devel-$KERNEL_VERSION\"\n", s.read("work/context/kmm-os-headers.sh"))
			assert.Equal(t, "dnf install -y kmod\n", s.read("work/context/kmm-os-kmod.sh"))
		},
	}, {
		name: "the build ConfigMap's own recipe wins",
		env: map[string]string{
			"KMM_OUTPUT": "registry", "KMM_IMAGE": img,
			"KMM_OS_HEADERS": "echo defaults", "KMM_OS_KMOD": "echo kmod defaults",
		},
		setup: func(s *sandbox) {
			configMapVolume(s, "context2", map[string]string{"dockerfile": "FROM scratch\n", "kmm-os-headers.sh": "echo mine\n"})
			s.env["KMM_CONTEXT"] = s.path("context2")
		},
		wantOut: []string{"kmm: kmm-os-headers.sh: the build ConfigMap's own"},
		check: func(t *testing.T, s *sandbox) {
			assert.Equal(t, "echo mine\n", s.read("work/context/kmm-os-headers.sh"))
			assert.Equal(t, "echo kmod defaults\n", s.read("work/context/kmm-os-kmod.sh"))
		},
	}, {
		name: "a Dockerfile that needs OS defaults the kernel's OS lacks",
		env: map[string]string{
			"KMM_OUTPUT": "registry", "KMM_IMAGE": img, "KMM_BUILD_ARGS": lines("KMM_OS=flatcar", "KERNEL_VERSION=6.6.0"),
		},
		setup: func(s *sandbox) {
			configMapVolume(s, "context2", map[string]string{"dockerfile": "FROM x\nCOPY kmm-os-headers.sh /kmm/\n"})
			s.env["KMM_CONTEXT"] = s.path("context2")
		},
		wantCode:  1,
		wantCalls: func(*sandbox) [][]string { return nil },
		wantOut:   []string{"kmm: the Dockerfile uses kmm-os-headers.sh, but there are no build defaults for this kernel's OS (flatcar): set build.osDefaults.flatcar.headers"},
	}, {
		name: "no dockerfile key",
		env:  map[string]string{"KMM_OUTPUT": "registry", "KMM_IMAGE": img},
		setup: func(s *sandbox) {
			require.NoError(s.t, os.Remove(s.path("context/dockerfile")))
		},
		wantCode:  1,
		wantCalls: func(*sandbox) [][]string { return nil },
		wantOut:   []string{`kmm: the build ConfigMap has no key "dockerfile"`},
	}, {
		name:      "image exists",
		env:       map[string]string{"KMM_OUTPUT": "registry", "KMM_IMAGE": img},
		setup:     func(s *sandbox) { s.write("state/exists", "sha256:1\n") },
		wantCalls: func(*sandbox) [][]string { return nil },
		wantOut:   []string{"kmm: " + img + " exists: not rebuilt"},
		check: func(t *testing.T, s *sandbox) {
			assert.False(t, s.exists("work/context"))
		},
	}, {
		name: "signing key missing",
		env: map[string]string{
			"KMM_OUTPUT": "registry", "KMM_IMAGE": img, "KMM_UNSIGNED_IMAGE": unsigned, "KMM_SIGN": "true",
			"KMM_SIGN_IMAGE": signImg,
		},
		setup:     func(s *sandbox) { require.NoError(s.t, os.Remove(s.path("key.pem"))) },
		wantCode:  1,
		wantCalls: func(*sandbox) [][]string { return nil },
		wantOut:   []string{"kmm: signing key ", "sign.keySecret"},
	}, {
		name:      "secret not mounted",
		env:       map[string]string{"KMM_OUTPUT": "registry", "KMM_IMAGE": img, "KMM_SECRETS": lines("nope")},
		wantCode:  1,
		wantCalls: func(*sandbox) [][]string { return nil },
		wantOut:   []string{"kmm: Secret nope is not mounted at "},
	}, {
		name:      "bad build argument",
		env:       map[string]string{"KMM_OUTPUT": "registry", "KMM_IMAGE": img, "KMM_BUILD_ARGS": lines("NOVALUE")},
		wantCode:  1,
		wantCalls: func(*sandbox) [][]string { return nil },
		wantOut:   []string{"kmm: build argument 'NOVALUE' is not NAME=VALUE"},
	}, {
		name:     "unknown output",
		env:      map[string]string{"KMM_OUTPUT": "tarball", "KMM_IMAGE": img},
		wantCode: 1,
		wantOut:  []string{"kmm: KMM_OUTPUT is 'tarball': set it to registry or local"},
	}, {
		name: "build fails",
		env: map[string]string{
			"KMM_OUTPUT": "registry", "KMM_IMAGE": img, "KMM_UNSIGNED_IMAGE": unsigned, "KMM_SIGN": "true",
			"KMM_SIGN_IMAGE": signImg, "FAKE_BUILDCTL_FAIL": "1",
		},
		wantCode: 1,
		wantCalls: func(s *sandbox) [][]string {
			return [][]string{firstBuild(s, "--output", "type=image,name="+unsigned+",push=true")}
		},
		wantOut: []string{"kmm: the build of " + unsigned + " failed"},
	}}
	forShells(t, func(t *testing.T, sh shell) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				s := buildSandbox(t, sh)
				if c.setup != nil {
					c.setup(s)
				}
				code, out := s.run("build.sh", c.env)
				assert.Equal(t, c.wantCode, code, "exit code; output:\n%s", out)
				if c.wantCalls != nil {
					assert.Equal(t, c.wantCalls(s), s.calls(), "output:\n%s", out)
				}
				if c.wantFlags != nil {
					assert.Equal(t, lines(c.wantFlags...), s.read("calls.log.flags"))
				}
				for _, w := range c.wantOut {
					assert.Contains(t, out, w)
				}
				assert.NotContains(t, out, "SECRET-KEY-MATERIAL")
				if c.check != nil {
					c.check(t, s)
				}
			})
		}
	})
}
