#!/bin/sh
# build.sh: builds a module image with BuildKit (KMM build semantics), then signs it
# when asked. Runs in moby/buildkit:v0.34.2-rootless (alpine, busybox sh,
# buildctl-daemonless.sh on PATH). Registry credentials: $DOCKER_CONFIG/config.json.
#
# Environment (lists are newline-separated, empty lines are ignored):
#   KMM_CONTEXT              build ConfigMap volume (default /kmm/context): key "dockerfile" is
#                            the Dockerfile, every other entry not starting with . is a context file
#   KMM_WORK                 writable folder (default /kmm/work)
#   KMM_BUILD_ARGS           list of NAME=VALUE, each given as --opt build-arg:NAME=VALUE;
#                            KERNEL_VERSION names the kernel in the log
#   KMM_SECRETS              list of Secret names, each mounted at $KMM_SECRETS_DIR/<name>/ with one
#                            file per key; each key is given as --secret id=<name>.<key>
#   KMM_SECRETS_DIR          where the Secrets are mounted (default /run/secrets)
#   KMM_BUILD                "false": build nothing, only sign the prebuilt KMM_UNSIGNED_IMAGE
#                            (registry with KMM_SIGN; default true)
#   KMM_OUTPUT               "registry" (push KMM_IMAGE) or "local" (write the image tree to
#                            KMM_LOCAL_DIR)
#   KMM_IMAGE                registry: the final image
#   KMM_UNSIGNED_IMAGE       registry with KMM_SIGN: where the unsigned build is pushed first
#   KMM_SIGN                 "true" to sign; with registry a second build (sign.Dockerfile, sign.sh)
#                            signs KMM_UNSIGNED_IMAGE into KMM_IMAGE; with local another container
#                            signs
#   KMM_SIGN_IMAGE           image holding sign-file (the sign build's SIGN_IMAGE)
#   KMM_DIR_NAME             modprobe.dirName (default /opt): the folder signed in the image
#   KMM_FILES_TO_SIGN        list of files (or globs) to sign; empty: every *.ko
#   KMM_SIGN_KEY             private key (default /kmm/sign/key/key.pem, from sign.keySecret)
#   KMM_SIGN_CERT            certificate (default /kmm/sign/cert/cert.pem, from sign.certSecret)
#   KMM_LOCAL_DIR            local: output folder (e.g. /kmm/build/rootfs)
#   KMM_STATE                state folder (default /kmm/state); when $KMM_STATE/exists exists
#                            (written by image-exists.sh) nothing is built
#   KMM_INSECURE_REGISTRIES  list of registry hosts reached over plain HTTP or unverified TLS;
#                            written to $KMM_WORK/buildkitd.toml, added to BUILDKITD_FLAGS
#   KMM_INSECURE_BASE_IMAGES "true" (build.baseImageRegistryTLS): the registries the Dockerfile's FROM
#                            lines name are added to KMM_INSECURE_REGISTRIES
#   KMM_SCRIPTS              folder holding sign.Dockerfile and sign.sh (default: this script's)
#   KMM_OS_HEADERS           the build defaults' header recipe for the kernel's OS
#                            (build.osDefaults.<os>.headers): written to the context as
#                            kmm-os-headers.sh unless the ConfigMap has a file of that name
#   KMM_OS_KMOD              the same for kmm-os-kmod.sh (build.osDefaults.<os>.kmod)
#   KMM_OS                   not read from the environment: the build arg of that name in
#                            KMM_BUILD_ARGS names the kernel's OS family in errors
set -eu

log() { printf 'kmm: %s\n' "$*"; }
die() {
	printf 'kmm: %s\n' "$*" >&2
	exit 1
}

