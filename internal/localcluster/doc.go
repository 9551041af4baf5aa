// Package localcluster runs a real, local Kubernetes control plane for the end-to-end tests,
// the demo and manual testing: etcd and kube-apiserver through controller-runtime's envtest,
// plus kube-controller-manager, kube-scheduler and kwok (simulated kubelets), with Nodes created
// from a node snapshot (examples/*/nodes.yaml). Pods never run containers: kwok marks them
// Running.
//
// In process, for tests:
//
//	c, err := localcluster.Start(ctx, localcluster.Options{Nodes: "examples/eks/nodes.yaml"})
//	defer c.Stop()
//	c.Helm(ctx, 3, "install", ...)
//
// Every process Start starts logs to a file under WorkDir, and is stopped by Stop. A watchdog
// process (this same executable, see watchdog.go) stops them too if the process that called
// Start dies without calling Stop. Nothing else is ever signalled.
//
// Detached, for kmm-cluster: Up starts a supervisor process (the caller's own command running
// Serve) in its own session and returns once the cluster is ready; Serve records the cluster's
// processes in <dir>/state.json (State); ReadStatus reports which of them run; Down stops
// exactly those. A process is recorded with its pid and start time (Process), so a pid the
// kernel reused for another process is never signalled. Stopping always goes through
// StopProcesses: SIGTERM, then SIGKILL after a grace period.
package localcluster
