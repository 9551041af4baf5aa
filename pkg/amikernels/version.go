package amikernels

import (
	"cmp"
	"slices"
	"strings"
)

// CompareVersions orders version strings the way people read them: runs of digits compare as
// numbers, everything else as text, so 5.10.9 sorts before 5.10.10 and 6.1.79-99.164 before
// 6.1.79-99.1000. Strings that compare equal that way (leading zeros) fall back to byte order,
// so the order is total.
func CompareVersions(a, b string) int {
	x, y := a, b
	for x != "" && y != "" {
		var tx, ty string
		tx, x = nextToken(x)
		ty, y = nextToken(y)
		if c := compareTokens(tx, ty); c != 0 {
			return c
		}
	}
	switch {
	case x != "":
		return 1
	case y != "":
		return -1
	}
	return strings.Compare(a, b)
}

// nextToken splits off s's leading run of digits, or of anything else.
func nextToken(s string) (token, rest string) {
	digit := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == digit {
		i++
	}
	return s[:i], s[i:]
}

func compareTokens(a, b string) int {
	if !isDigit(a[0]) || !isDigit(b[0]) {
		return strings.Compare(a, b)
	}
	a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	return cmp.Or(cmp.Compare(len(a), len(b)), strings.Compare(a, b))
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// Kernels lists the distinct node kernels of the releases (NodeKernel, with the architecture),
// oldest version first. Releases whose kernel is not known add nothing.
func Kernels(releases []Release) []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range releases {
		if k := r.NodeKernel(); k != "" && !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	slices.SortFunc(out, CompareVersions)
	return out
}
