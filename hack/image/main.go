// Command image builds kmm-render's container image (internal/image) from binaries built per
// platform, without a container engine, into an OCI image layout and, with -push, to a
// registry. `make image` runs it; README "Kernel drift" says how to publish or mirror the image.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"kmm.dev/kmm/internal/image"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fl := flag.NewFlagSet("image", flag.ContinueOnError)
	var (
		o         image.Options
		platforms = fl.String("platforms", "linux/amd64,linux/arm64", "comma-separated OS/ARCH list")
		created   = fl.String("created", os.Getenv("SOURCE_DATE_EPOCH"), "creation time, in seconds since the epoch (default $SOURCE_DATE_EPOCH)")
		out       = fl.String("layout", "", "write the image index to this OCI image layout folder (replaced)")
		tag       = fl.String("tag", "", "the tag the layout names the index by (org.opencontainers.image.ref.name)")
		push      = fl.String("push", "", "push the index to this reference, e.g. ghcr.io/kmm-dev/kmm-render:0.1.0")
		insecure  = fl.Bool("insecure", false, "with -push: the registry speaks plain HTTP (a local registry)")
	)
	fl.StringVar(&o.BinDir, "bin", "", "folder with an OS_ARCH folder per platform holding kmm-render and kmm-upgrade")
	fl.StringVar(&o.Version, "version", "dev", "kmm's version (label org.opencontainers.image.version)")
	fl.StringVar(&o.Revision, "revision", "", "git commit (label org.opencontainers.image.revision)")
	fl.StringVar(&o.Source, "source", "https://kmm.dev/kmm", "repository URL (label org.opencontainers.image.source)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fl.Args())
	}
	if o.BinDir == "" {
		return errors.New("-bin is required")
	}
	if *out == "" && *push == "" {
		return errors.New("nothing to do: give -layout, -push or both")
	}
	secs, err := strconv.ParseInt(*created, 10, 64)
	if err != nil {
		return fmt.Errorf("-created (or SOURCE_DATE_EPOCH) %q is not a number of seconds: %w", *created, err)
	}
	o.Created = time.Unix(secs, 0)
	o.Platforms = strings.Split(*platforms, ",")

	idx, err := image.Build(o)
	if err != nil {
		return err
	}
	digest, err := idx.Digest()
	if err != nil {
		return fmt.Errorf("computing the index digest: %w", err)
	}
	if *out != "" {
		if err := writeLayout(*out, idx, *tag); err != nil {
			return err
		}
		fmt.Printf("%s: %s\n", *out, digest)
	}
	if *push != "" {
		var opts []name.Option
		if *insecure {
			opts = append(opts, name.Insecure)
		}
		ref, err := name.ParseReference(*push, opts...)
		if err != nil {
			return fmt.Errorf("-push %q: %w", *push, err)
		}
		if err := remote.WriteIndex(ref, idx, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			return fmt.Errorf("pushing to %s: %w", ref, err)
		}
		fmt.Printf("%s@%s\n", ref.Context(), digest)
	}
	return nil
}

func writeLayout(dir string, idx v1.ImageIndex, tag string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("replacing %s: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(dir), err)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("creating the OCI layout %s: %w", dir, err)
	}
	var opts []layout.Option
	if tag != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag}))
	}
	if err := p.AppendIndex(idx, opts...); err != nil {
		return fmt.Errorf("writing the image to %s: %w", dir, err)
	}
	return nil
}
