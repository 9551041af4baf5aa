// Command amikernels writes pkg/amikernels/eks-ami-kernels.tsv, the EKS optimized AMI kernel
// data kmm-render ships, from the table parsed from the amazon-eks-ami CHANGELOG (the same six
// columns: ami_release, kubernetes_minor, release_version, ami_type, kernel_package, kernel).
//
//	go run ./hack/amikernels -in ../shared/data/eks-ami-kernels.tsv -out pkg/amikernels/eks-ami-kernels.tsv
//
// It keeps one row per AMI release, release version, AMI type and kernel package, sorted oldest
// first, and fails on a malformed row with its line number. What it leaves out, it counts in
// the output's header and on stderr:
//
//   - A kernel cell "—" (or empty) of a kernel package the AMI type does not use. The CHANGELOG's
//     tables have a column per kernel package and an AMI type uses one of them. When no package
//     of an AMI type names a kernel, the row stays, with kernel "-".
//   - Release-wide notes (ami_type "AL2(all)", kubernetes_minor "*"). Releases up to v20231027
//     give the kernel as prose per range of Kubernetes versions, without release versions or AMI
//     types, so no row can be derived from them without guessing.
//   - Rows whose ami_type reads "Version". Releases v20231106 to v20240209 list one kernel per
//     Kubernetes version without naming the AMI type, and the GPU AMI kept an older kernel then.
//   - Exact duplicate rows.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"kmm.dev/kmm/pkg/amikernels"
)

func main() {
	in := flag.String("in", "../shared/data/eks-ami-kernels.tsv", "the table parsed from the amazon-eks-ami CHANGELOG")
	out := flag.String("out", "pkg/amikernels/eks-ami-kernels.tsv", "the file to write")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "amikernels: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	if err := run(*in, *out, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "amikernels:", err)
		os.Exit(1)
	}
}

func run(in, out string, log io.Writer) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	content, sum, err := generate(f, in)
	if err != nil {
		return err
	}
	if err := writeFile(out, content); err != nil {
		return err
	}
	fmt.Fprintf(log, "wrote %s: %d rows, AMI releases %s to %s\n", out, sum.rows, sum.first, sum.last)
	for _, l := range sum.leftOut() {
		fmt.Fprintf(log, "  left out %s\n", l)
	}
	return nil
}