KMM_CONTEXT=${KMM_CONTEXT:-/kmm/context}
KMM_WORK=${KMM_WORK:-/kmm/work}
KMM_BUILD_ARGS=${KMM_BUILD_ARGS:-}
KMM_SECRETS=${KMM_SECRETS:-}
KMM_SECRETS_DIR=${KMM_SECRETS_DIR:-/run/secrets}
KMM_BUILD=${KMM_BUILD:-true}
KMM_OUTPUT=${KMM_OUTPUT:-}
KMM_IMAGE=${KMM_IMAGE:-}
KMM_UNSIGNED_IMAGE=${KMM_UNSIGNED_IMAGE:-}
KMM_SIGN=${KMM_SIGN:-false}
KMM_SIGN_IMAGE=${KMM_SIGN_IMAGE:-}
KMM_DIR_NAME=${KMM_DIR_NAME:-/opt}
KMM_FILES_TO_SIGN=${KMM_FILES_TO_SIGN:-}
KMM_SIGN_KEY=${KMM_SIGN_KEY:-/kmm/sign/key/key.pem}
KMM_SIGN_CERT=${KMM_SIGN_CERT:-/kmm/sign/cert/cert.pem}
KMM_LOCAL_DIR=${KMM_LOCAL_DIR:-}
KMM_OS_HEADERS=${KMM_OS_HEADERS:-}
KMM_OS_KMOD=${KMM_OS_KMOD:-}
KMM_STATE=${KMM_STATE:-/kmm/state}
KMM_INSECURE_REGISTRIES=${KMM_INSECURE_REGISTRIES:-}
KMM_INSECURE_BASE_IMAGES=${KMM_INSECURE_BASE_IMAGES:-false}
case $0 in
*/*) default_scripts=${0%/*} ;;
*) default_scripts=. ;;
esac
KMM_SCRIPTS=${KMM_SCRIPTS:-$default_scripts}

if [ -e "$KMM_STATE/exists" ]; then
	log "$KMM_IMAGE exists: not rebuilt"
	exit 0
fi

sign_registry=false
case $KMM_OUTPUT in
registry)
	[ -n "$KMM_IMAGE" ] || die "KMM_IMAGE is empty: set the image to push"
	if [ "$KMM_SIGN" = true ]; then
		sign_registry=true
		[ -n "$KMM_UNSIGNED_IMAGE" ] || die "KMM_UNSIGNED_IMAGE is empty: signing needs an image to push the unsigned build to"
		[ -n "$KMM_SIGN_IMAGE" ] || die "KMM_SIGN_IMAGE is empty: signing needs an image holding sign-file"
		[ -f "$KMM_SIGN_KEY" ] || die "signing key $KMM_SIGN_KEY does not exist: it comes from the Secret named by sign.keySecret (key \"key\")"
		[ -f "$KMM_SIGN_CERT" ] || die "signing certificate $KMM_SIGN_CERT does not exist: it comes from the Secret named by sign.certSecret (key \"cert\")"
		[ -f "$KMM_SCRIPTS/sign.Dockerfile" ] || die "$KMM_SCRIPTS/sign.Dockerfile does not exist: check the scripts ConfigMap"
		[ -f "$KMM_SCRIPTS/sign.sh" ] || die "$KMM_SCRIPTS/sign.sh does not exist: check the scripts ConfigMap"
		target=$KMM_UNSIGNED_IMAGE
	else
		target=$KMM_IMAGE
	fi
	output="type=image,name=$target,push=true"
	;;
local)
	[ -n "$KMM_LOCAL_DIR" ] || die "KMM_LOCAL_DIR is empty: set the folder to write the image tree to"
	target=$KMM_LOCAL_DIR
	output="type=local,dest=$KMM_LOCAL_DIR"
	;;
*)
	die "KMM_OUTPUT is '$KMM_OUTPUT': set it to registry or local"
	;;
esac

# insecure_config writes the registries of KMM_INSECURE_REGISTRIES to a buildkitd.toml that
# allows plain HTTP and unverified TLS for them, and points BUILDKITD_FLAGS at it, once.
insecure_done=false
insecure_config() {
	[ "$insecure_done" = false ] || return 0
	insecure_done=true
	toml=$KMM_WORK/buildkitd.toml
	rm -f "$toml"
	seen='
'
	while IFS= read -r host; do
		[ -n "$host" ] || continue
		case $seen in *"
$host
"*) continue ;; esac
		seen="$seen$host
"
		printf '[registry."%s"]\n  http = true\n  insecure = true\n' "$host" >>"$toml" || die "could not write $toml"
		log "registry $host: plain HTTP or unverified TLS allowed"
	done <<EOF
$KMM_INSECURE_REGISTRIES
EOF
	if [ -f "$toml" ]; then
		BUILDKITD_FLAGS="${BUILDKITD_FLAGS:+$BUILDKITD_FLAGS }--config=$toml"
		export BUILDKITD_FLAGS
	fi
}

if [ "$KMM_BUILD" = false ]; then
	# Sign only: the unsigned image is prebuilt (sign.unsignedImage).
	[ "$sign_registry" = true ] || die "KMM_BUILD is false and KMM_SIGN is not true: nothing to build or sign"
	log "no build: signing the prebuilt $KMM_UNSIGNED_IMAGE"
else
	# The context: the ConfigMap's files, dereferenced; its ..data and ..<timestamp>
	# entries are skipped like every name starting with a dot.
	[ -d "$KMM_CONTEXT" ] || die "build context $KMM_CONTEXT does not exist: mount the build ConfigMap there"
	ctx=$KMM_WORK/context
	rm -rf "$ctx"
	mkdir -p "$ctx" || die "could not create $ctx: $KMM_WORK must be writable"
	for f in "$KMM_CONTEXT"/*; do
		[ -e "$f" ] || continue
		if [ -d "$f" ]; then
			cp -RL "$f" "$ctx/" || die "could not copy $f to $ctx"
		else
			cp -L "$f" "$ctx/" || die "could not copy $f to $ctx"
		fi
	done
	[ -f "$ctx/dockerfile" ] || die "the build ConfigMap has no key \"dockerfile\": put the Dockerfile under the key dockerfile"
	mv "$ctx/dockerfile" "$ctx/Dockerfile"
	# The build defaults of the kernel's OS: the ConfigMap's own recipes win.
	os_family=$(printf '%s\n' "$KMM_BUILD_ARGS" | sed -n 's/^KMM_OS=//p' | tail -n 1)
	for recipe in headers kmod; do
		f=$ctx/kmm-os-$recipe.sh
		if [ "$recipe" = headers ]; then text=$KMM_OS_HEADERS; else text=$KMM_OS_KMOD; fi
		if [ -e "$f" ]; then
			log "kmm-os-$recipe.sh: the build ConfigMap's own"
		elif [ -n "$text" ]; then
			printf '%s\n' "$text" >"$f" || die "could not write $f"
		elif grep -q "kmm-os-$recipe\.sh" "$ctx/Dockerfile"; then
			die "the Dockerfile uses kmm-os-$recipe.sh, but there are no build defaults for this kernel's OS (${os_family:-unknown}): set build.osDefaults.${os_family:-<os>}.$recipe in the chart's values, or put kmm-os-$recipe.sh in the build ConfigMap"
		fi
	done
	log "build context: $ctx"

	if [ "$KMM_INSECURE_BASE_IMAGES" = true ]; then
		# baseImageRegistryTLS: the registries of the Dockerfile's FROM images.
		while read -r kw img next _; do
			case $kw in [Ff][Rr][Oo][Mm]) ;; *) continue ;; esac
			case $img in --*) img=$next ;; esac
			case $img in
			*/*)
				host=${img%%/*}
				case $host in *.* | *:* | localhost) KMM_INSECURE_REGISTRIES="$KMM_INSECURE_REGISTRIES
$host" ;; esac
				;;
			esac
		done <"$ctx/Dockerfile"
	fi
	insecure_config

	set -- build --progress=plain --frontend dockerfile.v0 --local "context=$ctx" --local "dockerfile=$ctx"
	kernel=
	while IFS= read -r arg; do
		[ -n "$arg" ] || continue
		case $arg in
		?*=*) ;;
		*) die "build argument '$arg' is not NAME=VALUE: fix build.buildArgs" ;;
		esac
		case $arg in
		KERNEL_VERSION=*) kernel=${arg#KERNEL_VERSION=} ;;
		esac
		set -- "$@" --opt "build-arg:$arg"
	done <<EOF
$KMM_BUILD_ARGS
EOF

	while IFS= read -r secret; do
		[ -n "$secret" ] || continue
		dir=$KMM_SECRETS_DIR/$secret
		[ -d "$dir" ] || die "Secret $secret is not mounted at $dir: check build.secrets and that the Secret exists"
		for f in "$dir"/*; do
			[ -f "$f" ] || continue
			set -- "$@" --secret "id=$secret.${f##*/},src=$f"
		done
	done <<EOF
