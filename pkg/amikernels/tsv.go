package amikernels

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Parse reads releases in the shipped file's format: lines of six tab-separated fields in the
// order of Columns, NotListed in the kernel column for a kernel the CHANGELOG does not name.
// Lines starting with # and empty lines are skipped. A malformed row, or a second row for the
// same AMI release, release version, AMI type and kernel package, fails with its line number.
func Parse(r io.Reader) ([]Release, error) {
	var out []Release
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSuffix(sc.Text(), "\r")
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		rel, err := parseRow(text)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if prev, ok := seen[rel.key()]; ok {
			return nil, fmt.Errorf("line %d: %s %s %s %s is already on line %d", line, rel.AMIRelease, rel.ReleaseVersion, rel.AMIType, rel.KernelPackage, prev)
		}
		seen[rel.key()] = line
		out = append(out, rel)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	return out, nil
}

func parseRow(text string) (Release, error) {
	f := strings.Split(text, "\t")
	if len(f) != len(Columns) {
		return Release{}, fmt.Errorf("want %d tab-separated fields (%s), got %d", len(Columns), strings.Join(Columns, ", "), len(f))
	}
	rel := Release{AMIRelease: f[0], KubernetesMinor: f[1], ReleaseVersion: f[2], AMIType: f[3], KernelPackage: f[4], Kernel: f[5]}
	switch rel.Kernel {
	case "":
		return Release{}, fmt.Errorf("empty kernel (write %s when the CHANGELOG names none)", NotListed)
	case NotListed:
		rel.Kernel = ""
	}
	if err := rel.Validate(); err != nil {
		return Release{}, err
	}
	return rel, nil
}

// WriteTSV writes releases in the shipped file's format, without comments, in the file's order:
// oldest AMI release first, then by Kubernetes minor, release version, AMI type and kernel
// package. Each release must be valid.
func WriteTSV(w io.Writer, releases []Release) error {
	rs := slices.Clone(releases)
	slices.SortFunc(rs, compareFileOrder)
	bw := bufio.NewWriter(w)
	for _, r := range rs {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("%s %s %s: %w", r.AMIRelease, r.ReleaseVersion, r.AMIType, err)
		}
		kernel := r.Kernel
		if kernel == "" {
			kernel = NotListed
		}
		fmt.Fprintf(bw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.AMIRelease, r.KubernetesMinor, r.ReleaseVersion, r.AMIType, r.KernelPackage, kernel)
	}
	return bw.Flush()
}

func compareFileOrder(a, b Release) int {
	return cmp.Or(
		cmp.Compare(a.AMIRelease, b.AMIRelease),
		CompareVersions(a.KubernetesMinor, b.KubernetesMinor),
		CompareVersions(a.ReleaseVersion, b.ReleaseVersion),
		cmp.Compare(a.AMIType, b.AMIType),
		CompareVersions(a.KernelPackage, b.KernelPackage),
		cmp.Compare(a.Kernel, b.Kernel),
	)
}
