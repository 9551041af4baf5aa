package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"kmm.dev/kmm/pkg/amikernels"
)

func newKernelsCommand() *cobra.Command {
	var q amikernels.Query
	var output string
	cmd := &cobra.Command{
		Use:   "kernels --eks MINOR [--ami-type TYPE]... [--since RELEASE] [-o table|values]",
		Short: "List the kernels EKS optimized AMI releases ship, to map them before nodes upgrade",
		Long: `kernels lists the EKS optimized AMI releases of a Kubernetes minor version and the kernel
each one boots, newest first, so that kernel mappings and images can be ready before a node
group upgrades. The data is built into kmm-render: AMI releases ` + coveragePlaceholder + `, from the
amazon-eks-ami CHANGELOG (older entries name no kernel per AMI type).

--since keeps the releases at or after an AMI release (v20240315) or a release version
(1.31.2-20240315, as the node group shows it). -o values prints the distinct node kernels
(status.nodeInfo.kernelVersion), sorted by version, as the chart's extraKernels value: pass the
file with -f and every helm-managed module whose mapping matches one of them gets its image built
before any node runs it (and, with extraKernelLoaders, a loader that waits for such nodes):

  kmm-render kernels --eks 1.31 --ami-type AL2023_x86_64_STANDARD --since v20250101
  kmm-render kernels --eks 1.31 --ami-type AL2023_x86_64_STANDARD,AL2023_ARM_64_STANDARD \
      --since 1.31.7-20250505 -o values > kernels.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "values" {
				return fmt.Errorf("unknown output %q: want table or values", output)
			}
			if q.KubernetesMinor == "" {
				minors, err := amikernels.KubernetesMinors()
				if err != nil {
					return err
				}
				return fmt.Errorf("--eks is required: the cluster's Kubernetes minor version (known: %s)", strings.Join(minors, ", "))
			}
			releases, err := amikernels.EKS(q)
			if err != nil {
				return err
			}
			oldest, newest, err := amikernels.Coverage()
			if err != nil {
				return err
			}
			if len(releases) == 0 {
				return fmt.Errorf("no EKS AMI release matches %s (the data ends at %s)", describeQuery(q), newest)
			}
			if output == "values" {
				return writeKernelValues(cmd.OutOrStdout(), q, releases, oldest, newest)
			}
			return writeKernelTable(cmd.OutOrStdout(), releases)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&q.KubernetesMinor, "eks", "", "the cluster's Kubernetes minor version, e.g. 1.31 (required)")
	fl.StringSliceVar(&q.AMITypes, "ami-type", nil, "only this AMI type, e.g. AL2023_x86_64_STANDARD, AL2023_ARM_64_STANDARD, AL2_x86_64 (repeatable, or comma-separated)")
	fl.StringVar(&q.Since, "since", "", "only releases at or after this AMI release (v20240315) or release version (1.31.2-20240315)")
	fl.StringVarP(&output, "output", "o", "table", "output format: table or values (the node kernels as a YAML list, extraKernels)")
	// The data's range goes into the help only when help is asked for: parsing the data on
	// every start would slow the post-renderer down.
	help := cmd.HelpFunc()
	cmd.SetHelpFunc(func(c *cobra.Command, args []string) {
		coverage := "(unreadable)"
		if oldest, newest, err := amikernels.Coverage(); err == nil {
			coverage = oldest + " to " + newest
		}
		c.Long = strings.Replace(c.Long, coveragePlaceholder, coverage, 1)
		help(c, args)
	})
	return cmd
}

const coveragePlaceholder = "<coverage>"

// notListed stands in the table for a kernel the CHANGELOG does not name.
const notListed = "(not listed)"

// writeKernelTable prints a row per release, newest first. Rows that would print the same (an
// AMI release that carries two builds, as v20260318 does) print once.
func writeKernelTable(w io.Writer, releases []amikernels.Release) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AMI RELEASE\tAMI TYPE\tKERNEL PACKAGE\tNODE KERNEL")
	printed := map[string]bool{}
	for _, r := range releases {
		kernel := r.NodeKernel()
		if kernel == "" {
			kernel = notListed
		}
		row := strings.Join([]string{r.AMIRelease, r.AMIType, r.KernelPackage, kernel}, "\t")
		if printed[row] {
			continue
		}
		printed[row] = true
		fmt.Fprintln(tw, row)
	}
	return tw.Flush()
}

// writeKernelValues prints the releases' distinct node kernels as the chart's extraKernels.
func writeKernelValues(w io.Writer, q amikernels.Query, releases []amikernels.Release, oldest, newest string) error {
	body, err := yaml.Marshal(map[string][]string{"extraKernels": amikernels.Kernels(releases)})
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Node kernels of the EKS optimized AMIs for %s.\n", describeQuery(q))
	fmt.Fprintf(&b, "# From: kmm-render kernels %s -o values\n", queryArgs(q))
	fmt.Fprintf(&b, "# Data: the amazon-eks-ami CHANGELOG, AMI releases %s to %s.\n", oldest, newest)
	for _, r := range releases {
		if r.Kernel == "" {
			fmt.Fprintf(&b, "# The CHANGELOG names no kernel for %s %s (%s).\n", r.AMIRelease, r.AMIType, r.ReleaseVersion)
		}
	}
	b.Write(body)
	_, err = io.WriteString(w, b.String())
	return err
}

// describeQuery names a query in words: Kubernetes 1.31, AL2023_x86_64_STANDARD, since v20250101.
func describeQuery(q amikernels.Query) string {
	s := "Kubernetes " + q.KubernetesMinor
	if len(q.AMITypes) > 0 {
		s += ", " + strings.Join(q.AMITypes, " and ")
	} else {
		s += ", every AMI type"
	}
	if q.Since != "" {
		s += ", since " + q.Since
	}
	return s
}

// queryArgs is the query as flags.
func queryArgs(q amikernels.Query) string {
	args := []string{"--eks", q.KubernetesMinor}
	for _, t := range q.AMITypes {
		args = append(args, "--ami-type", t)
	}
	if q.Since != "" {
		args = append(args, "--since", q.Since)
	}
	return strings.Join(args, " ")
}
