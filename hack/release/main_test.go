package main

import (
	"errors"
	"strings"
	"testing"
)

func TestDescribeToSemver(t *testing.T) {
	count := func() (string, error) { return "79", nil }
	for _, c := range []struct{ desc, want string }{
		{"v1.2.3", "1.2.3"},
		{"1.2.3", "1.2.3"},
		{"v1.2.3-dirty", "1.2.3-dirty"},
		{"v1.2.3-4-gabcdef012345", "1.2.3-4-gabcdef012345"},
		{"v1.2.3-4-gabcdef012345-dirty", "1.2.3-4-gabcdef012345.dirty"},
		{"v1.2.3-rc.1", "1.2.3-rc.1"},
		{"v1.2.3-rc.1-4-gabcdef012345", "1.2.3-rc.1.4-gabcdef012345"},
		{"4ed5165a6bce", "0.1.0-79-g4ed5165a6bce"},
		{"4ed5165a6bce-dirty", "0.1.0-79-g4ed5165a6bce.dirty"},
	} {
		got, err := describeToSemver(c.desc, "0.1.0", count)
		if err != nil || got != c.want {
			t.Errorf("describeToSemver(%q) = %q, %v; want %q", c.desc, got, err, c.want)
		}
		if err == nil && !semverRE.MatchString(got) {
			t.Errorf("describeToSemver(%q) = %q: not SemVer", c.desc, got)
		}
	}
	for _, desc := range []string{"release-2026", "v1.2", ""} {
		if got, err := describeToSemver(desc, "0.1.0", count); err == nil {
			t.Errorf("describeToSemver(%q) = %q, want an error", desc, got)
		}
	}
	if _, err := describeToSemver("4ed5165a6bce", "0.1.0", func() (string, error) { return "", errors.New("no git") }); err == nil {
		t.Error("a failing commit count must fail the version")
	}
}

func TestReleaseChartYAML(t *testing.T) {
	in := []byte(`annotations:
  artifacthub.io/prerelease: "true"
  artifacthub.io/images: |
    - name: kmm-render
      image: ghcr.io/kmm-dev/kmm-render:0.1.0
`)
	out, err := releaseChartYAML(in, "1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if s := string(out); !strings.Contains(s, "kmm-render:1.2.3\n") || !strings.Contains(s, `prerelease: "false"`) {
		t.Errorf("release 1.2.3:\n%s", s)
	}
	out, err = releaseChartYAML(in, "1.2.3-4-gabc+meta")
	if err != nil {
		t.Fatal(err)
	}
	if s := string(out); !strings.Contains(s, "kmm-render:1.2.3-4-gabc+meta\n") || !strings.Contains(s, `prerelease: "true"`) {
		t.Errorf("pre-release:\n%s", s)
	}
	for _, bad := range []string{
		"annotations:\n  artifacthub.io/prerelease: \"true\"\n",
		"annotations:\n  artifacthub.io/images: |\n    - image: ghcr.io/kmm-dev/kmm-render:0.1.0\n",
	} {
		if _, err := releaseChartYAML([]byte(bad), "1.2.3"); err == nil {
			t.Errorf("releaseChartYAML accepted a Chart.yaml without both annotations:\n%s", bad)
		}
	}
}

func TestSetPluginVersion(t *testing.T) {
	out, err := setPluginVersion([]byte("name: kmm-render\nversion: \"0.1.0\"\ntype: postrenderer/v1\n"), "1.2.3-4-gabc")
	if err != nil || !strings.Contains(string(out), "version: \"1.2.3-4-gabc\"\n") {
		t.Errorf("setPluginVersion: %q, %v", out, err)
	}
	if _, err := setPluginVersion([]byte("name: kmm-render\n"), "1.2.3"); err == nil {
		t.Error("a manifest without version: must be refused")
	}
}