// writeFile replaces path through a temporary file in the same folder, so that a failed run
// leaves the old file whole.
func writeFile(path string, content []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".amikernels-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// omission counts the source rows of one kind that the output leaves out.
type omission struct {
	count       int
	first, last string // AMI releases
}

func (o *omission) add(amiRelease string) {
	o.count++
	if o.first == "" || amiRelease < o.first {
		o.first = amiRelease
	}
	if amiRelease > o.last {
		o.last = amiRelease
	}
}

func (o omission) String() string {
	if o.first == o.last {
		return fmt.Sprintf("%d (%s)", o.count, o.first)
	}
	return fmt.Sprintf("%d (%s to %s)", o.count, o.first, o.last)
}

// summary says what generate kept and left out.
type summary struct {
	rows, notListed int
	first, last     string
	minors          []string
	releaseWide     omission // ami_type AL2(all)
	noAMIType       omission // ami_type Version
	unusedPackage   omission // "—" beside another package's kernel
	duplicates      omission
}

func (s summary) leftOut() []string {
	var out []string
	add := func(o omission, what string) {
		if o.count > 0 {
			out = append(out, o.String()+": "+what)
		}
	}
	add(s.unusedPackage, `kernel cells "—" (or empty) of a kernel package the AMI type does not use (another package names its kernel)`)
	add(s.releaseWide, `release-wide notes (ami_type "AL2(all)", kubernetes_minor "*") that give kernels as prose per range of Kubernetes versions, with no release version or AMI type`)
	add(s.noAMIType, `rows whose CHANGELOG table names no AMI type (ami_type "Version"); the GPU AMI's kernel differed from the others' then`)
	add(s.duplicates, "exact duplicate rows")
	return out
}

type sourceRow struct {
	rel  amikernels.Release
	line int
}

// generate reads the parsed CHANGELOG table and returns the shipped file's content. name is the
// source's name in error messages.
func generate(src io.Reader, name string) ([]byte, summary, error) {
	var sum summary
	fail := func(line int, format string, args ...any) error {
		return fmt.Errorf("%s:%d: %s", name, line, fmt.Sprintf(format, args...))
	}
	// groups holds the rows of each AMI release, release version and AMI type, in source order.
	groups := map[string][]sourceRow{}
	var order []string
	byKey := map[string]sourceRow{}
	sc := bufio.NewScanner(src)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSuffix(sc.Text(), "\r")
		if strings.TrimSpace(text) == "" || strings.HasPrefix(text, "#") {
			continue
		}
		f := strings.Split(text, "\t")
		if len(f) != len(amikernels.Columns) {
			return nil, sum, fail(line, "want %d tab-separated fields (%s), got %d", len(amikernels.Columns), strings.Join(amikernels.Columns, ", "), len(f))
		}
		rel := amikernels.Release{AMIRelease: f[0], KubernetesMinor: f[1], ReleaseVersion: f[2], AMIType: f[3], KernelPackage: f[4], Kernel: f[5]}
		switch rel.Kernel {
		case "—", "-", "":
			rel.Kernel = ""
		}
		switch rel.AMIType {
		case "AL2(all)":
			// Only the release tag and the package are fields here; check them with stand-ins.
			check := amikernels.Release{AMIRelease: rel.AMIRelease, KubernetesMinor: "1.0", ReleaseVersion: "1.0.0-20000101", AMIType: "AL2_x86_64", KernelPackage: rel.KernelPackage}
			if err := check.Validate(); err != nil {
				return nil, sum, fail(line, "release-wide note: %v", err)
			}
			if rel.KubernetesMinor != "*" || rel.ReleaseVersion != "" {
				return nil, sum, fail(line, `release-wide note (ami_type AL2(all)) with kubernetes_minor %q and release_version %q: want "*" and empty`, rel.KubernetesMinor, rel.ReleaseVersion)
			}
			sum.releaseWide.add(rel.AMIRelease)
			continue
		case "Version":
			// The row names no AMI type; check the rest with a stand-in.
			check := rel
			check.AMIType = "AL2_x86_64"
			if err := check.Validate(); err != nil {
				return nil, sum, fail(line, "%v", err)
			}
			sum.noAMIType.add(rel.AMIRelease)
			continue
		}
		if err := rel.Validate(); err != nil {
			return nil, sum, fail(line, "%v", err)
		}
		key := strings.Join([]string{rel.AMIRelease, rel.ReleaseVersion, rel.AMIType, rel.KernelPackage}, "\t")
		if prev, ok := byKey[key]; ok {
			if prev.rel != rel {
				return nil, sum, fail(line, "%s %s %s %s: kernel %q, but line %d says %q", rel.AMIRelease, rel.ReleaseVersion, rel.AMIType, rel.KernelPackage, rel.Kernel, prev.line, prev.rel.Kernel)
			}
			sum.duplicates.add(rel.AMIRelease)
			continue
		}
		byKey[key] = sourceRow{rel, line}
		group := strings.Join([]string{rel.AMIRelease, rel.ReleaseVersion, rel.AMIType}, "\t")
		if groups[group] == nil {
			order = append(order, group)
		}
		groups[group] = append(groups[group], sourceRow{rel, line})
	}
	if err := sc.Err(); err != nil {
		return nil, sum, fail(line+1, "%v", err)
	}

	var releases []amikernels.Release
	for _, g := range order {
		rows := groups[g]
		listed := 0
		for _, r := range rows {
			if r.rel.Kernel != "" {
				listed++
			}
		}
		for _, r := range rows {
			switch {
			case r.rel.Kernel != "":
				releases = append(releases, r.rel)
			case listed > 0:
				sum.unusedPackage.add(r.rel.AMIRelease)
			default:
				releases = append(releases, r.rel)
				sum.notListed++
			}
		}
	}
	if len(releases) == 0 {
		return nil, sum, fmt.Errorf("%s: no release rows", name)
	}
	sum.rows = len(releases)
	for _, r := range releases {
		if sum.first == "" || r.AMIRelease < sum.first {
			sum.first = r.AMIRelease
		}
		if r.AMIRelease > sum.last {
			sum.last = r.AMIRelease
		}
		if !slices.Contains(sum.minors, r.KubernetesMinor) {
			sum.minors = append(sum.minors, r.KubernetesMinor)
		}
	}
	slices.SortFunc(sum.minors, amikernels.CompareVersions)

	var buf bytes.Buffer
	writeHeader(&buf, sum)
	if err := amikernels.WriteTSV(&buf, releases); err != nil {
		return nil, sum, err
	}
	// The package must read back exactly what was written.
	back, err := amikernels.Parse(bytes.NewReader(buf.Bytes()))
	if err != nil {
		return nil, sum, fmt.Errorf("the output does not parse: %w", err)
	}
	if len(back) != len(releases) {
		return nil, sum, fmt.Errorf("the output parses to %d rows, want %d", len(back), len(releases))
	}
	return buf.Bytes(), sum, nil
}

func writeHeader(w io.Writer, sum summary) {
	lines := []string{
		"EKS optimized AMI releases and the kernel each ships: one row per AMI release, release version,",
		"AMI type and kernel package, oldest AMI release first.",
		"Generated by hack/amikernels from the table parsed from the amazon-eks-ami CHANGELOG",
		"(https://github.com/awslabs/amazon-eks-ami/blob/main/CHANGELOG.md). Do not edit by hand; refresh with",
		"  make eks-kernels EKS_KERNELS_TSV=<parsed table>   (default ../shared/data/eks-ami-kernels.tsv)",
		"which runs: go run ./hack/amikernels -in <parsed table> -out pkg/amikernels/eks-ami-kernels.tsv",
		"",
		fmt.Sprintf("%d rows: AMI releases %s to %s, Kubernetes %s to %s.", sum.rows, sum.first, sum.last, sum.minors[0], sum.minors[len(sum.minors)-1]),
		fmt.Sprintf(`kernel "-" (%d rows): the CHANGELOG lists the AMI type in that release but names no kernel for it.`, sum.notListed),
	}
	for _, l := range sum.leftOut() {
		lines = append(lines, "Left out of the source: "+l+".")
	}
	lines = append(lines, "",
		"columns: "+strings.Join(amikernels.Columns, "\t")+" (append .aarch64 for ARM_64 AMI types, else .x86_64, for status.nodeInfo.kernelVersion)")
	for _, l := range lines {
		if l == "" {
			fmt.Fprintln(w, "#")
			continue
		}
		fmt.Fprintln(w, "# "+l)
	}
}
