// Package version holds kmm's build version, stamped by the Makefile through -ldflags.
package version

// Version is the kmm release this binary was built from; "dev" when built without the Makefile.
var Version = "dev"