$KMM_SECRETS
EOF
	set -- "$@" --output "$output"

	log "building $target for kernel ${kernel:-(KERNEL_VERSION not set)}"
	buildctl-daemonless.sh "$@" </dev/null || die "the build of $target failed: see the BuildKit output above"
	log "built $target"
fi

if [ "$sign_registry" != true ]; then
	exit 0
fi

sign_dir=$KMM_WORK/sign
rm -rf "$sign_dir"
mkdir -p "$sign_dir" || die "could not create $sign_dir"
cp "$KMM_SCRIPTS/sign.Dockerfile" "$sign_dir/Dockerfile" || die "could not copy sign.Dockerfile to $sign_dir"
cp "$KMM_SCRIPTS/sign.sh" "$sign_dir/sign.sh" || die "could not copy sign.sh to $sign_dir"
printf '' >"$sign_dir/files-to-sign"
while IFS= read -r f; do
	[ -n "$f" ] || continue
	printf '%s\n' "$f" >>"$sign_dir/files-to-sign"
done <<EOF
$KMM_FILES_TO_SIGN
EOF

insecure_config
set -- build --progress=plain --frontend dockerfile.v0 \
	--local "context=$sign_dir" --local "dockerfile=$sign_dir" \
	--opt "context:unsigned=docker-image://$KMM_UNSIGNED_IMAGE" \
	--opt "build-arg:SIGN_IMAGE=$KMM_SIGN_IMAGE" \
	--opt "build-arg:KMM_DIR_NAME=$KMM_DIR_NAME" \
	--secret "id=kmm-sign-key,src=$KMM_SIGN_KEY" \
	--secret "id=kmm-sign-cert,src=$KMM_SIGN_CERT" \
	--output "type=image,name=$KMM_IMAGE,push=true"
log "signing $KMM_UNSIGNED_IMAGE into $KMM_IMAGE with $KMM_SIGN_IMAGE"
buildctl-daemonless.sh "$@" </dev/null || die "signing $KMM_UNSIGNED_IMAGE into $KMM_IMAGE failed: see the BuildKit output above"
log "built $KMM_IMAGE (signed)"
