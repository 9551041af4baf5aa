// Command kubectl is the upstream kubectl (k8s.io/kubernetes/cmd/kubectl, whose main package
// cannot be imported): the cluster benchmark (test/bench/cluster) measures `kubectl get nodes
// -o json` next to kmm-render.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"

	// Client auth plugins, as upstream's kubectl links them.
	_ "k8s.io/client-go/plugin/pkg/client/auth"
)

func main() {
	// As upstream: the verbosity is set before the command is built, so that klog works while
	// kubectl reads .kuberc and plugins.
	logs.GlogSetter(cmd.GetLogVerbosity(os.Args)) //nolint:errcheck
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
}
