// Package scripts tests the shell scripts that the chart ships in
// charts/kmm/files (load.sh, unload.sh and the common.sh they source,
// wait-module.sh, image-exists.sh, build.sh, sign.sh). The tests run each script with /bin/sh and, when it is
// installed, with busybox sh, against fake modprobe, modinfo, uname, crane,
// buildctl-daemonless.sh and sign-file commands (testdata/bin) that log their
// arguments, and a fake sleep that, for unload.sh's wait, returns at once and
// plays the module's users releasing it in the fake sysfs (else it is the real
// sleep).
package scripts
