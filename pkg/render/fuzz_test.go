package render

import (
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

var hexHash = regexp.MustCompile(`^[0-9a-f]{8}$`)

// FuzzKernelNaming feeds the naming helpers arbitrary kernels and bases. Whatever they get:
//   - KernelLabelValue's value, when ok, is a non-empty valid label value (at most 63
//     characters), and ok is false only with an empty value;
//   - KernelHash is 8 lower-case hex digits;
//   - ObjectName's name, when it returns one, is a valid DNS-1123 label (at most 63 characters,
//     so also a valid DaemonSet, Job and label value);
//   - two kernels get the same name only as documented: they differ in '.' versus '-' alone,
//     or the name ends in a kernel hash (sanitizing lost information, or the name was cut);
//   - PlatformLabelValue is always a valid label value;
//   - the same input gives the same output.
func FuzzKernelNaming(f *testing.F) {
	for _, s := range [][3]string{
		{"kmm-ci-a-loader", "5.10.109+", "5.10.109"},
		{"kmm-ci-a-loader", "5.4.196-108.356.amzn2.x86_64", "5-4-196-108-356-amzn2-x86-64"},
		{"mod", "6.1.112-122.189.amzn2023.aarch64", "6.1.100+"},
		{"mod", "5.15.0-1034-gke", "5.15.0-1034-GKE"},
		{strings.Repeat("long-base-", 6), "5.15.0-105-generic", "5.15.0-106-generic"},
		{"", "", ""},
		{"-", "+", "."},
		{"MOD", "5.10.0+rt~1 x/y", "5.10.0_rt_1_x_y"},
		{"mod", strings.Repeat("a", 64), strings.Repeat("a", 63)},
		{"mod", "5.10.109é1", "5.10.109\x00"},
		{"eks,gke", "al2", "a b"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, base, kernel, other string) {
		for _, k := range []string{kernel, other} {
			v, ok := KernelLabelValue(k)
			if ok && (v == "" || len(validation.IsValidLabelValue(v)) > 0) {
				t.Fatalf("KernelLabelValue(%q) = %q, ok, but it is no label value: %v", k, v, validation.IsValidLabelValue(v))
			}
			if !ok && v != "" {
				t.Fatalf("KernelLabelValue(%q) = %q, not ok", k, v)
			}
			if v2, ok2 := KernelLabelValue(k); v2 != v || ok2 != ok {
				t.Fatalf("KernelLabelValue(%q) changed from %q to %q", k, v, v2)
			}
			if h := KernelHash(k); !hexHash.MatchString(h) || h != KernelHash(k) {
				t.Fatalf("KernelHash(%q) = %q", k, h)
			}
			if p := PlatformLabelValue(k); len(validation.IsValidLabelValue(p)) > 0 || p == "" {
				t.Fatalf("PlatformLabelValue(%q) = %q: %v", k, p, validation.IsValidLabelValue(p))
			}
		}
		name, err := ObjectName(base, kernel)
		if err != nil {
			if name != "" {
				t.Fatalf("ObjectName(%q, %q) returned %q with error %v", base, kernel, name, err)
			}
			return
		}
		if msgs := validation.IsDNS1123Label(name); len(msgs) > 0 {
			t.Fatalf("ObjectName(%q, %q) = %q: %v", base, kernel, name, msgs)
		}
		if again, err := ObjectName(base, kernel); err != nil || again != name {
			t.Fatalf("ObjectName(%q, %q) changed from %q to %q (%v)", base, kernel, name, again, err)
		}
		otherName, err := ObjectName(base, other)
		if err != nil || otherName != name || kernel == other {
			return
		}
		fold := func(k string) string { return strings.ReplaceAll(k, ".", "-") }
		if fold(kernel) != fold(other) && !strings.HasSuffix(name, "-"+KernelHash(kernel)) && !strings.HasSuffix(name, "-"+KernelHash(other)) {
			t.Fatalf("kernels %q and %q both get name %q", kernel, other, name)
		}
	})
}
