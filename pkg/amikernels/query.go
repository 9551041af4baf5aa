package amikernels

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Query selects EKS optimized AMI releases.
type Query struct {
	// KubernetesMinor is the cluster's Kubernetes minor version: 1.31. Required.
	KubernetesMinor string
	// AMITypes keeps only these AMI types (AL2_x86_64, AL2023_x86_64_STANDARD,
	// AL2023_ARM_64_STANDARD, ...). Empty keeps every type.
	AMITypes []string
	// Since keeps only releases at or after it: an AMI release (v20240315) compares with each
	// AMI release, a release version (1.31.2-20240315) with each release version's date. Empty
	// keeps every release.
	Since string
}

// EKS returns the releases of the built-in data that the query selects, newest first: by AMI
// release, then release version (newest first), AMI type and kernel package. It fails on a
// Kubernetes minor or AMI type the data does not know, naming the ones it does, and on a
// malformed Since. A query that matches nothing returns no releases and no error.
func EKS(q Query) ([]Release, error) {
	d, err := load()
	if err != nil {
		return nil, err
	}
	return d.query(q)
}

func (d *data) query(q Query) ([]Release, error) {
	switch {
	case q.KubernetesMinor == "":
		return nil, fmt.Errorf("the Kubernetes minor version is required (known: %s)", strings.Join(d.minors, ", "))
	case d.types[q.KubernetesMinor] == nil:
		return nil, fmt.Errorf("unknown Kubernetes minor version %q (known: %s)", q.KubernetesMinor, strings.Join(d.minors, ", "))
	}
	for _, t := range q.AMITypes {
		if !slices.Contains(d.allTypes, t) {
			return nil, fmt.Errorf("unknown AMI type %q (known: %s)", t, strings.Join(d.allTypes, ", "))
		}
		if !slices.Contains(d.types[q.KubernetesMinor], t) {
			return nil, fmt.Errorf("no %s AMI for Kubernetes %s (its AMI types: %s)", t, q.KubernetesMinor, strings.Join(d.types[q.KubernetesMinor], ", "))
		}
	}
	since, err := parseSince(q.Since, q.KubernetesMinor)
	if err != nil {
		return nil, err
	}
	var out []Release
	for _, r := range d.releases {
		if r.KubernetesMinor != q.KubernetesMinor {
			continue
		}
		if len(q.AMITypes) > 0 && !slices.Contains(q.AMITypes, r.AMIType) {
			continue
		}
		if !since(r) {
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, compareNewestFirst)
	return out, nil
}

func compareNewestFirst(a, b Release) int {
	return cmp.Or(
		cmp.Compare(b.AMIRelease, a.AMIRelease),
		CompareVersions(b.ReleaseVersion, a.ReleaseVersion),
		cmp.Compare(a.AMIType, b.AMIType),
		CompareVersions(a.KernelPackage, b.KernelPackage),
	)
}

// parseSince turns Query.Since into a filter.
func parseSince(s, minor string) (func(Release) bool, error) {
	if s == "" {
		return func(Release) bool { return true }, nil
	}
	if m := amiReleaseRE.FindStringSubmatch(s); m != nil && validDate(m[1]) {
		return func(r Release) bool { return r.AMIRelease >= s }, nil
	}
	if m := releaseVersionRE.FindStringSubmatch(s); m != nil && validDate(m[2]) {
		if m[1] != minor {
			return nil, fmt.Errorf("since %s is a release version of Kubernetes %s, not %s", s, m[1], minor)
		}
		date := m[2]
		return func(r Release) bool { return releaseDate(r.ReleaseVersion) >= date }, nil
	}
	return nil, fmt.Errorf("malformed since %q: want an AMI release (v20240315) or a release version (%s.2-20240315)", s, minor)
}

// releaseDate is the YYYYMMDD of a valid release version.
func releaseDate(releaseVersion string) string {
	_, date, _ := strings.Cut(releaseVersion, "-")
	return date
}
